"""The training loop's parts for Keras: shuffled windows of the corpus, validation windows,
the time budget with its warm-up and cosine learning rate, checkpoints every epoch (best
weights kept, `--resume` state), and a stop after N steps. Used by bot/train/trainer.py."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from bot.core.errors import CorpusError

LN2 = math.log(2.0)

if TYPE_CHECKING:
    from bot.train.settings import TrainConfig


class WindowDataset(keras.utils.PyDataset):
    """Batches of [batch, seq_len] windows over the token stream, x -> next token y.

    Each epoch starts the windows at a new random offset and shuffles them, so the model
    sees every boundary in different places.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        super().__init__()
        self.ids, self.seq_len, self.batch_size = ids, seq_len, batch_size
        self.rng = np.random.default_rng(seed)
        if (len(ids) - 1) // seq_len < batch_size:
            raise CorpusError(
                f"the training text ({len(ids)} chars) is shorter than one batch "
                f"({batch_size} x {seq_len})",
                "use a larger corpus or smaller --batch-size/--seq-len",
            )
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        offset = int(self.rng.integers(0, self.seq_len))
        n = (len(self.ids) - 1 - offset) // self.seq_len
        self.starts = offset + self.seq_len * self.rng.permutation(n)

    def __len__(self) -> int:
        return len(self.starts) // self.batch_size

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        starts = self.starts[i * self.batch_size : (i + 1) * self.batch_size]
        idx = starts[:, None] + np.arange(self.seq_len + 1)
        windows = self.ids[idx]
        return windows[:, :-1], windows[:, 1:]


def validation_windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows over the held-out stream (the ragged tail is dropped)."""
    n = (len(ids) - 1) // seq_len
    if n == 0:
        raise CorpusError(
            f"the validation text ({len(ids)} chars) is shorter than one window ({seq_len})",
            "use a larger corpus, a larger --val-fraction or a smaller --seq-len",
        )
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
    windows = ids[idx]
    return windows[:, :-1], windows[:, 1:]


class Budget(keras.callbacks.Callback):
    """Learning-rate schedule and wall-clock budget in one place.

    Progress is the larger of steps done / steps planned and minutes spent / budget, so the
    cosine decay ends when the time does; the run stops cleanly once the budget is spent
    (Keras still validates the partial epoch, so the best weights are kept). The time spent
    before a resume (`elapsed0`) counts against the budget, as it does for the decay.
    """

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, step0: int, elapsed0: float):
        super().__init__()
        self.cfg = cfg
        self.total_steps = max(1, cfg.epochs * steps_per_epoch)
        self.step = step0
        self.elapsed0 = elapsed0
        self.t0 = time.monotonic()
        self.budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
        self.out_of_time = False

    @property
    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t0

    def lr_at(self, step: int, elapsed: float) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        progress = step / self.total_steps
        if self.budget_s:
            progress = max(progress, elapsed / self.budget_s)
        progress = min(progress, 1.0)
        low = cfg.learning_rate * cfg.min_lr_fraction
        return low + 0.5 * (cfg.learning_rate - low) * (1 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self.lr_at(self.step, self.elapsed))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step += 1
        if self.budget_s and self.elapsed >= self.budget_s:  # spent before a resume counts
            self.out_of_time = True
            self.model.stop_training = True


class Checkpoints(keras.callbacks.Callback):
    """Per epoch: report nats and bits per char, keep the best weights, save for --resume."""

    def __init__(self, workdir: Path, state: dict[str, Any], budget: Budget, verbose: bool):
        super().__init__()
        self.workdir, self.state, self.budget, self.verbose = workdir, state, budget, verbose

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        val, loss = float(logs["val_loss"]), float(logs["loss"])
        state = self.state
        state["history"].append(
            {"epoch": epoch + 1, "loss": loss, "val_loss": val, "elapsed_s": self.budget.elapsed}
        )
        improved = val < state["best_val_loss"]
        if improved:
            state["best_val_loss"], state["best_epoch"] = val, epoch + 1
            self.model.save_weights(self.workdir / "best.weights.h5")
        state.update(epoch=epoch + 1, step=self.budget.step, elapsed_s=self.budget.elapsed)
        self.model.save(self.workdir / "last.keras")  # weights + optimizer, for --resume
        (self.workdir / "state.json").write_text(json.dumps(state, indent=1))
        if self.verbose:
            mark = " *best*" if improved else ""
            print(
                f"epoch {epoch + 1}: train {loss:.4f} val {val:.4f} nats/char "
                f"({val / LN2:.3f} bits/char){mark}  elapsed {self.budget.elapsed / 60:.1f} min",
                flush=True,
            )


class _StopAfter(keras.callbacks.Callback):
    """Ends a short-window phase after `steps` batches or once the budget's share is spent."""

    def __init__(self, steps: int, budget: Budget, deadline_s: float | None) -> None:
        super().__init__()
        self.steps, self.budget, self.deadline_s, self.done = steps, budget, deadline_s, 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.done += 1
        late = self.deadline_s is not None and self.budget.elapsed >= self.deadline_s
        if self.done >= self.steps or late:
            self.model.stop_training = True
