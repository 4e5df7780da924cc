"""Test-only crash points: die like `kill -9` at a named step boundary of a slot.

    REVENANT_CRASH_AT=after_compose bot run --once     # SIGKILL once the text is written ahead

Points (in the order a slot passes them): after_claim, after_compose, during_send (a timer
kills the process REVENANT_CRASH_DELAY seconds, default 0.3, into the send, while the
server holds the request), after_accept (the server answered, nothing recorded yet),
after_record. REVENANT_CRASH_SKIP=N passes the point N times first (a daemon that dies
mid-run, not at its first slot: tests/test_replicas.py). The fault-injection tests and
bench/exactly_once.py set the variables on a real `bot run` process. This is the one module besides config.py that reads the
environment, on purpose: a hook that never fires unless the variable names its point.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "REVENANT_CRASH_AT"
DELAY_ENV = "REVENANT_CRASH_DELAY"
SKIP_ENV = "REVENANT_CRASH_SKIP"
POINTS = ("after_claim", "after_compose", "during_send", "after_accept", "after_record")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_passes = 0  # times the named point was passed without dying
_passes_lock = threading.Lock()


def crash_point(name: str) -> None:
    """SIGKILL this process here when REVENANT_CRASH_AT names this point (after passing
    it REVENANT_CRASH_SKIP times, default 0)."""
    global _passes
    if os.environ.get(CRASH_ENV) != name:
        return
    with _passes_lock:
        _passes += 1
        due = _passes > int(os.environ.get(SKIP_ENV, "0"))
    if due:
        _die()


def crash_during(name: str) -> threading.Timer | None:
    """Arm a SIGKILL REVENANT_CRASH_DELAY seconds from now when the variable names this
    point (the send then in flight is cut off); the caller cancels it when done."""
    if os.environ.get(CRASH_ENV) != name:
        return None
    timer = threading.Timer(float(os.environ.get(DELAY_ENV, "0.3")), _die)
    timer.daemon = True
    timer.start()
    return timer
