"""The shipped music persona: models/tunes with deploy/tunes.yaml composes tunes that pass
the music filters, and its card carries its held-out bits/char."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import load_config
from bot.engine.card import ABC_LSTM, BARS_FILE, read_card
from bot.music import tools
from bot.music.novelty import load_bar_index
from bot.posting.persona import Persona

ROOT = Path(__file__).resolve().parents[1]
TUNES = ROOT / "models" / "tunes"
CONFIG = ROOT / "deploy" / "tunes.yaml"


def test_shipped_tunes_persona_has_its_card_and_phrase_index() -> None:
    card = read_card(TUNES)
    assert card.kind == ABC_LSTM
    assert card.metrics["best_val_bits_per_char"] < 2.0
    assert card.corpus["chars"] > 900_000
    index = load_bar_index(TUNES / BARS_FILE)
    assert index is not None and len(index) > 40_000
    readme = (TUNES / "README.md").read_text(encoding="utf-8")
    assert "public domain" in readme and "Nottingham" in readme  # what it is not trained on


@pytest.mark.skipif(bool(tools.missing()), reason="needs the audio tools (apt)")
def test_check_passes_on_the_shipped_music_config() -> None:
    result = CliRunner().invoke(cli, ["-c", str(CONFIG), "check", "-p", "tunes"])
    assert result.exit_code == 0, result.output
    assert "tunes: music filters, phrase index" in result.output
    assert "(all found)" in result.output


@pytest.mark.skipif(tools.find("abc2midi") is None, reason="needs abcmidi (apt)")
def test_the_shipped_persona_composes_a_tune_that_passes_the_filters() -> None:
    settings = load_config(CONFIG).personas["tunes"]
    comp = Persona(settings, rng=np.random.default_rng(7)).compose(history=[])
    assert comp.chosen, comp.reason_counts()
    tune = comp.chosen[0].text
    assert tune.startswith("T:") and "\nK:" in tune
    assert json.dumps(comp.reason_counts())  # every rejection has a stable reason
