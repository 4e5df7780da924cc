"""`bot new NAME`: a source to a configured, measured, previewed persona (#21, point 1).

The end-to-end test trains for real (a few seconds of fine-tuning from the shipped persona on
the committed tiny text) through the installed `bot`; the rest checks the pieces a user
meets without training: the source flags, the resume state, the start choice, config.yaml.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.commands.config_file import add_persona
from bot.commands.new import FINE_TUNE_BELOW_CHARS, choose_start, network_of
from bot.config import load_config
from bot.core.errors import ConfigError
from tests.test_corpus import seed_account

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server", "tests.fakes.bluesky"]  # their fixtures

REPO = Path(__file__).resolve().parents[1]
BOT = Path(sys.executable).with_name("bot")
TINY_TEXT = REPO / "tests" / "data" / "tiny" / "aphorisms.txt"
SHIPPED = REPO / "models" / "nietzsche"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BOT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def _interrupt_after_first_epoch(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run `bot` and press Ctrl-C (SIGINT) once its first epoch's line is out."""
    proc = subprocess.Popen([str(BOT), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "epoch 1: train " in line:  # the trainer's line, after the checkpoint
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
        return proc.returncode, "".join(seen) + out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.slow
@pytest.mark.tf
def test_bot_new_from_text_trains_configures_measures_and_resumes(
    tmp_path: Path, config_file: Path
) -> None:
    pytest.importorskip("tensorflow")
    # The user's project: a git checkout with the shipped .gitignore.
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    assert _git("init", "-q", cwd=tmp_path).returncode == 0
    shipped = (REPO / "config.yaml").read_text(encoding="utf-8")
    shipped = shipped.replace("model: models/nietzsche", f"model: {SHIPPED}")
    config_file.write_text(shipped + "  broken: [\n", encoding="utf-8")  # a user's typo
    args = ["new", "aphorist", "--text", str(TINY_TEXT), "--minutes", "1.2", "--base",
            str(SHIPPED), "--eval-posts", "10", "--critic-samples", "20"]  # fmt: skip

    # Ctrl-C in training: one line saying how to go on; the checkpoint is kept.
    code, out, err = _interrupt_after_first_epoch(*args, cwd=tmp_path)
    assert code == 130, out + err
    plan = re.search(r"^plan: 1\.2 min in all: ([0-9.]+) min of training, then ", out, re.MULTILINE)
    assert plan, out
    planned = float(plan.group(1))
    assert "[2/4] train: fine-tuning from" in out and f"budget {planned:g} min" in out
    assert err.splitlines()[-1] == (
        "Interrupted: run the same command to resume (corpus/aphorist/new.json)"
    )
    checkpoint = tmp_path / "models" / ".aphorist.train"
    assert (checkpoint / "state.json").is_file()

    first = _run(*args, cwd=tmp_path)
    # It resumed the training with what is left of its share, then stopped at the config
    # phase on the user's broken file: one line naming the file and the fix, exit 1.
    assert first.returncode == 1, first.stdout + first.stderr
    resumed = re.search(r"\[2/4\] train: resuming after epoch \d+: ([0-9.]+) of ([0-9.]+) min "
                        r"left", first.stdout)  # fmt: skip
    assert resumed, first.stdout
    assert float(resumed.group(2)) == planned and float(resumed.group(1)) < planned
    assert first.stderr.strip().splitlines() == [
        (
            f"Error: {config_file}: not valid YAML (ParserError) (fix the YAML syntax, then run "
            "`bot new` again)"
        )
    ]
    model = tmp_path / "models" / "aphorist"
    assert (model / "model.keras").is_file()
    assert not checkpoint.exists()  # trained: the 33 MB checkpoint is not needed any more
    state = json.loads((tmp_path / "corpus" / "aphorist" / "new.json").read_text())
    assert set(state["done"]) == {"corpus", "train"}
    trained_at = (model / "card.json").stat().st_mtime_ns

    config_file.write_text(shipped, encoding="utf-8")  # fixed; the same command resumes
    second = _run(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout
    assert "resuming `bot new aphorist`: done: corpus, train" in out
    assert "Epoch" not in out and "plan:" not in out  # not trained again
    assert (model / "card.json").stat().st_mtime_ns == trained_at
    assert "[3/4] config: adding aphorist" in out and "[4/4] eval" in out
    assert "distinguishable from the author (ROC AUC" in out and "bits/char" in out
    assert "== preview" in out and "\n1. " in out

    # config.yaml: every byte the user wrote is still there, the persona follows it.
    edited = config_file.read_text(encoding="utf-8")
    assert edited.startswith(shipped)
    assert "  aphorist:\n    model: models/aphorist" in edited[len(shipped) :]
    settings = load_config(config_file).personas["aphorist"]
    assert settings.model.resolve() == model.resolve() and settings.publisher == "outbox"
    figures = json.loads((model / "eval.json").read_text())
    assert figures["persona"] == "aphorist" and figures["posts"] >= 5

    assert _run("preview", "-p", "aphorist", "-n", "1", cwd=tmp_path).returncode == 0
    # git sees none of the user's persona (the link, its versioned folder); it would see a
    # shipped persona's or a base model's new file.
    untracked = _git("status", "--porcelain", "--untracked-files=all", cwd=tmp_path).stdout
    assert "models/" not in untracked, untracked
    shipped_files = ["models/nietzsche/eval.json", "models/tunes/eval.json",
                     "models/base/model.keras"]  # fmt: skip
    ignored = _git("check-ignore", "--no-index", *shipped_files, cwd=tmp_path)
    assert ignored.returncode == 1 and not ignored.stdout, ignored.stdout


def test_bot_new_refuses_minutes_that_leave_too_little_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#26.18: --minutes bounds the whole command, the critic and the eval included; a budget
    they would eat is refused at once, before the corpus phase."""
    monkeypatch.chdir(tmp_path)
    args = ["new", "ada", "--text", str(TINY_TEXT), "--minutes", "0.1", "--eval-posts", "10",
            "--critic-samples", "20"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: --minutes 0.1 leaves too little time to train: the critic "
                           "(20 samples) and the eval (10 posts) need about ")  # fmt: skip
    assert "give --minutes " in last and "or fewer --critic-samples and --eval-posts" in last
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["new", "x"], "give exactly one source"),
        (["new", "x", "--text"], "--text needs at least one PATH"),
        (["new", "x", "--from", "@a@b.example", "--text", "README.md"], "exactly one source"),
        (["new", "x", "--archive", "README.md", "config.yaml"], "--archive takes one FILE"),
        (["new", "no/slash", "--text", "README.md"], "use letters, digits"),
    ],
)
def test_bot_new_source_mistakes_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bot_new_refuses_to_resume_from_another_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "corpus" / "ada"
    work.mkdir(parents=True)
    source = {"kind": "mastodon", "acct": "@ada@mastodon.example"}
    (work / "new.json").write_text(json.dumps({"version": 1, "source": source, "done": {}}))
    result = CliRunner().invoke(cli, ["new", "ada", "--text", str(TINY_TEXT)])
    assert result.exit_code == 1
    assert "from another source is in progress (--from @ada@mastodon.example)" in result.output
    assert "--restart" in result.output


def test_bot_new_from_another_source_on_a_finished_persona_says_it_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#26.20: every phase done is a finished persona, not a run "in progress"."""
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "corpus" / "ada"
    work.mkdir(parents=True)
    source = {"kind": "mastodon", "acct": "@ada@mastodon.example"}
    done = {"corpus": {"paths": []}, "train": {}, "config": {}, "eval": {"posts": 10}}
    (work / "new.json").write_text(json.dumps({"version": 1, "source": source, "done": done}))
    result = CliRunner().invoke(cli, ["new", "ada", "--text", str(TINY_TEXT)])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: ada is already made, by `bot new` from --from @ada@mastodon.example "
        "(corpus/ada/new.json) (choose another NAME, or add --restart to make it again from "
        "this source)"
    )


def test_small_corpora_fine_tune_and_large_ones_start_from_scratch(tmp_path: Path) -> None:
    base, why = choose_start(50_000, "auto", SHIPPED)
    assert base == SHIPPED and "fine-tuning" in why
    assert choose_start(FINE_TUNE_BELOW_CHARS, "auto", SHIPPED)[0] is None
    assert choose_start(50_000, "scratch", SHIPPED)[0] is None
    none, why = choose_start(50_000, "auto", tmp_path / "missing")
    assert none is None and "no base persona" in why


def test_add_persona_keeps_the_users_comments_and_indent(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    mine = ("# my bots\npersonas:\n    x:                # the first\n        model: m\n"
            "        prompts:\n            - 'A '    # quoted my way\n\n# the end\n")  # fmt: skip
    config.write_text(mine)
    assert add_persona(config, "ada", "models/ada") is True
    text = config.read_text()
    assert text.startswith(mine)
    assert text[len(mine) :].startswith("    ada:\n        model: models/ada ")
    assert add_persona(config, "ada", "models/./ada") is False  # the same folder
    with pytest.raises(ConfigError, match="already there, with model models/ada, not elsewhere"):
        add_persona(config, "ada", "elsewhere")
    assert config.read_text() == text
    (tmp_path / "models" / "ada").mkdir(parents=True)
    assert load_config(config, check_models=False).personas["ada"].publisher == "outbox"


def test_add_persona_creates_a_missing_config(
    tmp_path: Path, make_persona: Callable[..., Path]
) -> None:
    make_persona("ada")
    config = tmp_path / "config.yaml"
    assert add_persona(config, "ada", "models/ada") is True
    assert load_config(config).personas["ada"].model == tmp_path / "models" / "ada"


def test_bot_new_from_an_account_that_opted_out_is_refused(
    mastodon_server: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--from goes through `bot scrape mastodon`: its consent checks, its one-line refusal."""
    monkeypatch.chdir(tmp_path)
    seed_account(mastodon_server, "carol", posts=2, note="#nobot please")
    args = ["new", "carol", "--from", "carol", "--instance", mastodon_server.base_url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "[1/4] corpus: scraping carol" in result.output
    assert (
        result.output.splitlines()[-1].startswith("Error: ") and "--i-have-consent" in result.output
    )
    state = json.loads((tmp_path / "corpus" / "carol" / "new.json").read_text())
    assert state["done"] == {} and not (tmp_path / "models").exists()


def test_bot_new_on_too_little_text_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    posts = tmp_path / "few.jsonl"
    posts.write_text('{"text": "hello there world"}\n{"text": "another post"}\n')
    result = CliRunner().invoke(cli, ["new", "few", "--text", str(posts)])
    assert result.exit_code == 1 and not (tmp_path / "models").exists()
    assert result.output.splitlines()[-1] == (
        "Error: 29 characters is too little to train on (at least 10,000; a voice takes "
        "~1,000,000) (add more text; run the same command again to continue)"
    )


def test_bot_new_imports_an_archive_through_bot_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--archive runs `bot scrape archive` (its cleaning and report) into the work folder;
    the committed archive is far too small to train on, so it stops there, resumable."""
    monkeypatch.chdir(tmp_path)
    archive = REPO / "tests" / "data" / "corpus" / "mastodon-archive"
    result = CliRunner().invoke(cli, ["new", "arch", "--archive", str(archive)])
    assert result.exit_code == 1
    assert f"[1/4] corpus: importing {archive} into corpus/arch/posts.jsonl" in result.output
    assert "wrote " in result.output and " posts to corpus/arch/posts.jsonl" in result.output
    posts = (tmp_path / "corpus" / "arch" / "posts.jsonl").read_text().splitlines()
    assert posts and all(json.loads(line)["text"] for line in posts)
    assert "too little to train on" in result.output.splitlines()[-1]


@pytest.mark.parametrize(
    ("acct", "network"),
    [
        ("@ada@mastodon.example", "mastodon"),
        ("ada@mastodon.example", "mastodon"),
        ("ada", "mastodon"),  # with --instance
        ("https://mastodon.example/@ada", "mastodon"),
        ("@ada.bsky.social", "bluesky"),
        ("ada.bsky.social", "bluesky"),
        ("did:plc:abcdefghijklmnopqrstuvwx", "bluesky"),
        ("https://bsky.app/profile/ada.bsky.social", "bluesky"),
    ],
)
def test_from_names_its_network_by_the_address(acct: str, network: str) -> None:
    assert network_of(acct) == network


def _bluesky_account(network: Any, name: str, posts: list[str], description: str = "") -> Any:
    from atproto import Client

    account = network.create_account(name)
    client = Client(base_url=network.pds_url)
    client.login(account.handle, account.password)
    if description:
        client.com.atproto.repo.put_record({"repo": account.did, "collection": "app.bsky.actor.profile",
                                            "rkey": "self", "record": {"$type": "app.bsky.actor.profile",
                                                                       "description": description}})  # fmt: skip
    for text in posts:
        client.send_post(text)
    network.process_all()
    return account


def test_bot_new_from_a_bluesky_account_that_opted_out_is_refused(
    bsky_network: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--from @handle goes through `bot scrape bluesky`: its consent checks and refusal."""
    monkeypatch.chdir(tmp_path)
    shy = _bluesky_account(bsky_network, "shy", ["a fern", "a fen"], "Painter. #noai")
    args = ["new", "shy", "--from", f"@{shy.handle}", "--instance", bsky_network.appview_url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert f"[1/4] corpus: scraping @{shy.handle} (Bluesky)" in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: ") and "--i-have-consent" in last and "#noai" in last
    assert not (tmp_path / "models").exists()


def test_bot_new_from_a_bluesky_account_scrapes_its_posts(
    bsky_network: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bea = _bluesky_account(bsky_network, "bea", ["The sea is a mirror.", "Stones remember rain."])
    args = ["new", "bea", "--from", bea.handle, "--instance", bsky_network.appview_url]
    result = CliRunner().invoke(cli, args)
    # two posts are too little to train on: it stops before training, with the corpus kept
    assert result.exit_code == 1
    assert "too little to train on" in result.output.splitlines()[-1]
    posts = [json.loads(line) for line in (tmp_path / "corpus" / "bea" / "posts.jsonl").open()]
    assert sorted(p["text"] for p in posts) == ["Stones remember rain.", "The sea is a mirror."]
    assert {p["source"] for p in posts} == {f"bluesky:{bea.handle}"}
