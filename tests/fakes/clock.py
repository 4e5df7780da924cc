"""A clock that only moves when told: `FakeClock` for the daemon's tests (no test sleeps).

clock = FakeClock(datetime(2026, 11, 26, 14, 0, tzinfo=UTC))
clock.advance(minutes=30)
clock.sleep(5)          # returns at once; time moved by 5 s; every sleep is recorded
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now.astimezone(UTC)

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **delta)
            return self._now.astimezone(UTC)

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        self.sleeps.append(seconds)
        if until is not None and until.is_set():
            return True
        self.advance(max(0.0, seconds))
        return False
