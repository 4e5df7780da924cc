"""The persona's critic: how much a candidate reads like the author, as a log-odds.

A discriminator in the GAN sense, used to choose rather than to back-propagate: `bot train`
fits it on runs of the author's own sentences against the language model's own samples,
and the daemon ranks candidates by it (bot/posting/filters.py `rank`). It is a linear model over
hashed features, so it runs in NumPy in microseconds per candidate and its weights are one
small file in the persona folder:

    critic.npz   weights [2**bits] float16, bias, and the feature spec version

Features, each weighted 1 + log(count) and the row L2-normalised (so a longer text does
not score further from zero for being long): lower-cased words, word bigrams (with the
post's start and end as words), and character 3- and 4-grams of the lower-cased text.
Hashing is zlib's CRC-32, identical on every platform and Python run.

Training (`fit_critic`, bot/train/curate.py) needs scikit-learn; scoring needs NumPy only.
"""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from bot.core.errors import ModelError

CRITIC_FILE = "critic.npz"
FEATURES_VERSION = 1
DEFAULT_BITS = 17  # 131,072 weights, 256 KB as float16
_WORD = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")


def features(text: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the text's hashed, weighted, L2-normalised features."""
    low = " ".join(text.lower().split())
    toks = _WORD.findall(low)
    grams = [f"w {t}" for t in toks]
    edged = ["<s>", *toks, "</s>"]
    grams += [f"b {a} {b}" for a, b in pairwise(edged)]
    padded = f" {low} "
    grams += [f"c {padded[i : i + n]}" for n in (3, 4) for i in range(len(padded) - n + 1)]
    mask = (1 << bits) - 1
    counts = Counter(zlib.crc32(g.encode("utf-8")) & mask for g in grams)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    val = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
    val /= math.sqrt(float((val * val).sum()))
    return idx, val.astype(np.float32)


@dataclass(frozen=True)
class Critic:
    """Scores texts: log-odds that the author wrote them (positive: reads like the author)."""

    weights: np.ndarray  # [2**bits] float32
    bias: float
    bits: int

    def score(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts), dtype=np.float64)
        for i, text in enumerate(texts):
            idx, val = features(text, self.bits)
            out[i] = self.bias + float(self.weights[idx] @ val)
        return out

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez(f, weights=self.weights.astype(np.float16), bias=np.float64(self.bias),
                     bits=np.int64(self.bits), version=np.int64(FEATURES_VERSION))  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Critic:
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["version"])
                bits = int(data["bits"])
                weights = data["weights"].astype(np.float32)
                bias = float(data["bias"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ModelError(f"{path}: cannot read the critic ({err})",
                             "retrain it with `bot train --critic-only`") from err  # fmt: skip
        if version != FEATURES_VERSION or weights.shape != (1 << bits,):
            raise ModelError(f"{path}: critic features v{version}, this bot reads "
                             f"v{FEATURES_VERSION}", "retrain it with `bot train --critic-only`")  # fmt: skip
        return cls(weights, bias, bits)
