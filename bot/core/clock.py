"""Time, injectable: the daemon asks a `Clock` what time it is and how to wait.

    clock = SystemClock()
    slot_at = clock.now()                     # aware, UTC
    stopped = clock.sleep(2.0, until=stop)    # True if `stop` was set while waiting

Tests pass `tests.fakes.clock.FakeClock`, whose time only moves when told (or when
`sleep` is called), so no test sleeps. APScheduler keeps its own wall clock for when a job
fires; a Clock decides everything the daemon derives from time (slot keys, backoff waits).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        """Wait `seconds`, or less if `until` is set; True when `until` cut it short."""
        ...


class SystemClock:
    """The real clock; `sleep` is an interruptible wait, so shutdown never waits it out."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if until is None:
            time.sleep(max(0.0, seconds))
            return False
        return until.wait(max(0.0, seconds))
