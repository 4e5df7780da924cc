"""Sampling arithmetic shared by the batch, row and C paths' Python side: weights at a
temperature, top-k and top-p truncation, and where a sentence ends a post."""

from __future__ import annotations

import re

import numpy as np

SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
SOFT_LIMIT = 0.75  # past this fraction of max_chars, a finished sentence ends the post
SENTENCE_ENDS = ".!?"  # past the soft limit, one of these ends the post


def _ends_sentence(ch: str, t: int, soft: int) -> bool:
    """Past the soft limit, a sentence's last character ends the post (t: its position)."""
    return t >= soft and t > 0 and ch in SENTENCE_ENDS


def _weights(z: np.ndarray, e: np.ndarray, zs: np.ndarray, temperature: float) -> np.ndarray:
    """Unnormalised sampling weights: exp(zs / T), with exp(z) = e reused where zs is z."""
    if temperature != 1.0:
        return np.exp(zs / temperature)
    return e if zs is z else np.exp(zs)


def _truncate(w: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Zero all but the top-k, then all but the top-p mass, of weights along the last axis."""
    if 0 < top_k < w.shape[-1]:
        kth = np.partition(w, -top_k, axis=-1)[..., -top_k, None]
        w = np.where(w < kth, 0.0, w)
    if top_p < 1.0:
        order = np.argsort(-w, axis=-1)
        sorted_w = np.take_along_axis(w, order, -1)
        total = sorted_w.sum(axis=-1, keepdims=True)
        # keep the smallest prefix whose mass reaches top_p (always the top token)
        cut = np.cumsum(sorted_w, axis=-1) / total - sorted_w / total >= top_p
        mask = np.zeros_like(cut)
        np.put_along_axis(mask, order, cut, axis=-1)
        w = np.where(mask, 0.0, w)
    return w


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
