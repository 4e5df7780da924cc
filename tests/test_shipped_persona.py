"""The embedded default works right after install: config.yaml + models/nietzsche."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.engine.card import read_card

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_config(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT / "config.yaml"


def test_shipped_persona_meets_its_quality_bar() -> None:
    card = read_card(ROOT / "models" / "nietzsche")
    assert card.metrics["best_val_loss_nats_per_char"] <= 1.45
    assert card.corpus["chars"] > 1_500_000
    assert (ROOT / "models" / "nietzsche" / "README.md").read_text().count("public domain") >= 1


def test_check_passes_on_the_shipped_config(repo_config: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(repo_config), "check"])
    assert result.exit_code == 0, result.output
    assert "persona nietzsche:" in result.output and "3x256 LSTM" in result.output


def test_preview_on_the_shipped_config_writes_whole_english_sentences(repo_config: Path) -> None:
    result = CliRunner().invoke(
        cli, ["-c", str(repo_config), "preview", "-n", "3", "--seed", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.output)
    assert len(item["posts"]) == 3
    for post in item["posts"]:
        text = post["text"]
        assert 40 <= len(text) <= 280
        assert text[-1] in ".!?\"'"
        words = text.split()
        common = {"the", "of", "and", "to", "a", "is", "in", "that", "it", "his", "he"}
        assert sum(w.lower().strip(",.;:!?") in common for w in words) >= len(words) // 8


def test_report_on_the_shipped_config_shows_the_recorded_eval(
    repo_config: Path, tmp_path: Path
) -> None:
    """#26.23: the shipped persona comes with its `bot eval` figures (eval.json, 300 posts),
    so `bot report` shows them rather than "not measured yet"."""
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["-c", str(repo_config), "report", "-o", str(page)])
    assert result.exit_code == 0, result.output
    text = html.unescape(page.read_text(encoding="utf-8"))
    assert "Not measured yet" not in text
    assert "300 posts measured (eval.json)" in text
    assert "distinguishable from the author (ROC AUC, 0.5 = not at all): ngram 0." in text
    assert "held-out loss: 1.802 bits/char" in text  # BENCHMARKS.md's 1.8020
