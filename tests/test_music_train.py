"""`bot train --kind abc_lstm`: a tiny music persona from the committed tune book, with its
phrase index and no prose word list or critic, that the daemon's engine loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.engine import engines
from bot.engine.card import ABC_LSTM, BARS_FILE, read_card
from bot.engine.engines import load_engine
from bot.music.novelty import load_bar_index

AIRS = Path(__file__).parent / "data" / "abc" / "airs.abc"


@pytest.mark.slow
@pytest.mark.tf
def test_bot_train_kind_abc_lstm_writes_a_music_persona(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    corpus = tmp_path / "tunes.jsonl"
    result = CliRunner().invoke(cli, ["scrape", "abc", str(AIRS), "-o", str(corpus)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "models" / "tunes"
    result = CliRunner().invoke(cli, [
        "train", "-p", "tunes", "--kind", "abc_lstm", "--corpus", str(corpus), "-o", str(out),
        "--epochs", "2", "--hidden", "16", "--layers", "1", "--embedding", "8",
        "--seq-len", "32", "--batch-size", "8", "--min-char-count", "1",
        "--val-fraction", "0.2",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    card = read_card(out)
    assert card.kind == ABC_LSTM
    assert {p.name for p in out.iterdir()} == {"card.json", "loss.png", "model.keras",
                                               "ngrams.npy", BARS_FILE}  # fmt: skip
    index = load_bar_index(out / BARS_FILE)
    assert index is not None and len(index) > 20 and bool(np.all(index[1:] > index[:-1]))
    assert "|" in card.chars and "'" in card.chars
    engine = load_engine(out)  # the daemon's factory for the kind
    assert engine.card.kind == ABC_LSTM
    assert ABC_LSTM in engines.kinds()
