"""Writing a persona folder: an atomic swap of models/NAME (a symlink flipped with one
rename; an old real folder exchanged with renameat2 on Linux), the loss plot, and the
versions recorded in the card. Used by bot/train/trainer.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

import bot

MODEL_DIR_MODE = 0o755  # readable by the daemon's user; the files get 0644 under umask 022


@contextlib.contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling of out_dir; on success make it out_dir in one step.

    out_dir is a symlink to a versioned sibling (`.NAME.v<stamp>`), flipped with one
    rename (`os.replace` of a new link over the old one), so there is no moment without a
    model folder and a crash at any point leaves the old or the new persona. A real
    directory from an older version is exchanged for the link atomically where the OS
    can (Linux renameat2 RENAME_EXCHANGE); elsewhere that one-time conversion has a short
    window. The previous version is removed after the flip.

    The folder is 0755 (mkdtemp makes it 0700), as the shipped personas are: the daemon
    may run as another user than the trainer (README: the systemd unit, the Docker image)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(MODEL_DIR_MODE)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    version = out_dir.with_name(f".{out_dir.name}.v{stamp}-{os.getpid()}")
    tmp.rename(version)
    link = out_dir.with_name(f".{out_dir.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(version.name, target_is_directory=True)
    previous = out_dir.parent / out_dir.readlink() if out_dir.is_symlink() else None
    if out_dir.is_dir() and not out_dir.is_symlink():  # a folder from an older version
        if _exchange(link, out_dir):
            shutil.rmtree(link, ignore_errors=True)  # `link` now names the old folder
            return
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        previous = old
    link.replace(out_dir)  # the flip: one rename
    if previous is not None and previous.resolve() != version.resolve():
        shutil.rmtree(previous, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the OS or
    the file system cannot."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def _plot(history: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _versions() -> dict[str, str]:
    versions = {"revenant": bot.__version__, "keras": keras.__version__, "numpy": np.__version__}
    versions["backend"] = keras.backend.backend()
    if versions["backend"] == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions
