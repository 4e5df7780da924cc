"""Hand freed heap memory back to the OS after the daemon's jobs (glibc's malloc_trim).

Sampling allocates and frees many mid-sized NumPy temporaries. glibc keeps the freed pages
in the process, so a daemon's resident memory climbs to a high-water mark that it never
uses again. Measured with two personas waking every second: +13 MB of RSS after 200
wakes with no growth in live Python or NumPy memory (tracemalloc), and malloc_trim gave
9.5 MB of it back. Where the C library has no malloc_trim (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _find_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the process's own libc
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _find_trim()


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True where the C library can do it."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
