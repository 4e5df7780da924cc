"""The embedded default works right after install: config.yaml + models/nietzsche."""

from __future__ import annotations

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
