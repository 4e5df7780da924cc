"""What the daemon keeps per persona between wakes, its timings, the names it writes to the
store for `bot status`, and its log helpers. Shared by bot/daemon/scheduler.py (Daemon) and its
mixins bot/daemon/health.py and bot/daemon/lifecycle.py."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import config as cfg
from bot.core.log import format_fields
from bot.core.post import Publisher
from bot.posting.persona import Persona
from bot.store import isoformat_utc

log = logging.getLogger("bot.daemon.scheduler")

# ---------------------------------------------------------------------------------------
HEARTBEAT_SECONDS = 30.0  # `bot status --check` defaults to 6 missed beats (180 s)
ALIVE_BEAT_SECONDS = 6 * HEARTBEAT_SECONDS  # a "daemon" beat this fresh: one runs (as --check)
STOPPED_BEAT = "daemon:stopped"  # written when `bot run` stops (SIGTERM/SIGINT)
STARTED_BEAT = "daemon:started"  # written when `bot run` starts: older persona states are stale
ONCE_BEAT = "daemon:once"  # `bot run --once` beats this, not "daemon": it is no running daemon
STATE_CURSOR = "state:"  # + persona: its health in the running daemon (`_record_state`), JSON
RUN_CURSOR = "daemon:run"  # the running daemon's id: a persona state of another run is stale
SHUTDOWN_GRACE_SECONDS = 8.0  # an in-flight wake gets this long; systemd/docker allow 10 s
PUBLISH_ATTEMPTS = 3  # per wake, same idempotency key each time
RETRY_BASE_DELAY_SECONDS = 2.0  # publish backoff inside a wake: 2, 4 s (with jitter)
RETRY_MAX_DELAY_SECONDS = 30.0  # a rate limit resetting later than this ends the wake...
MAX_RETRY_DELAY = timedelta(minutes=30)  # ...and a retry job waits at most this long
MAX_BACKOFF_WAKES = 16  # a failing persona skips 2, 4, 8, 16, 16, ... slots
TAKEOVER_MARGIN = timedelta(seconds=0.5)  # after another holder's lease, before a look
# ---------------------------------------------------------------------------------------


def backoff_slots(streak: int) -> int:
    """Slots a persona skips after `streak` failed wakes in a row: none after one, then
    2, 4, 8, 16, 16, ..."""
    return 0 if streak < 2 else min(2 ** (streak - 1), MAX_BACKOFF_WAKES)


@dataclass
class _PersonaState:
    """What this process knows about one persona between wakes. What every daemon on the
    store must agree on (failed wakes in a row, the backoff, disabled) lives in the
    store (`Store.persona_health`); `disabled` here is this process's copy of it."""

    settings: cfg.PersonaSettings
    runner: Persona
    publisher: Publisher
    lock: threading.Lock
    failures: int = 0  # failed wakes since this process started
    disabled: str | None = None  # why (seen in the store or found here), until restart
    replier: Any = None
    recorded: tuple[str, str] | None = None  # the health last written to the store


def _iso(moment: datetime | None) -> str | None:
    return isoformat_utc(moment) if moment is not None else None


def _event_with_traceback(name: str, err: BaseException, **fields: Any) -> None:
    """`event()` at ERROR with `err`'s traceback after the line."""
    payload = {"event": name, **fields}
    log.error("%s", format_fields(payload), exc_info=err, extra={"revenant_fields": payload})
