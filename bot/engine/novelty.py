"""Word n-gram index of a training corpus, for the `not_novel` filter.

The trainer builds it (`build_index`) and saves it next to the model as a sorted array of
64-bit hashes; the online path loads it (`load_index`) and asks how long a run of words a
candidate shares with the corpus (`longest_shared_run`). NumPy only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation ignored: "Man's, not God!" -> ["man's", "not", "god"]."""
    return [w.replace("\u2019", "'") for w in WORD.findall(text.lower())]


def _hash(gram: Iterable[str]) -> int:
    digest = hashlib.blake2b(" ".join(gram).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def ngram_hashes(tokens: list[str], n: int) -> np.ndarray:
    """Hashes of every n-word window, in text order (empty when fewer than n words)."""
    return np.array([_hash(tokens[i : i + n]) for i in range(len(tokens) - n + 1)], dtype=np.uint64)


def build_index(documents: Iterable[str], n: int = 8) -> np.ndarray:
    """Sorted unique hashes of all word n-grams of the documents (n-grams never span two)."""
    parts = [ngram_hashes(words(doc), n) for doc in documents]
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate(parts))


def save_index(index: np.ndarray, path: Path) -> None:
    with path.open("wb") as f:
        np.save(f, index.astype(np.uint64), allow_pickle=False)


def load_index(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def longest_shared_run(text: str, index: np.ndarray, n: int) -> int:
    """Length in words of the longest run of `text` that also occurs in the corpus.

    Exact for runs of n words or more (consecutive indexed n-grams chain up); 0 when no
    n-gram matches. Hash collisions (64-bit) are negligible.
    """
    hashes = ngram_hashes(words(text), n)
    if hashes.size == 0 or index.size == 0:
        return 0
    pos = np.searchsorted(index, hashes).clip(max=index.size - 1)
    hit = index[pos] == hashes
    best = run = 0
    for h in hit:
        run = run + 1 if h else 0
        best = max(best, run)
    return best + n - 1 if best else 0
