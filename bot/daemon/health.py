"""A persona's health in the daemon: skipped slots while it backs off, crashes recorded,
a refused token that disables it (shared by every daemon on the store), a slot another
daemon holds watched until its lease ends, retries at a rate limit's reset. A mixin of
`bot.daemon.scheduler.Daemon`."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.core.errors import PublishError
from bot.core.log import event
from bot.daemon.state import (
    MAX_RETRY_DELAY,
    STATE_CURSOR,
    TAKEOVER_MARGIN,
    _event_with_traceback,
    _PersonaState,
    backoff_slots,
)
from bot.posting.compose import WakeResult
from bot.posting.persona import MAX_SLOT_ATTEMPTS
from bot.store import PersonaHealth, Store, isoformat_utc
from bot.store.protocol import parse_ts

if TYPE_CHECKING:
    from bot.core.clock import Clock

log = logging.getLogger("bot.daemon.scheduler")  # one logger for the daemon's events


class Health:
    """What happens to a persona between and after wakes."""

    if TYPE_CHECKING:  # provided by Daemon
        store: Store
        scheduler: Any
        clock: Clock
        run_id: str
        retry_base_delay_seconds: float
        _stopping: threading.Event
        _once: bool

        def _takeover_job(self, name: str, key: str) -> None: ...

        def _retry_job(self, name: str, key: str) -> None: ...

        def _remove_job(self, job_id: str) -> None: ...

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
        """A bug or an unexpected error in a wake: traceback to the log, a row in the store.
        The slot is left alone: the wake released what it held (`Persona.wake`), and a
        claim on `key` may be another replica's, live (only its holder changes it)."""
        error = f"{type(err).__name__}: {err}"
        _event_with_traceback("wake_failed", err, persona=name, slot=key, kind="exception",
                              error=error)  # fmt: skip
        try:
            self.store.record_failure(name, key, "wake", error, transient=False)
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
