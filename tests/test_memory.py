"""Freed heap goes back to the OS after the daemon's jobs (bot/core/memory.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bot.core.memory import release_free_memory


def test_freed_numpy_temporaries_are_given_back(rss_bytes: Callable[[], int]) -> None:
    # 40 MB of 100 kB arrays (below glibc's mmap threshold, so they come from the heap), all
    # freed but the last, which pins the top of the heap: glibc alone keeps those pages.
    arrays = [np.ones(25_000, np.float32) for _ in range(400)]
    last = arrays[-1]
    del arrays
    before = rss_bytes()
    if not release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    given_back = before - rss_bytes()
    assert given_back > 20 * 2**20, f"only {given_back / 2**20:.1f} MiB given back"
    assert last.sum() == 25_000  # the live array is untouched
