"""Hand freed heap memory back to the OS after the daemon's jobs (glibc's malloc_trim).

Sampling allocates and frees many mid-sized NumPy temporaries. glibc keeps the freed pages
in the process, so a daemon's resident memory climbs to a high-water mark that it never
uses again. Measured with two personas waking every second: +13 MB of RSS after 200
wakes with no growth in live Python or NumPy memory (tracemalloc), and malloc_trim gave
9.5 MB of it back. Where the C library has no malloc_trim (musl, macOS) this does nothing.

`map_large_blocks` keeps glibc from keeping large blocks at all. glibc serves a block over
its mmap threshold from its own mapping, given back when freed, but raises that threshold
to the size of every such block freed (up to 32 MiB), after which a model's arrays
(a few MB each) come from the heap arenas, one per thread, and stay there once freed. A
fleet whose models take turns in memory then keeps every turn's arrays: 200 personas
woken 0.1 s apart peaked at 1,099 MB (BENCHMARKS.md, "Memory under bunched wakes");
loading 60 models through a cache of 8 from 20 threads, 353 MB peak against 164 MB with
the threshold fixed at 1 MiB (the same as loading them one at a time). Setting it
explicitly turns the raising off. A MALLOC_MMAP_THRESHOLD_ the user set is left alone.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks of 1 MiB and more get their own mapping


def _libc(name: str) -> Callable[..., int] | None:
    """A function of the process's own C library, None where it has none (musl, macOS)."""
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


_TRIM = _libc("malloc_trim")
_MALLOPT = _libc("mallopt")


def map_large_blocks() -> bool:
    """Serve blocks of 1 MiB and more from their own mappings for good (glibc's mallopt),
    so that freed model arrays go back to the OS; True where it was set."""
    if _MALLOPT is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(_MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True where the C library can do it."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
