"""Transposition-invariant phrase hashes: is a 4-bar run of a tune copied from the corpus?

A phrase is PHRASE_BARS consecutive bars that hold music, written as the steps between
its notes in semitones and each note's length (rests as `r`), with bar lines kept:
the same tune in D and in G gives the same hashes, a changed rhythm or one changed
interval gives different ones. The index (models/<name>/bars.npy, written by
`bot train --kind abc_lstm`) is the sorted, distinct uint64 hashes of every phrase of
the corpus; a lookup is a binary search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.music.abc import Bar, Tune, read_tune

PHRASE_BARS = 4  # "no run of 4 or more bars copied"


def _bar_tokens(bar: Bar, previous: int | None) -> tuple[list[str], int | None]:
    tokens = []
    if bar.rest_bars:
        tokens.append(f"Z{bar.rest_bars}")
    for note in bar.notes:
        if note.pitch is None:
            tokens.append(f"r{note.duration}")
            continue
        step = "s" if previous is None else str(note.pitch - previous)
        tokens.append(f"{step}:{note.duration}")
        previous = note.pitch
    return tokens, previous


def phrase_hashes(tune: Tune, bars: int = PHRASE_BARS) -> list[int]:
    """One uint64 hash per window of `bars` consecutive music bars."""
    music = tune.music_bars()
    out: list[int] = []
    for start in range(len(music) - bars + 1):
        previous: int | None = None
        parts = []
        for bar in music[start : start + bars]:
            tokens, previous = _bar_tokens(bar, previous)
            parts.append(" ".join(tokens))
        digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "little"))
    return out


def build_bar_index(texts: Iterable[str]) -> np.ndarray:
    """Sorted distinct phrase hashes of every tune in `texts`."""
    hashes: list[int] = []
    for text in texts:
        hashes.extend(phrase_hashes(read_tune(text)))
    return np.unique(np.asarray(hashes, dtype=np.uint64))


def save_bar_index(index: np.ndarray, path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, index.astype(np.uint64), allow_pickle=False)


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def load_bar_index(path: Path) -> np.ndarray | None:
    """The index at `path` (cached until the file changes), or None when there is none."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _load(str(path), mtime)


def copied_phrases(hashes: list[int], index: np.ndarray | None) -> int:
    """How many of `hashes` the index holds."""
    if index is None or not len(index) or not hashes:
        return 0
    wanted = np.asarray(hashes, dtype=np.uint64)
    pos = np.searchsorted(index, wanted)
    pos = np.minimum(pos, len(index) - 1)
    return int(np.count_nonzero(index[pos] == wanted))
