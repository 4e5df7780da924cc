"""The Docker image, checked without a Docker daemon (#21, point 4).

The machines this project is tested on have a docker client and no daemon, so the image is
never built here (README, Deploying, says exactly what is verified). Instead the Dockerfile
is parsed with dockerfile-parse (the instructions as Docker reads them, line continuations
and JSON forms included) and held to rules a linter such as hadolint applies, plus this
project's own: what it copies exists and is not excluded by .dockerignore, the config path
it sets is the one the README tells users to mount, the runtime needs no TensorFlow, and its
health check and command are real `bot` commands. And the daemon itself warns when given a
Mastodon token that no persona uses (the stock image's silent outbox, #21).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dockerfile_parse import DockerfileParser

from bot.commands.cli import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    parser.content  # noqa: B018 -- read once: a syntax error fails here, not in a later test
    return parser


def _instructions(parser: DockerfileParser, name: str) -> list[dict[str, Any]]:
    return [i for i in parser.structure if i["instruction"] == name]


def _ignored(path: str) -> bool:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(p, pat.removeprefix("**/")) or fnmatch.fnmatch(p, pat)
               for pat in patterns for p in prefixes)  # fmt: skip


def test_base_image_is_pinned_and_matches_the_python_we_support(
    dockerfile: DockerfileParser,
) -> None:
    assert dockerfile.baseimage.startswith("python:3.11")  # pyproject: requires-python >=3.11
    assert ":" in dockerfile.baseimage and not dockerfile.baseimage.endswith(":latest")  # DL3007


def test_everything_copied_exists_and_reaches_the_build_context(
    dockerfile: DockerfileParser,
) -> None:
    copies = _instructions(dockerfile, "COPY")
    assert copies and not _instructions(dockerfile, "ADD")  # DL3020: COPY for local files
    for copy in copies:
        *sources, _dest = shlex.split(copy["value"])
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repo"
            assert not _ignored(source), f"COPY {source}: excluded by .dockerignore"
    shipped = REPO / "models" / "nietzsche"
    assert (shipped / "model.keras").is_file() and not shipped.is_symlink()  # models/.* is ignored


def test_apt_and_pip_leave_no_caches_and_no_compiler(dockerfile: DockerfileParser) -> None:
    runs = [i["value"] for i in _instructions(dockerfile, "RUN")]
    for run in runs:
        if "apt-get install" in run:
            assert "--no-install-recommends" in run and "-y" in run  # DL3015, DL3014
            assert "rm -rf /var/lib/apt/lists/*" in run  # DL3009
            if " gcc " in run:  # the compiler leaves in the same layer it came in
                assert "apt-get purge -y gcc" in run
    assert any(" gcc " in run for run in runs)  # the C loop is built in the image
    assert dockerfile.envs["PIP_NO_CACHE_DIR"] == "1"  # DL3042's intent
    installs = [r for r in runs if "pip install -r" in r]
    assert [re.search(r"-r (\S+)", r)[1] for r in installs] == ["requirements.txt"]  # type: ignore[index]
    runtime = [line.split("#")[0].strip().lower()
               for line in (REPO / "requirements.txt").read_text().splitlines()]  # fmt: skip
    assert not [r for r in runtime if r.startswith(("tensorflow", "keras"))]  # the 512 MB image


def test_runs_as_a_user_with_state_in_the_volume(dockerfile: DockerfileParser) -> None:
    users = _instructions(dockerfile, "USER")
    assert users and users[-1]["value"] not in ("root", "0")  # DL3002
    assert dockerfile.envs["REVENANT_HOME"] == "/data"
    assert '"/data"' in _instructions(dockerfile, "VOLUME")[0]["value"]
    workdir = _instructions(dockerfile, "WORKDIR")[0]["value"]
    assert workdir.startswith("/")  # DL3000


def test_command_and_health_check_are_real_bot_commands(dockerfile: DockerfileParser) -> None:
    assert json.loads(dockerfile.cmd) == ["bot", "run"]  # exec form: SIGTERM reaches bot
    health = _instructions(dockerfile, "HEALTHCHECK")[0]["value"]
    probe = json.loads(health.split("CMD", 1)[1])
    assert probe[0] == "bot"
    result = CliRunner().invoke(cli, [*probe[1:], "--help"])
    assert result.exit_code == 0 and "--check" in result.output
    assert _instructions(dockerfile, "STOPSIGNAL")[0]["value"] == "SIGTERM"


def test_the_documented_config_and_token_paths_are_the_images(dockerfile: DockerfileParser) -> None:
    config_path = dockerfile.envs["REVENANT_CONFIG"]
    assert config_path == f"{dockerfile.envs.get('APP', '/app')}/config.yaml" == "/app/config.yaml"
    readme = (REPO / "README.md").read_text()
    docker = readme[readme.index("- **Docker**") : readme.index("- **Kubernetes")]
    runs = [" ".join(line.split()) for line in docker.replace("\\\n", " ").splitlines()
            if line.strip().startswith("docker run")]  # fmt: skip
    # the config that says `publisher: mastodon`, mounted where the image reads it, and a token
    assert any(f":{config_path}:ro" in run and ("--env-file" in run or "-e MASTODON_ACCESS_TOKEN"
               in run) for run in runs), runs  # fmt: skip
    header = (REPO / "Dockerfile").read_text().split("FROM", 1)[0]
    assert f":{config_path}:ro" in header  # the Dockerfile's own example says the same


def test_a_token_no_persona_uses_is_a_warning(
    ada_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stock image given `-e MASTODON_ACCESS_TOKEN` and the shipped (outbox) config used
    to fill the outbox in silence."""
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "not-shown")
    result = CliRunner().invoke(cli, ["run", "--once"])
    assert result.exit_code == 0, result.output
    assert "event=token_unused var=MASTODON_ACCESS_TOKEN" in result.output
    assert "publisher: mastodon" in result.output and "/app/config.yaml" in result.output
    assert "not-shown" not in result.output
    monkeypatch.delenv("MASTODON_ACCESS_TOKEN")
    quiet = CliRunner().invoke(cli, ["run", "--once"])
    assert "token_unused" not in quiet.output
