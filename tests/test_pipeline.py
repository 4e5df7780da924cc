"""The post pipeline end to end on the tiny persona: preview, post, wake, all-rejected."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import load_config
from bot.posting.compose import join_post
from bot.posting.persona import Persona
from bot.publishers.outbox import Outbox
from bot.store import SQLiteStore

TINY = Path(__file__).parent / "data" / "tiny_persona"

CONFIG = f"""
personas:
  tiny:
    model: {TINY}
    prompts: ["The "]
    include_prompt: true
    candidates: 32
    max_rounds: 4
    ranking: best
    filters:
      min_chars: 10
      default_blocklist: false
      novelty_words: 8
"""


@pytest.fixture
def tiny_config(write_config: Callable[[str], Path]) -> Path:
    return write_config(CONFIG)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.mark.usefixtures("tiny_config", "no_sockets")
def test_preview_prints_posts_and_sends_nothing_and_stores_nothing(tmp_path: Path) -> None:
    code, out = run("preview", "-n", "2", "--seed", "3", "--all")
    assert code == 0, out
    assert "1. [" in out and "nats/char" in out
    assert not (tmp_path / "home").exists()  # no store, no outbox, nothing written


@pytest.mark.usefixtures("tiny_config")
def test_preview_json_shape_and_seed_reproducibility() -> None:
    code, out = run("preview", "-n", "2", "--seed", "11", "--json", "--all")
    assert code == 0, out
    (item,) = json.loads(out)
    assert set(item) == {
        "persona", "prompt", "unknown_chars", "rounds", "candidates", "posts", "rejections",
        "rejected",
    }  # fmt: skip
    assert item["persona"] == "tiny" and item["prompt"] == "The "
    assert 1 <= len(item["posts"]) <= 2
    for post in item["posts"]:
        assert post["text"].startswith("The ")
        assert post["mean_logprob"] < 0
    assert sum(item["rejections"].values()) == len(item["rejected"])
    assert run("preview", "-n", "2", "--seed", "11", "--json", "--all")[1] == out


@pytest.mark.usefixtures("tiny_config")
def test_preview_rejects_bad_flag_values_as_a_usage_error() -> None:
    code, out = run("preview", "-t", "9")
    assert code == 2  # a flag value, not the config: Click's usage error (#21)
    [error] = [line for line in out.splitlines() if line.startswith("Error:")]
    assert "'-t' / '--temperature': 9.0 is not in the range 0<=x<=2" in error


def test_preview_imports_neither_tensorflow_nor_keras(tiny_config: Path) -> None:
    code = (
        "import sys\nfrom bot.commands.cli import cli\n"
        "try:\n    cli(['-c', sys.argv[1], 'preview', '-n', '1', '--seed', '1'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "bad = [m for m in ('tensorflow', 'keras', 'torch', 'jax') if m in sys.modules]\n"
        "assert not bad, bad\nprint('clean')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny_config)], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("clean")


def test_post_goes_to_the_outbox_and_the_store(tiny_config: Path, tmp_path: Path) -> None:
    code, out = run("post", "--seed", "5")
    assert code == 0, out
    assert "posted to outbox" in out
    config = load_config(tiny_config)
    lines = (config.outbox / "tiny.jsonl").read_text().splitlines()
    assert len(lines) == 1
    text = json.loads(lines[0])["text"]
    with SQLiteStore(config.store) as store:
        (row,) = store.recent_posts("tiny")
    assert row.text == text and row.publisher == "outbox"
    assert row.slot_key.startswith("manual:")


def test_post_without_p_posts_for_one_persona_only(write_config: Callable[[str], Path]) -> None:
    """#26.17: with several personas `bot post` needs -p (one line naming them) or --all;
    it never posts for every persona unasked."""
    twin = CONFIG.split("personas:\n", 1)[1].replace("  tiny:", "  twin:")
    config = load_config(write_config(CONFIG + twin))
    code, out = run("post", "--seed", "5")
    assert code == 1
    [error] = [line for line in out.splitlines() if line.startswith("Error:")]
    assert "tiny, twin" in error and "-p NAME" in error and "--all" in error, error
    assert not config.outbox.exists()  # nothing posted
    code, out = run("post", "--seed", "5", "-p", "twin")
    assert code == 0, out
    assert [line.split(":")[0] for line in out.splitlines() if "posted to" in line] == ["twin"]
    code, out = run("post", "--seed", "5", "--all")
    assert code == 0, out
    assert [line.split(":")[0] for line in out.splitlines() if "posted to" in line] == [
        "tiny", "twin",
    ]  # fmt: skip
    with SQLiteStore(config.store) as store:
        assert [len(store.recent_posts(name)) for name in ("tiny", "twin")] == [1, 2]


def test_wake_posts_a_slot_once(tiny_config: Path) -> None:
    config = load_config(tiny_config)
    settings = config.persona("tiny")
    outbox = Outbox(config.outbox)
    with SQLiteStore(config.store) as store:
        runner = Persona(settings, store=store, publisher=outbox, rng=np.random.default_rng(1))
        first = runner.wake("2026-01-01T10:00Z")
        second = runner.wake("2026-01-01T10:00Z")
        assert first.outcome == "posted"
        assert second.outcome == "already_claimed"
        assert len(store.recent_posts("tiny")) == 1
    assert len(outbox.read("tiny")) == 1


def test_all_rejected_posts_nothing_and_records_why(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(
        CONFIG.replace('prompts: ["The "]', 'prompts: ["Forbidden "]').replace(
            "default_blocklist: false", "default_blocklist: false\n      blocklist: [forbidden]"
        )
    )
    config = load_config(path)
    outbox = Outbox(config.outbox)
    with SQLiteStore(config.store) as store:
        runner = Persona(
            config.persona("tiny"), store=store, publisher=outbox, rng=np.random.default_rng(2)
        )
        result = runner.wake("2026-01-01T11:00Z")
        assert result.outcome == "no_candidate"
        assert result.reasons  # counted per reason
        counts = store.rejection_counts("tiny")
        assert sum(counts.values()) == 32 * 4  # every candidate of every round
        assert store.slot("tiny", "2026-01-01T11:00Z").status == "skipped"
        assert store.recent_posts("tiny") == []
    assert not (config.outbox / "tiny.jsonl").exists() or outbox.read("tiny") == []
    code, out = run("-c", str(path), "post")
    assert code == 1
    assert "no candidate survived" in out


@pytest.mark.parametrize(
    ("prompt", "continuation", "include", "expected"),
    [
        ("Man is ", "a rope.", True, "Man is a rope."),
        ("Man is ", "a rope.", False, "A rope."),
        ("Man is", "n't a rope.", False, "A rope."),  # the cut word is dropped
        ("", " what then?", False, "What then?"),
        (
            "Truth is ",
            "the _very_ ground of snake_case.",
            True,
            "Truth is the very ground of snake_case.",
        ),
    ],
)
def test_join_post(prompt: str, continuation: str, include: bool, expected: str) -> None:
    assert join_post(prompt, continuation, include) == expected


def test_prompt_placeholders_are_filled_in_the_personas_zone() -> None:
    """23:30 UTC on a Monday is already Tuesday in Tokyo: {weekday} says Tuesday."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from bot import config as cfg

    settings = cfg.PersonaSettings(
        name="tiny",
        model=TINY,
        prompts=("On {weekday}, {date}, ",),
        schedule=replace(cfg.Schedule(), timezone="Asia/Tokyo"),
    )
    monday_night = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    persona = Persona(settings, now=lambda: monday_night)
    assert persona.pick_prompt() == "On Tuesday, December 1, "
