"""The daemon's life: run until a signal, run once, stop cleanly (in-flight wakes get a
grace period; abandoned ones stay claimed and resume after a restart). A mixin of
`bot.daemon.scheduler.Daemon`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers import SchedulerNotRunningError

from bot.core.log import event
from bot.daemon.state import (
    ALIVE_BEAT_SECONDS,
    RUN_CURSOR,
    STARTED_BEAT,
    STOPPED_BEAT,
    _event_with_traceback,
    _iso,
    _PersonaState,
)
from bot.posting.compose import WakeResult
from bot.store import PersonaHealth, SlotRow, Store

if TYPE_CHECKING:
    from bot.core.clock import Clock

log = logging.getLogger("bot.daemon.scheduler")  # one logger for the daemon's events


class Lifecycle:
    """`Daemon.run`, `run_once`, `request_stop` and the signal handlers."""

    if TYPE_CHECKING:  # provided by Daemon
        states: dict[str, _PersonaState]
        store: Store
        clock: Clock
        scheduler: Any
        run_id: str
        heartbeat_seconds: float
        shutdown_grace_seconds: float
        _stopping: threading.Event
        _start_decided: threading.Event
        _stopper_started: threading.Event
        _stopper: threading.Thread | None
        _stop_deadline: float
        _once: bool
        _lock: threading.Lock
        _inflight: dict[str, str]
        _active: int
        _idle: threading.Condition
        _plan: dict[str, tuple[datetime | None, datetime | None]]
        _first_done: dict[str, SlotRow]

        def wake(self, name: str, *, slot: str | None = None, trigger: str = ...) -> WakeResult: ...

        def _beat(self) -> None: ...

        def _remember_next(self, name: str, when: datetime) -> None: ...

        def _record_state(
            self, state: _PersonaState, shared: PersonaHealth | None = None
        ) -> None: ...

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
            self._say_if_another_runs()
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

    def _say_if_another_runs(self) -> None:
        """Another `bot run` on this store is safe (every slot is claimed in the store, so
        each posts once: replicas), but never silent: one line at start naming it (the
        last daemon started, and the heartbeat every daemon writes), when a beat is fresh
        and no clean stop came after it. A daemon of this host whose process is gone (a
        restart after kill -9) is not another one."""
        beats = self.store.heartbeats()
        beat, stopped = beats.get("daemon"), beats.get(STOPPED_BEAT)
        if beat is None or (stopped is not None and stopped >= beat):
            return
        age = (self.clock.now() - beat).total_seconds()
        other = self.store.get_cursor(RUN_CURSOR) or "?"
        if age > ALIVE_BEAT_SECONDS or _gone_from_this_host(other):
            return
        event(log, "another_daemon", logging.WARNING, run=other, heartbeat=_iso(beat),
              age_s=round(max(age, 0.0)),
              note="safe: each slot is claimed in the store and posts once")  # fmt: skip

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


def _gone_from_this_host(run_id: str) -> bool:
    """True when `run_id` (host:pid:random, `new_holder`) names a process of this host
    that no longer runs, or this process itself (a container restarted with the same pid)."""
    host, _, rest = run_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it runs
        return False
    return False
