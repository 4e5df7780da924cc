"""A music persona (card kind abc_lstm) whose model ends every sample at once.

The committed tiny persona's model with its output bias pushed onto the end-of-post
token: whatever it is primed with, the next token is the end. Primed with a whole tune,
a candidate is exactly that tune, finished (`stop == "eos"`), so tests choose the tunes
the music pipeline sees while everything else (card, .keras file, NumPy engine, model
cache) is the real thing.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py

from bot.engine.card import ABC_LSTM, BARS_FILE, CARD_FILE, EOS, MODEL_FILE
from bot.music.novelty import build_bar_index, save_bar_index

# A well-formed reel in G, two repeated parts with first and second endings: the tune the
# music tests judge, render and post.
REEL = """\
T:Test Reel
M:4/4
L:1/8
K:G
|:GABc dBGB|cBcd efge|dBGB AGFA|GBdB G4:|
|:gfge dBGB|cBcd edef|gfga bgdB|1 cAFA G4:|2 cAFA G2z2|]"""

TINY_PERSONA = Path(__file__).resolve().parents[1] / "data" / "tiny_persona"


def make_tune_persona(directory: Path, corpus: list[str] = ()) -> Path:  # type: ignore[assignment]
    """models/<name>/ for a tune persona; `corpus` tunes make its phrase index."""
    shutil.copytree(TINY_PERSONA, directory, dirs_exist_ok=True)
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    card.update(name=directory.name, kind=ABC_LSTM)
    (directory / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    model = directory / MODEL_FILE
    with zipfile.ZipFile(model) as old:
        parts = {name: old.read(name) for name in old.namelist()}
    weights = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        bias = h5["layers/dense/vars/1"]
        values = bias[...]
        values[EOS] = 1e4  # the end of the post, always
        bias[...] = values
    parts["model.weights.h5"] = weights.getvalue()
    with zipfile.ZipFile(model, "w") as new:
        for name, data in parts.items():
            new.writestr(name, data)
    save_bar_index(build_bar_index(list(corpus)), directory / BARS_FILE)
    return directory
