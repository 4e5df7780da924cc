"""The daemon behind `bot run`: APScheduler 3.x jobs, slot keys, isolation, clean shutdown.

    daemon = Daemon(config, personas, store)   # publishers and models are built here
    daemon.run()                               # blocks until SIGTERM/SIGINT, then returns
    daemon.run_once()                          # each persona's current slot once (--once)

Jobs, in one `BlockingScheduler`:
    post:NAME      interval (a fixed UTC grid) or cron (in the persona's zone), plus jitter;
                   coalesced, with the persona's misfire grace, one instance at a time
    first:NAME     one run `first_run_seconds` after start, for the slot now falls in; left
                   out (logged as `first_run_skipped`) when that slot already has its post
    retry:NAME     one run at a rate limit's reset (or after a backoff) for a failed slot
    takeover:NAME  a look just after another daemon's lease on this persona's slot ends:
                   a replica that died mid-wake has its slot finished by another one
    replies:NAME   `bot.replies.Replier.poll()` when replies are on and the publisher has an inbox
    heartbeat      `store.beat("daemon")`, so `bot status --check` can tell it is alive

For `bot status`, `run()` also records its start (STARTED_BEAT, and its id in RUN_CURSOR),
each persona's health (`state:NAME`: ok, failing, backoff, disabled, with this run's id) when
it changes, and its stop (STOPPED_BEAT); `run_once` beats ONCE_BEAT, not "daemon".

Exactly once does not rest on the scheduler. A wake derives its slot key from the
schedule (the grid cell or the cron fire time that the wake falls in, in UTC, e.g.
`2026-11-26T14:00Z`) and `Persona.wake` claims it in the store (a leased claim, bot/store.py)
before publishing, so a restart inside a slot, a first run and a scheduled run in the same
slot, or several daemons on one store post once. Slots missed while the daemon was down are
not replayed: the first run posts the current slot (that is the coalesce policy across
restarts) and closes earlier slots a crash left open (bot/delivery.py reconciles them); a
slot taken over more than `misfire_grace_seconds` after it was first claimed is skipped,
not posted late. In-process misfires follow APScheduler.

Nothing one persona does may stop the daemon: every job is wrapped; an exception is logged
with its traceback, recorded in the store and counted; a persona that keeps failing skips
2, 4, 8 then 16 slots; a token the server refuses (401/403) disables that persona until
restart. Both live in the store (`Store.persona_health`), so every daemon on one store
(replicas on PostgreSQL, processes on one SQLite file) honours them; a daemon that starts
clears them for its personas. Every line it logs is one `event=... key=value` line.
Never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import numpy as np
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from bot import config as cfg
from bot.clock import Clock, SystemClock
from bot.delivery import publish_with_retries
from bot.errors import ConfigError, ModelError, PublishError
from bot.log import event, format_fields
from bot.memory import release_free_memory
from bot.modelcache import MODELS
from bot.persona import MAX_SLOT_ATTEMPTS, Persona, WakeResult, build_publisher, length_function
from bot.publishers import registry
from bot.publishers.base import Post, Publisher, Receipt
from bot.slots import (
    EPOCH,
    FINISHED_SLOT,
    GridTrigger,
    WallClockCronTrigger,
    cron_slot,
    finished_first_slot,
    format_slot,
    grid_start,
    interval_seconds,
    next_run_times,
    period_seconds,
    post_trigger,
    slot_key,
    wake_offsets,
)
from bot.store import PersonaHealth, SlotRow, Store, isoformat_utc, new_holder
from bot.store.protocol import parse_ts

log = logging.getLogger(__name__)

__all__ = [
    "EPOCH",
    "FINISHED_SLOT",
    "HEARTBEAT_SECONDS",
    "Daemon",
    "GridTrigger",
    "WallClockCronTrigger",
    "cron_slot",
    "finished_first_slot",
    "format_slot",
    "grid_start",
    "interval_seconds",
    "next_run_times",
    "period_seconds",
    "post_trigger",
    "slot_key",
    "wake_offsets",
]


# ---------------------------------------------------------------------------------------
HEARTBEAT_SECONDS = 30.0  # `bot status --check` defaults to 6 missed beats (180 s)
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


# --- the daemon -------------------------------------------------------------------------


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


class Daemon:
    """Every enabled persona on one scheduler, in one process."""

    def __init__(
        self,
        config: cfg.Config,
        personas: Sequence[cfg.PersonaSettings],
        store: Store,
        *,
        clock: Clock | None = None,
        publishers: Mapping[str, Publisher] | None = None,
        seed: int | None = None,
        publish_attempts: int = PUBLISH_ATTEMPTS,
        retry_base_delay_seconds: float = RETRY_BASE_DELAY_SECONDS,
        retry_max_delay_seconds: float = RETRY_MAX_DELAY_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        max_workers: int | None = None,
    ) -> None:
        if not personas:
            raise ConfigError(
                f"{config.label}: no enabled persona to run",
                "enable one in config.yaml (enabled: true) or name one with -p",
            )
        self.config = config
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.publish_attempts = publish_attempts
        self.retry_base_delay_seconds = retry_base_delay_seconds
        self.retry_max_delay_seconds = retry_max_delay_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.max_workers = max_workers or min(20, 2 + 2 * len(personas))
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # APScheduler logs every run at INFO; our own events say the same in one line.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_decided = threading.Event()
        self._once = False
        self.run_id = new_holder()  # names this daemon's run in the persona states it writes
        self._lock = threading.Lock()
        self._stopper: threading.Thread | None = None
        self._stopper_started = threading.Event()  # set once _stopper is assigned and running
        self._inflight: dict[str, str] = {}  # persona -> slot key being worked on
        self._active = 0  # jobs running now
        self._idle = threading.Condition()
        MODELS.resize(config.models_in_memory)  # a fleet's models take turns in memory
        seeds = np.random.SeedSequence(seed).spawn(len(personas))
        self.states: dict[str, _PersonaState] = {}
        for settings, seq in zip(personas, seeds, strict=True):
            publisher = (publishers or {}).get(settings.name) or build_publisher(config, settings)
            runner = Persona(
                settings,
                store=store,
                publisher=publisher,
                rng=np.random.default_rng(seq),
                now=self.clock.now,
                length=length_function(settings),
                lease_seconds=config.lease_seconds,
            )
            runner.model.get()  # a missing or corrupt model fails `bot run` now, in one line
            self.states[settings.name] = _PersonaState(
                settings, runner, publisher, threading.Lock()
            )
        store.reset_persona_health(self.states)  # a restart is how a fix is picked up
        self.scheduler = self._build_scheduler()

    # -- scheduling --

    def _build_scheduler(self) -> Any:
        self._plan: dict[str, tuple[datetime | None, datetime | None]] = {}
        self._first_done: dict[str, SlotRow] = {}  # first runs left out: their slot is done
        scheduler = BlockingScheduler(
            timezone=UTC,
            executors={
                "default": ThreadPoolExecutor(
                    self.max_workers, pool_kwargs={"thread_name_prefix": "revenant-job"}
                )
            },
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        )
        scheduler.add_listener(self._on_scheduler_event,
                               EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_SCHEDULER_STARTED)  # fmt: skip
        now = self.clock.now()  # the wall clock in production; tests align APScheduler to it
        schedules = {name: state.settings.schedule for name, state in self.states.items()}
        self.offsets = wake_offsets(schedules, self.config.wake_spacing_seconds, now)
        for name, state in self.states.items():
            s = state.settings.schedule
            offset = self.offsets[name]
            trigger = post_trigger(s, offset=offset)
            first_fire = trigger.get_next_fire_time(None, now)
            scheduler.add_job(self._post_job, trigger, args=[name, "schedule"], id=f"post:{name}",
                              name=f"post {name}", coalesce=s.coalesce, max_instances=1,
                              misfire_grace_time=s.misfire_grace_seconds,
                              next_run_time=first_fire)  # fmt: skip
            first_run = None
            done = finished_first_slot(s, now, functools.partial(self.store.slot, name), offset)
            if done is not None:
                self._first_done[name] = done  # run() says so; the claim would refuse it anyway
            elif s.first_run_seconds is not None:
                first_run = now + timedelta(seconds=s.first_run_seconds + offset)
                scheduler.add_job(self._post_job, "date", run_date=first_run,
                                  args=[name, "first_run"], id=f"first:{name}",
                                  name=f"first run {name}", max_instances=1,
                                  misfire_grace_time=max(60, s.misfire_grace_seconds))  # fmt: skip
            replies = state.settings.replies
            if replies.enabled and registry.of(state.settings).inbox is not None:
                scheduler.add_job(self._replies_job, "interval",
                                  seconds=replies.interval_minutes * 60, args=[name],
                                  id=f"replies:{name}", name=f"replies {name}", coalesce=True,
                                  max_instances=1, misfire_grace_time=60)  # fmt: skip
            self._plan[name] = (first_run, first_fire)
        scheduler.add_job(self._heartbeat_job, "interval", seconds=self.heartbeat_seconds,
                          id="heartbeat", name="heartbeat", coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, int(self.heartbeat_seconds)))  # fmt: skip
        return scheduler

    def _on_scheduler_event(self, ev: Any) -> None:
        if ev.code == EVENT_SCHEDULER_STARTED:
            self._started.set()
            self._start_decided.set()
        elif ev.code == EVENT_JOB_MISSED:
            event(log, "wake_missed", logging.WARNING, job=ev.job_id,
                  scheduled=_iso(ev.scheduled_run_time), why="later than misfire_grace_seconds")  # fmt: skip
        elif ev.code == EVENT_JOB_MAX_INSTANCES:
            event(log, "wake_missed", logging.WARNING, job=ev.job_id,
                  why="the previous run of this job is still going")  # fmt: skip

    def _remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(job_id)

    def _remember_next(self, name: str, when: datetime) -> None:
        """Log and store (for `bot status`) when the persona posts next."""
        at = isoformat_utc(when)
        event(log, "next_run", persona=name, at=at)
        self.store.set_cursor(f"next_run:{name}", at)

    def _log_next_run(self, name: str) -> None:
        if not self._started.is_set() or self._stopping.is_set() or self.states[name].disabled:
            return
        job = self.scheduler.get_job(f"post:{name}")
        when = getattr(job, "next_run_time", None)
        if job is None or when is None:
            return
        now = self.clock.now()
        if when <= now:  # the scheduler has not moved the job on yet
            when = job.trigger.get_next_fire_time(when, now)
        if when is not None:
            self._remember_next(name, when)

    # -- one wake --

    def wake(self, name: str, *, slot: str | None = None, trigger: str = "schedule") -> WakeResult:
        """One wake of one persona: the current slot (or `slot`, for a retry), exactly once.

        Never raises: failures are logged, recorded and counted, and come back as outcome
        `failed` (or `skipped` during backoff, `disabled` after a refused token).
        """
        state = self.states[name]
        now = self.clock.now()
        key = slot or slot_key(state.settings.schedule, now)
        if state.disabled:
            return WakeResult(key, "disabled", error=state.disabled)
        if self._stopping.is_set():
            return WakeResult(key, "stopping")
        health = self.store.persona_health(name)  # shared by every daemon on the store
        if self._disabled_elsewhere(state, health):
            return WakeResult(key, "disabled", error=state.disabled)
        self._beat()
        with state.lock:
            if slot is None and health.skip_slots:
                return self._skip(state, key, health)
            event(log, "wake", persona=name, slot=key, trigger=trigger)
            errors: list[PublishError] = []
            with self._lock:
                self._inflight[name] = key
            grace = timedelta(seconds=state.settings.schedule.misfire_grace_seconds)
            try:
                result = state.runner.wake(
                    key,
                    publish=self._publisher_for(state, key, errors),
                    late_grace=None if trigger == "retry" else grace,
                    wait=lambda seconds: self.clock.sleep(seconds, until=self._stopping),
                )
            except ModelError as err:  # Persona.wake recorded it and marked the slot failed
                event(log, "wake_failed", logging.ERROR, persona=name, slot=key, kind="model",
                      error=str(err))  # fmt: skip
                result = WakeResult(key, "failed", error=str(err))
            except Exception as err:  # noqa: BLE001 - isolation: one persona never stops the rest
                result = self._record_crash(name, key, err)
            finally:
                with self._lock:
                    self._inflight.pop(name, None)
            self._after_wake(state, result, errors)
        if result.outcome == "already_claimed" and trigger != "once":
            self._watch_holder(state, key)
        self._log_next_run(name)
        return result

    def _publisher_for(
        self, state: _PersonaState, key: str, errors: list[PublishError]
    ) -> Callable[[Post], Receipt]:
        """Publish with bounded retries; every failed attempt is recorded in the store."""
        name = state.settings.name

        def on_attempt(attempt: int, err: PublishError | None) -> None:
            if err is not None:
                errors.append(err)
                self.store.record_failure(name, key, "publish_attempt",
                                          f"attempt {attempt}: {err.message}",
                                          transient=err.transient)  # fmt: skip

        def publish(post: Post) -> Receipt:
            return publish_with_retries(
                state.publisher,
                post,
                attempts=self.publish_attempts,
                base_delay_seconds=self.retry_base_delay_seconds,
                max_delay_seconds=self.retry_max_delay_seconds,
                sleep=self._backoff_sleep,
                on_attempt=on_attempt,
            )

        return publish

    def _backoff_sleep(self, seconds: float) -> None:
        """A retry wait that shutdown cuts short: the slot is then failed (transient) and
        re-tried with the same idempotency key after the restart."""
        if self.clock.sleep(seconds, until=self._stopping):
            raise PublishError(
                "shutting down during a publish retry wait",
                "the slot is kept and retried after restart",
                transient=True,
            )

    def _skip(self, state: _PersonaState, key: str, health: PersonaHealth) -> WakeResult:
        """A slot of the backoff: whichever daemon claims the slot skips it and counts it
        off the shared backoff, so N replicas skip N slots, not N x N wakes."""
        name = state.settings.name
        claim = self.store.claim_slot(name, key)
        if claim is None:
            return WakeResult(key, "already_claimed")
        if claim.taken_over:
            self.store.mark_failed(claim)  # an earlier attempt's slot: leave it to a later one
            return WakeResult(key, "skipped")
        self.store.take_skip(name)
        self.store.finish_slot(claim, "skipped")
        self.store.record_failure(name, key, "backoff",
                                  f"skipped after {health.streak} failed wakes in a row",
                                  transient=True)  # fmt: skip
        event(log, "wake_skipped", logging.WARNING, persona=name, slot=key, why="backoff",
              failed_in_a_row=health.streak, still_to_skip=health.skip_slots - 1)  # fmt: skip
        self._record_state(state)
        return WakeResult(key, "skipped")

    def _record_crash(self, name: str, key: str, err: Exception) -> WakeResult:
        """A bug or an unexpected error in a wake: traceback to the log, a row in the store."""
        error = f"{type(err).__name__}: {err}"
        _event_with_traceback("wake_failed", err, persona=name, slot=key, kind="exception",
                              error=error)  # fmt: skip
        try:
            self.store.record_failure(name, key, "wake", error, transient=False)
            row = self.store.slot(name, key)
            if row is not None and row.status == "claimed":
                self.store.mark_slot(name, key, "failed")
        except Exception as store_err:  # noqa: BLE001 - the store itself may be what failed
            _event_with_traceback("record_failed", store_err, persona=name, slot=key)
        return WakeResult(key, "failed", error=error)

    def _after_wake(
        self, state: _PersonaState, result: WakeResult, errors: list[PublishError]
    ) -> None:
        name = state.settings.name
        if result.outcome in ("posted", "no_candidate", "unknown"):
            self.store.wake_succeeded(name)
            self._record_state(state, PersonaHealth(name))
            return
        if result.outcome != "failed":
            return
        last = errors[-1] if errors else None
        if last is not None and last.status_code in (401, 403) and not last.transient:
            self._disable(state, last)
            return
        state.failures += 1
        health = self.store.wake_failed(name, backoff_slots)
        if health.streak >= 2:
            event(log, "backoff", logging.WARNING, persona=name,
                  failed_in_a_row=health.streak, skip_wakes=health.skip_slots)  # fmt: skip
        self._record_state(state, health)
        if last is not None and last.transient:
            self._schedule_retry(state, result.slot_key, last)

    def _disable(self, state: _PersonaState, err: PublishError) -> None:
        """The server refused the token: disable the persona here and, through the store,
        in every daemon on it (each sees it at its next wake or poll)."""
        name = state.settings.name
        state.disabled = f"{err.status_code}: {err.message}"
        self.store.disable_persona(name, state.disabled)
        event(log, "persona_disabled", logging.CRITICAL, persona=name, status=err.status_code,
              token_env=getattr(state.publisher, "token_env", None), error=err.message,
              fix=err.hint, until="restart")  # fmt: skip
        self._remove_persona_jobs(name)
        self._record_state(state)

    def _disabled_elsewhere(self, state: _PersonaState, health: PersonaHealth) -> bool:
        """True when another daemon on the store disabled the persona: adopt it here."""
        if health.disabled is None:
            return False
        name = state.settings.name
        state.disabled = health.disabled
        event(log, "persona_disabled", logging.CRITICAL, persona=name, error=health.disabled,
              by="another daemon on the store", at=health.disabled_at_utc or "",
              until="restart")  # fmt: skip
        self._remove_persona_jobs(name)
        self._record_state(state, health)
        return True

    def _remove_persona_jobs(self, name: str) -> None:
        for prefix in ("post", "first", "retry", "takeover", "replies"):
            self._remove_job(f"{prefix}:{name}")

    def _record_state(self, state: _PersonaState, shared: PersonaHealth | None = None) -> None:
        """Write the persona's health (ok, failing, backoff, disabled) to the store when it
        changed, for `bot status`, as this run sees it; `shared` is the store's
        `persona_health` (read when not given; every daemon on the store shares it). A
        state older than the daemon's STARTED_BEAT is stale."""
        if shared is None:
            shared = self.store.persona_health(state.settings.name)
        streak, skip = shared.streak, shared.skip_slots
        failed = f"{streak} failed wake{'s' if streak != 1 else ''} in a row"
        if state.disabled:
            health = ("disabled", f"token refused ({state.disabled}); until restart")
        elif skip:
            health = ("backoff", f"{failed}; skipping the next {skip}")
        elif streak:
            health = ("failing", failed)
        else:
            health = ("ok", "")
        if health == state.recorded:
            return
        value = {"state": health[0], "detail": health[1], "run": self.run_id,
                 "at_utc": isoformat_utc(self.clock.now())}  # fmt: skip
        self.store.set_cursor(STATE_CURSOR + state.settings.name, json.dumps(value))
        state.recorded = health

    def _watch_holder(self, state: _PersonaState, key: str) -> None:
        """Another daemon holds this slot: look again just after its lease ends. A live
        holder renews its lease, so the look finds it finished or still held (and looks
        again); a dead one's slot is taken over and finished here (a replica that died
        mid-wake loses no slot). Not past the persona's next scheduled run."""
        name = state.settings.name
        row = self.store.slot(name, key)
        if (self._once or self._stopping.is_set() or row is None or row.status != "claimed"
                or row.lease_until_utc is None or state.disabled):  # fmt: skip
            return
        when = max(parse_ts(row.lease_until_utc), self.clock.now()) + TAKEOVER_MARGIN
        job = self.scheduler.get_job(f"post:{name}")
        upcoming = getattr(job, "next_run_time", None)
        if upcoming is not None and when >= upcoming:
            return
        self._remove_job(f"takeover:{name}")  # (replace_existing misses a pending job)
        self.scheduler.add_job(self._takeover_job, "date", run_date=when, args=[name, key],
                               id=f"takeover:{name}", name=f"takeover {name} {key}",
                               replace_existing=True, max_instances=1, next_run_time=when,
                               misfire_grace_time=state.settings.schedule.misfire_grace_seconds)  # fmt: skip

    def _schedule_retry(self, state: _PersonaState, key: str, err: PublishError) -> None:
        """One more try of a transiently failed slot, at the rate limit's reset or after a
        backoff; bounded by the slot's attempts, the idempotency window and the next slot."""
        name = state.settings.name
        row = self.store.slot(name, key)
        if self._stopping.is_set() or row is None or row.status != "failed":
            return
        if self._once:
            event(log, "retry_later", persona=name, slot=key,
                  why="--once: the next run inside this slot retries it")  # fmt: skip
            return
        now = self.clock.now()
        if err.retry_after is not None:
            delay = timedelta(seconds=err.retry_after + 1)
        else:
            delay = timedelta(seconds=self.retry_base_delay_seconds * 2**row.attempts)
        when = now + delay
        why = None
        if row.attempts >= MAX_SLOT_ATTEMPTS:
            why = f"{row.attempts} attempts"
        elif delay > MAX_RETRY_DELAY:
            why = f"reset in {delay.total_seconds():.0f} s"
        else:
            job = self.scheduler.get_job(f"post:{name}")
            upcoming = getattr(job, "next_run_time", None)
            if upcoming is not None and when >= upcoming:
                why = "the next slot comes first"
        if why:
            event(log, "retry_given_up", logging.WARNING, persona=name, slot=key, why=why)
            return
        self.scheduler.add_job(self._retry_job, "date", run_date=when, args=[name, key],
                               id=f"retry:{name}", name=f"retry {name} {key}",
                               replace_existing=True, max_instances=1, next_run_time=when,
                               misfire_grace_time=state.settings.schedule.misfire_grace_seconds)  # fmt: skip
        event(log, "retry_scheduled", persona=name, slot=key, at=isoformat_utc(when),
              attempt=row.attempts + 1)  # fmt: skip

    # -- jobs (each one guarded: nothing escapes into the scheduler) --

    def _post_job(self, name: str, trigger: str) -> None:
        self._guard(name, lambda: self.wake(name, trigger=trigger))

    def _retry_job(self, name: str, key: str) -> None:
        self._guard(name, lambda: self.wake(name, slot=key, trigger="retry"))

    def _takeover_job(self, name: str, key: str) -> None:
        self._guard(name, lambda: self._take_over(name, key))

    def _take_over(self, name: str, key: str) -> WakeResult | None:
        """The look `_watch_holder` planned: wake the slot if its holder's lease ran out
        (the claim takes it over; it is still held or finished otherwise)."""
        row = self.store.slot(name, key)
        if row is None or row.status != "claimed" or row.lease_until_utc is None:
            return None  # finished, or released by its holder (which retries it)
        if parse_ts(row.lease_until_utc) >= self.clock.now():
            self._watch_holder(self.states[name], key)  # renewed: the holder is alive
            return None
        event(log, "takeover", persona=name, slot=key, holder=row.holder or "",
              lease_until=row.lease_until_utc)  # fmt: skip
        return self.wake(name, slot=key, trigger="takeover")

    def _heartbeat_job(self) -> None:
        self._guard("daemon", self._beat)

    def _replies_job(self, name: str) -> None:
        self._guard(name, lambda: self._poll_replies(name))

    def _guard(self, name: str, job: Callable[[], object]) -> None:
        with self._idle:
            self._active += 1
        try:
            job()
        except Exception as err:  # noqa: BLE001 - a job must never take the scheduler down
            _event_with_traceback("job_failed", err, persona=name)
        finally:
            with self._idle:
                self._active -= 1
                idle = self._active == 0
                self._idle.notify_all()
            if idle:  # the last job out gives sampling's freed heap back (bot/memory.py)
                release_free_memory()

    def _beat(self) -> None:
        self.store.beat(ONCE_BEAT if self._once else "daemon")

    def _poll_replies(self, name: str) -> None:
        state = self.states[name]
        if state.disabled or self._stopping.is_set():
            return
        if self._disabled_elsewhere(state, self.store.persona_health(name)):
            return
        if state.replier is None:
            try:
                replies = importlib.import_module("bot.replies")
            except ModuleNotFoundError as err:
                if err.name != "bot.replies":
                    raise
                event(log, "replies_unavailable", logging.WARNING, persona=name,
                      why="bot.replies is not installed")  # fmt: skip
                self._remove_job(f"replies:{name}")
                return
            state.replier = replies.Replier(
                state.runner, state.publisher, self.store, now=self.clock.now,
                wait=lambda seconds: self.clock.sleep(seconds, until=self._stopping),
            )  # fmt: skip
        self._beat()
        with state.lock:
            try:
                state.replier.poll()
            except PublishError as err:
                if err.status_code in (401, 403) and not err.transient:
                    self._disable(state, err)
                    return
                raise

    # -- running --

    def run_once(self) -> list[WakeResult]:
        """Each persona's current slot, once, in this thread; no scheduler (`--once`)."""
        self._once = True
        event(log, "daemon_once", personas=",".join(self.states))
        results = [self.wake(name, trigger="once") for name in self.states]
        self._beat()
        return results

    def run(self) -> bool:
        """Run until SIGTERM/SIGINT (or `request_stop`). True when every in-flight wake
        finished; False when one was still going after the grace period (abandoned: its
        slot stays claimed and is re-tried with the same idempotency key after restart)."""
        handlers = self._install_signal_handlers()
        try:
            self.store.beat(STARTED_BEAT)
            self.store.set_cursor(RUN_CURSOR, self.run_id)
            with self.store.transaction():  # `bot status`: these personas are scheduled
                for state in self.states.values():  # (health was cleared at start)
                    self._record_state(state, PersonaHealth(state.settings.name))
            self._beat()
            for name, (first_run, first_fire) in self._plan.items():
                state = self.states[name]
                event(log, "scheduled", persona=name, schedule=state.settings.schedule.describe(),
                      publisher=state.publisher.name, first_run=_iso(first_run),
                      next_run=_iso(first_fire),
                      replies=self.scheduler.get_job(f"replies:{name}") is not None)  # fmt: skip
                done = self._first_done.get(name)
                if done is not None:
                    event(log, "first_run_skipped", persona=name, slot=done.slot_key,
                          status=done.status, since=done.updated_at_utc, why="one_post_per_slot",
                          next_run=_iso(first_fire))  # fmt: skip
                upcoming = first_run or first_fire
                if upcoming is not None:
                    self._remember_next(name, upcoming)
            event(log, "daemon_started", personas=",".join(self.states),
                  heartbeat_seconds=self.heartbeat_seconds)  # fmt: skip
            if self._stopping.is_set():
                self._start_decided.set()  # stopped before it began: nothing to shut down
            else:
                self.scheduler.start()  # blocks until shutdown
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        clean = True
        if self._stopping.is_set():  # the stopper may not be assigned yet (request_stop races)
            self._stopper_started.wait(self.shutdown_grace_seconds)
        if self._stopper is not None:
            self._stopper.join(max(0.0, self._stop_deadline - time.monotonic()))
            with self._idle:  # in-flight wakes complete, up to the deadline
                clean = self._idle.wait_for(
                    lambda: self._active == 0, max(0.0, self._stop_deadline - time.monotonic())
                )
        if not clean:
            with self._lock:
                abandoned = dict(self._inflight)
            for name, key in abandoned.items():
                event(log, "wake_abandoned", logging.WARNING, persona=name, slot=key,
                      why=f"still running {self.shutdown_grace_seconds:g} s after stop")  # fmt: skip
                try:
                    self.store.record_failure(name, key, "shutdown",
                                              "abandoned at shutdown; retried after restart",
                                              transient=True)  # fmt: skip
                except Exception as err:  # noqa: BLE001 - best effort while exiting
                    _event_with_traceback("record_failed", err, persona=name, slot=key)
        try:  # `bot status --check` says "stopped" from now on, not "ok" for 3 minutes
            self.store.beat(STOPPED_BEAT)
        except Exception as err:  # noqa: BLE001 - best effort while exiting
            _event_with_traceback("record_failed", err, persona="daemon")
        event(log, "daemon_stopped", clean=clean,
              failures=",".join(f"{n}={s.failures}" for n, s in self.states.items()))  # fmt: skip
        return clean

    def request_stop(self, reason: str = "request") -> None:
        """Begin a graceful shutdown from any thread (or a signal handler); returns at once."""
        with self._lock:
            if self._stopping.is_set():
                event(log, "stopping", reason=reason, note="already stopping")
                return
            self._stopping.set()
            self._stop_deadline = time.monotonic() + self.shutdown_grace_seconds
            in_flight = ",".join(f"{n}@{k}" for n, k in self._inflight.items())
        event(log, "stopping", reason=reason, in_flight=in_flight or "none")
        stopper = threading.Thread(target=self._shutdown, name="revenant-stop", daemon=True)
        stopper.start()  # started before run() can see it (it joins it)
        self._stopper = stopper
        self._stopper_started.set()  # run() may already be past the scheduler: it waits for this

    _stop_deadline = 0.0

    def _shutdown(self) -> None:
        """Stop scheduling new runs. Not `shutdown(wait=True)`: BlockingScheduler's loop only
        returns after every running job has finished, so one hung wake would hold the exit
        forever; `run()` waits for the running jobs itself, up to the deadline."""
        self._start_decided.wait(self.shutdown_grace_seconds)
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=False)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum) or signal.SIG_DFL
            signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signal.Signals(signum).name)


def _iso(moment: datetime | None) -> str | None:
    return isoformat_utc(moment) if moment is not None else None


def _event_with_traceback(name: str, err: BaseException, **fields: Any) -> None:
    """`event()` at ERROR with `err`'s traceback after the line."""
    payload = {"event": name, **fields}
    log.error("%s", format_fields(payload), exc_info=err, extra={"revenant_fields": payload})
