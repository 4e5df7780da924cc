"""TrainConfig: every knob of `bot train`, with its default; the card keeps a copy, so a
persona folder says how it was made (nanoGPT's config-in-the-checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.card import CHAR_LSTM


@dataclass(frozen=True)
class TrainConfig:
    name: str
    n_embd: int = 64
    n_hidden: int = 256
    n_layer: int = 3
    dropout: float = 0.1
    seq_len: int = 128  # characters per training window; every position is a target
    batch_size: int = 64
    epochs: int = 100
    learning_rate: float = 3e-3  # peak, after warm-up
    min_lr_fraction: float = 0.05  # cosine decays to this fraction of the peak
    warmup_steps: int = 200
    clipnorm: float = 1.0  # global gradient norm
    val_fraction: float = 0.05
    min_char_count: int = 5  # rarer characters map to the unknown token (or are dropped)
    rare: str = "unk"
    normalise: bool = True  # curly quotes and dashes -> ASCII
    patience: int = 8  # epochs without a better validation loss before stopping
    max_minutes: float | None = None
    seed: int = 1337
    novelty_n: int = 8
    mixed_precision: bool = False
    kind: str = CHAR_LSTM  # abc_lstm: a music persona (bars.npy, no word list or critic)
    jit_compile: bool = False  # measured slower on CPU (BENCHMARKS.md)
    # (window length, steps) trained before the full seq_len, on a fresh model only
    short_start: tuple[tuple[int, int], ...] = ((16, 300), (32, 200), (64, 150))
    short_start_share: float = 0.5  # at most this share of --max-minutes goes to it
