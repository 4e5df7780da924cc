"""The persona's critic: how much a candidate reads like the author, as a log-odds.

A discriminator in the GAN sense, used to choose rather than to back-propagate: `bot train`
fits it on runs of the author's own sentences against the language model's own samples,
and the daemon ranks candidates by it (bot/filters.py `rank`). It is a linear model over
hashed features, so it runs in NumPy in microseconds per candidate and its weights are one
small file in the persona folder:

    critic.npz   weights [2**bits] float16, bias, and the feature spec version

Features, each weighted 1 + log(count) and the row L2-normalised (so a longer text does
not score further from zero for being long): lower-cased words, word bigrams (with the
post's start and end as words), and character 3- and 4-grams of the lower-cased text.
Hashing is zlib's CRC-32, identical on every platform and Python run.

Training (`fit_critic`) needs scikit-learn (requirements-train.txt); scoring needs NumPy.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from bot.errors import BotError, ModelError

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
        except (OSError, KeyError, ValueError) as err:
            raise ModelError(f"{path}: cannot read the critic ({err})",
                             "retrain it with `bot train --critic-only`") from err  # fmt: skip
        if version != FEATURES_VERSION or weights.shape != (1 << bits,):
            raise ModelError(f"{path}: critic features v{version}, this bot reads "
                             f"v{FEATURES_VERSION}", "retrain it with `bot train --critic-only`")  # fmt: skip
        return cls(weights, bias, bits)


def fit_critic(
    real: Sequence[str], fake: Sequence[str], *, bits: int = DEFAULT_BITS, c: float = 4.0
) -> tuple[Critic, float]:
    """Logistic regression of real (1) against fake (0) on `features`; returns the critic and
    its 5-fold cross-validated ROC AUC on this data (how well it tells them apart)."""
    try:
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
    except ImportError as err:
        raise BotError("scikit-learn is not installed (the critic's training needs it)",
                       "pip install -r requirements-train.txt") from err  # fmt: skip
    texts = [*real, *fake]
    y = np.array([1] * len(real) + [0] * len(fake))
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        idx, val = features(text, bits)
        rows.append(np.full(idx.size, i))
        cols.append(idx)
        vals.append(val)
    x = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(texts), 1 << bits))  # fmt: skip
    model = LogisticRegression(C=c, max_iter=3000)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    oof = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    auc = float(roc_auc_score(y, oof))
    model.fit(x, y)
    critic = Critic(model.coef_[0].astype(np.float16).astype(np.float32),
                    float(model.intercept_[0]), bits)  # fmt: skip
    return critic, auc
