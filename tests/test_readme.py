"""What README.md tells a newcomer is true (#21): the Quick start runs as written in a fresh
shell, one list of token scopes everywhere, no dead services, the daemon's memory figures
come from BENCHMARKS.md, and the systemd steps name what the unit expects."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.publishers.mastodon.client import SCOPES_TEXT, TOKEN_SCOPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV = Path(sys.executable).parent.parent  # the environment the tests run in: .venv in CI


def section(text: str, heading: str) -> str:
    """The body of `## heading` (up to the next `## `)."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def committed(name: str) -> str:
    """A file as a clone has it (HEAD), never the user's working copy: `bot new` adds
    personas to config.yaml, and a test that read that copy would run them too."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip(f"reads the committed {name} (needs git and a checkout)")
    result = subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{name}"], check=False,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def quick_start_commands() -> list[str]:
    block = section(README, "Quick start").split("```\n", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_quick_start_activates_the_virtual_environment_first() -> None:
    commands = quick_start_commands()
    assert commands[0] == ". .venv/bin/activate"
    assert all(c.startswith("bot ") for c in commands[1:]), commands
    assert commands[-1] == "bot run"


@pytest.mark.slow
def test_quick_start_works_as_written_in_a_fresh_shell(tmp_path: Path) -> None:
    """Each Quick start line in its own `bash -c` in a fresh folder holding what a clone has
    (config.yaml, models/, .venv), with `bot` not on PATH and no REVENANT_* variables; the
    daemon runs until its first post, then gets Ctrl-C (SIGINT)."""
    (tmp_path / "config.yaml").write_text(committed("config.yaml"), encoding="utf-8")
    (tmp_path / "models").symlink_to(ROOT / "models", target_is_directory=True)
    (tmp_path / ".venv").symlink_to(VENV, target_is_directory=True)
    bin_dir = str(VENV / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != Path(bin_dir).resolve())  # fmt: skip
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REVENANT_", "MASTODON_", "VIRTUAL_ENV"))}  # fmt: skip
    env.update(PATH=path, HOME=str(tmp_path))
    found = shutil.which("bot", path=path)  # a fresh shell: no `bot` from this venv
    assert found is None or not Path(found).resolve().is_relative_to(VENV.resolve())
    activate, *commands = quick_start_commands()
    outbox = tmp_path / "var" / "outbox" / "nietzsche.jsonl"

    def posts() -> int:
        return len(outbox.read_text().splitlines()) if outbox.exists() else 0

    outputs = {}
    for command in commands[:-1]:
        result = subprocess.run(["bash", "-c", f"{activate} && {command}"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        outputs[command] = result.stdout
    assert "1. [" in outputs["bot preview"]  # posts it would make
    assert "nietzsche: posted to outbox" in outputs["bot post"] and posts() == 1
    status = outputs["bot status"]
    assert "posts:" in status and "var/outbox/nietzsche.jsonl" in status

    log = tmp_path / "run.log"
    with log.open("w") as log_file:
        daemon = subprocess.Popen(["bash", "-c", f"{activate} && exec {commands[-1]}"],
                                  cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while posts() < 2 and daemon.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert posts() == 2, log.read_text()  # the daemon's first post (the first run)
            daemon.send_signal(signal.SIGINT)  # Ctrl-C
            assert daemon.wait(timeout=15) == 0, log.read_text()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    text = log.read_text()
    assert "trigger=first_run" in text and "event=posted persona=nietzsche" in text, text


SCOPE = r"(?:read|write):[a-z_]+"
SCOPE_LIST = re.compile(rf"{SCOPE}(?:[\s`,]+(?:and\s+|plus\s+)?`?{SCOPE})+")


@pytest.mark.parametrize("name", ["README.md", "config.yaml"])
def test_one_list_of_token_scopes_everywhere(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    flat = re.sub(r"\s*#\s*", " ", text)  # YAML comments continue across lines
    assert SCOPES_TEXT in " ".join(flat.split()), f"{name} does not show the token's scopes"
    for match in SCOPE_LIST.finditer(flat):
        found = re.findall(SCOPE, match.group(0))
        assert found == list(TOKEN_SCOPES), f"{name} lists other scopes: {match.group(0)!r}"


DEAD_SERVICES = ("botsin.space",)  # closed in 2024


@pytest.mark.parametrize("dead", DEAD_SERVICES)
def test_no_dead_services_in_examples(dead: str) -> None:
    files = [ROOT / "README.md", ROOT / "config.yaml", *sorted((ROOT / "bot").rglob("*.py"))]
    named = [str(f.relative_to(ROOT)) for f in files if dead in f.read_text(encoding="utf-8")]
    assert not named, f"{dead} is closed; use mastodon.example: {named}"


def benchmark_memory() -> tuple[str, str]:
    body = section((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"),
                   "Daemon memory: `bench/daemon_memory.py` (issue 21)")  # fmt: skip
    [resident] = re.findall(r"resident after its first post .*\| \*\*(\d+) MiB\*\*", body)
    [peak] = re.findall(r"peak resident .*\| \*\*(\d+) MiB\*\*", body)
    return resident, peak


def fleet_memory() -> tuple[str, str]:
    """The 1,000-persona row of BENCHMARKS.md's fleet table: median and peak resident."""
    body = section((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"),
                   "A fleet in one process: `bench/fleet.py` (issue 18, point 4)")  # fmt: skip
    [(median, peak)] = re.findall(r"^\| \*\*1,000\*\* \| [^|]+ \| \*\*(\d+) MB\*\* \| "
                                  r"\*\*(\d+) MB\*\* \|", body, flags=re.MULTILINE)  # fmt: skip
    return median, peak


def test_daemon_memory_figures_are_the_benchmarks_in_one_place() -> None:
    resident, peak = benchmark_memory()
    fleet, fleet_peak = fleet_memory()
    deploying = section(README, "Deploying")
    assert f"**{resident} MiB resident** (`VmRSS`; peak {peak} MiB)" in deploying
    assert (
        f"**1,000 personas in one `bot run` hold {fleet} MB resident\n(peak {fleet_peak} MB)**"
        in deploying
    )
    # No other daemon figure anywhere: README, the unit, the Dockerfile.
    assert re.findall(r"\d+ Mi?B resident", README) == [
        f"{resident} MiB resident",
        f"{fleet} MB resident",
    ]
    for name in ("deploy/revenant.service", "Dockerfile"):
        text = (ROOT / name).read_text(encoding="utf-8")
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        assert not re.search(r"\d+ ?Mi?B\b", comments), f"{name} quotes its own memory figure"


def unit_settings() -> dict[str, str]:
    text = (ROOT / "deploy" / "revenant.service").read_text(encoding="utf-8")
    return dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.MULTILINE))


def test_readme_systemd_steps_set_up_what_the_unit_expects() -> None:
    unit = unit_settings()
    steps = section(README, "Deploying").split("- **systemd**", 1)[1].split("\n- **", 1)[0]
    user, workdir = unit["User"], unit["WorkingDirectory"]
    env_file = unit["EnvironmentFile"].lstrip("-")
    executable = unit["ExecStart"].split()[0]
    assert f"useradd --system --home {workdir} --shell /usr/sbin/nologin {user}" in steps
    assert f"git clone <this repository> {workdir}" in steps
    assert executable == f"{workdir}/.venv/bin/bot"
    assert "python3 -m venv .venv && sudo .venv/bin/pip install -r requirements.txt -e ." in steps
    assert f"sudo install -d -m 700 {Path(env_file).parent}" in steps
    assert f"sudo tee {env_file}" in steps and f"sudo chmod 600 {env_file}" in steps
    assert "sudo cp deploy/revenant.service /etc/systemd/system/" in steps
    assert "systemctl enable --now revenant" in steps
    assert f"/var/lib/{unit['StateDirectory']}" in steps
    assert unit["Environment"] and unit["MemoryMax"] == "512M" and "512 MiB" in steps
