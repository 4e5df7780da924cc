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
    replies:NAME   `bot.posting.replies.Replier.poll()` when replies are on and the publisher has an inbox
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
restarts) and closes earlier slots a crash left open (bot/posting/delivery.py reconciles them); a
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
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler

from bot import config as cfg
from bot.config import registry
from bot.config.registry import build_publisher, length_function
from bot.core.clock import Clock, SystemClock
from bot.core.errors import ConfigError, ModelError, PublishError
from bot.core.log import event
from bot.core.memory import map_large_blocks, release_free_memory
from bot.core.post import Post, Publisher, Receipt
from bot.daemon.health import Health
from bot.daemon.lifecycle import Lifecycle
from bot.daemon.slots import (
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
from bot.daemon.state import (
    HEARTBEAT_SECONDS,
    ONCE_BEAT,
    PUBLISH_ATTEMPTS,
    RETRY_BASE_DELAY_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    RUN_CURSOR,
    SHUTDOWN_GRACE_SECONDS,
    STARTED_BEAT,
    STATE_CURSOR,
    STOPPED_BEAT,
    _event_with_traceback,
    _iso,
    _PersonaState,
)
from bot.engine.modelcache import MODELS
from bot.posting.compose import WakeResult
from bot.posting.delivery import Send, publish_with_retries
from bot.posting.persona import Persona
from bot.store import SlotRow, Store, isoformat_utc, new_holder
from bot.store.protocol import parse_ts

log = logging.getLogger(__name__)

__all__ = [
    "EPOCH",
    "FINISHED_SLOT",
    "HEARTBEAT_SECONDS",
    "ONCE_BEAT",
    "RUN_CURSOR",
    "STARTED_BEAT",
    "STATE_CURSOR",
    "STOPPED_BEAT",
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


# --- the daemon -------------------------------------------------------------------------


class Daemon(Health, Lifecycle):
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
        map_large_blocks()  # freed model arrays go back to the OS (bot/core/memory.py)
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

    def _publisher_for(self, state: _PersonaState, key: str, errors: list[PublishError]) -> Send:
        """Publish with bounded retries, each re-send only while the slot's lease holds;
        every failed attempt is recorded in the store."""
        name = state.settings.name

        def on_attempt(attempt: int, err: PublishError | None) -> None:
            if err is not None:
                errors.append(err)
                self.store.record_failure(name, key, "publish_attempt",
                                          f"attempt {attempt}: {err.message}",
                                          transient=err.transient)  # fmt: skip

        def publish(post: Post, holding: Callable[[], bool]) -> Receipt:
            return publish_with_retries(
                state.publisher,
                post,
                attempts=self.publish_attempts,
                base_delay_seconds=self.retry_base_delay_seconds,
                max_delay_seconds=self.retry_max_delay_seconds,
                sleep=self._backoff_sleep,
                on_attempt=on_attempt,
                may_resend=holding,
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
            if idle:  # the last job out gives sampling's freed heap back (bot/core/memory.py)
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
                replies = importlib.import_module("bot.posting.replies")
            except ModuleNotFoundError as err:
                if err.name != "bot.posting.replies":
                    raise
                event(log, "replies_unavailable", logging.WARNING, persona=name,
                      why="bot.posting.replies is not installed")  # fmt: skip
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
