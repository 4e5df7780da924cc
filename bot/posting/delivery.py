"""Sending a claimed slot exactly once: lease renewal, reconciliation, bounded re-sends.

    with LeaseKeeper(store, claim, lease_seconds) as keeper:
        ...compose, store.write_ahead(claim, text, prompt)...
        result = deliver(store, publisher, claim, post, keeper=keeper, kind="post")

Used by posts (`Persona.wake`) and replies (`Replier`) alike. The rules:

- Only the holder of a live lease sends: `store.mark_sending` is conditional on the lease
  and records, before the request leaves, that the post may reach the server from now on.
- Every send of a slot carries the same written-ahead text and the same idempotency key.
- A send whose outcome is unknown (timeout, 5xx, a crash mid-send found on takeover) is
  never simply re-sent. Once the publisher's `settle_seconds` have passed since that
  send, the account's own posts are looked at (`publisher.find`): found, it is recorded
  and the slot is done; absent, the same text is sent again.
- When the look itself fails, the slot stays open (failed) and a later attempt looks
  again, until UNKNOWN_AFTER / the publisher's key lifetime after the first send: then
  the slot ends `unknown`, recorded and shown by `bot status`, and is never re-sent.
  Skipping is preferred to duplicating.

`publish_with_retries` is the bounded retry loop around one `publisher.publish` (any
kind), which the daemon sends through (a `Send`): before each re-send it asks `deliver`,
which lets it only while the lease holds, and moves the slot's send time to that re-send.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Self

from bot.core.errors import PublishError
from bot.core.faults import crash_during, crash_point
from bot.core.log import event
from bot.core.post import Post, Publisher, Receipt
from bot.store import LEASE_SECONDS, Claim, Store

log = logging.getLogger(__name__)

UNKNOWN_AFTER = timedelta(hours=1)  # a publisher that never forgets keys: same bound
SENDS_PER_WAKE = 3  # sends of one slot in one wake, each after a look that found nothing

Outcome = Literal["posted", "failed", "refused", "too_long", "unknown", "lost", "skipped"]
# Publish a post, retrying within bounds; before each re-send, ask the callable whether it
# may go (False: the lease is gone, raise LeaseLost).
Send = Callable[[Post, Callable[[], bool]], Receipt]


def plain_wait(seconds: float) -> bool:
    """A wait that nothing cuts short (the default `wait` of a wake, a poll, a settle):
    returns False, "not stopped"."""
    time.sleep(max(0.0, seconds))
    return False


class LeaseLost(PublishError):
    """A `Send` was told not to send again: another holder has the slot now."""

    def __init__(self) -> None:
        super().__init__("the slot's lease was lost during a retry wait",
                         "another holder has the slot; nothing more is sent from here",
                         transient=True)  # fmt: skip


class LeaseKeeper:
    """Renews a claim's lease every `lease_seconds / 4` on a background thread while the
    holder works; `lost` is set when a renewal finds the lease gone."""

    def __init__(self, store: Store, claim: Claim, lease_seconds: float = LEASE_SECONDS):
        self.store, self.claim, self.lease_seconds = store, claim, lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{claim.slot_key}", daemon=True
        )

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            try:
                renewed = self.store.renew(self.claim, self.lease_seconds)
            except Exception as err:  # noqa: BLE001 - a busy store: try again next period
                event(log, "lease_renew_failed", logging.WARNING, slot=self.claim.slot_key,
                      error=str(err))  # fmt: skip
                continue
            if not renewed:
                self.lost.set()
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Delivery:
    """How a delivery ended. `posted`: the caller records `receipt`. `too_long`: refused
    for length, nothing sent (the caller may compose again). `refused` (permanent) and
    `skipped` ended the slot as skipped; `unknown` ended it as unknown; `failed` left it
    open for a later attempt; `lost`: another holder has the slot now."""

    outcome: Outcome
    receipt: Receipt | None = None
    error: PublishError | None = None
    found: bool = False  # the post was found among the account's posts, not sent now


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _sent_times(store: Store, claim: Claim) -> tuple[str | None, str | None]:
    """(sent_at, first_sent_at) as the store has them now, not as they were claimed."""
    row = store.slot(claim.persona, claim.slot_key)
    return (row.sent_at_utc, row.first_sent_at_utc) if row is not None else (None, None)


def deliver(
    store: Store,
    publisher: Publisher,
    claim: Claim,
    post: Post,
    *,
    keeper: LeaseKeeper,
    kind: str = "post",
    publish: Send | None = None,
    now: Callable[[], datetime],
    wait: Callable[[float], bool] = plain_wait,
    may_send: bool = True,
) -> Delivery:
    """Get the claimed slot's written-ahead `post` onto the server once (see the module
    docstring), sending it at most SENDS_PER_WAKE times (retries inside `publish` of errors
    that certainly did not reach the server aside). `publish` may wrap `publisher.publish`
    (bounded retries of errors that certainly did not reach the server, each re-send
    allowed only while the lease holds); `wait(seconds)` returns True when cut short by
    shutdown. With `may_send` False only a possible earlier send is reconciled and the
    slot otherwise ends as skipped (a late slot, or one out of attempts)."""

    def holding() -> bool:
        """May a send go now? Only under a live lease; it is recorded as the last send."""
        return not keeper.lost.is_set() and store.mark_sending(claim)

    def send(p: Post) -> Receipt:
        return publish(p, holding) if publish is not None else publisher.publish(p)

    sent_at, first_sent = _sent_times(store, claim)  # a recompose follows a send of this claim
    last_error: PublishError | None = None
    for sends in range(SENDS_PER_WAKE + 1):
        if sent_at is not None:
            looked = _reconcile(store, publisher, claim, post, kind=kind, now=now, wait=wait,
                                sent_at=sent_at, first_sent=first_sent or sent_at)  # fmt: skip
            if looked is not None:
                return looked
            sent_at = first_sent = None  # none landed: the store forgot them too
        if not may_send:
            store.finish_slot(claim, "skipped")
            return Delivery("skipped", error=last_error)
        if sends == SENDS_PER_WAKE:
            break  # the last send was looked for too; a later attempt sends again
        if not holding():
            event(log, "lease_lost", logging.WARNING, persona=claim.persona, slot=claim.slot_key)
            return Delivery("lost")
        timer = crash_during("during_send")
        try:
            receipt = send(post)
        except LeaseLost:
            event(log, "lease_lost", logging.WARNING, persona=claim.persona, slot=claim.slot_key)
            return Delivery("lost")
        except PublishError as err:
            last_error = err
            if err.maybe_sent:
                event(log, "send_uncertain", logging.WARNING, persona=claim.persona,
                      slot=claim.slot_key, error=err.message,
                      next="look among the account's posts")  # fmt: skip
                sent_at, first_sent = _sent_times(store, claim)  # the last re-send's time
                continue  # reconciled at the top of the loop, then sent again if absent
            store.clear_sent(claim, None)  # definitely not applied; earlier sends were looked at
            if err.too_long:
                return Delivery("too_long", error=err)
            store.record_failure(claim.persona, claim.slot_key, kind, str(err),
                                 transient=err.transient)  # fmt: skip
            if err.transient:
                store.mark_failed(claim)
                return Delivery("failed", error=err)
            store.finish_slot(claim, "skipped")
            return Delivery("refused", error=err)
        finally:
            if timer is not None:
                timer.cancel()
        crash_point("after_accept")
        return Delivery("posted", receipt)
    # Every send in this wake was uncertain and each look found nothing: try again later.
    assert last_error is not None
    store.record_failure(claim.persona, claim.slot_key, kind, str(last_error), transient=True)
    store.mark_failed(claim)
    return Delivery("failed", error=last_error)


def _reconcile(
    store: Store,
    publisher: Publisher,
    claim: Claim,
    post: Post,
    *,
    kind: str,
    now: Callable[[], datetime],
    wait: Callable[[float], bool],
    sent_at: str,
    first_sent: str,
) -> Delivery | None:
    """After an uncertain send: wait until it has settled, then look for the post.
    None means it is not there (safe to send again)."""
    settled = _parse(sent_at) + timedelta(seconds=publisher.settle_seconds)
    remaining = (settled - now()).total_seconds()
    if remaining > 0 and wait(remaining):
        err = PublishError("shutting down before the post could be looked for",
                           "the slot is looked at again after restart", transient=True)  # fmt: skip
        store.mark_failed(claim)
        return Delivery("failed", error=err)
    try:
        receipt = publisher.find(post, _parse(claim.row.claimed_at_utc))
    except PublishError as err:
        bound = publisher.key_lifetime or UNKNOWN_AFTER
        if now() - _parse(first_sent) >= bound:
            store.record_failure(claim.persona, claim.slot_key, kind,
                                 f"outcome unknown after {bound}: {err.message}",
                                 transient=False)  # fmt: skip
            store.finish_slot(claim, "unknown")
            event(log, "slot_unknown", logging.ERROR, persona=claim.persona,
                  slot=claim.slot_key, error=err.message, resent="never")  # fmt: skip
            return Delivery("unknown", error=err)
        store.record_failure(claim.persona, claim.slot_key, kind,
                             f"cannot tell whether it was posted: {err.message}",
                             transient=True)  # fmt: skip
        store.mark_failed(claim)
        return Delivery("failed", error=err)
    if receipt is not None:
        event(log, "found_posted", persona=claim.persona, slot=claim.slot_key,
              id=receipt.remote_id)  # fmt: skip
        return Delivery("posted", receipt, found=True)
    store.clear_sent(claim, None)
    return None


def publish_with_retries(
    publisher: Publisher,
    post: Post,
    *,
    attempts: int = 3,
    base_delay_seconds: float = 2.0,
    max_delay_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    on_attempt: Callable[[int, PublishError | None], None] | None = None,
    may_resend: Callable[[], bool] | None = None,
) -> Receipt:
    """Publish, retrying transient errors with the same Post (so the same idempotency key).

    An error with `maybe_sent` (a timeout, a 5xx) is raised at once, never retried here:
    the post may exist, and only a look at the account's statuses may decide a re-send.

    Backoff is exponential with jitter (`base * 2**n`, scaled by 0.5-1.0). A rate limit
    waits for its reset only if that is within `max_delay_seconds`; otherwise, or with no
    reset time, the error is raised at once so the caller keeps the slot for the next
    wake. Permanent errors are raised at once. `on_attempt(n, error_or_None)` is called
    after every attempt, so the caller can record each one. `may_resend()` is asked after
    each wait, before the next attempt: False (the slot's lease ran out meanwhile, another
    holder may be sending it) raises LeaseLost and nothing more is sent.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            receipt = publisher.publish(post)
        except PublishError as err:
            if on_attempt is not None:
                on_attempt(attempt, err)
            if not err.transient or err.maybe_sent or attempt == attempts:
                raise
            if err.status_code == 429:
                if err.retry_after is None or err.retry_after > max_delay_seconds:
                    raise
                delay = err.retry_after + rand() * min(1.0, base_delay_seconds)
            else:
                backoff = min(max_delay_seconds, base_delay_seconds * 2 ** (attempt - 1))
                delay = backoff * (0.5 + rand() / 2)
            delay = min(delay, max_delay_seconds)
            log.warning(
                "event=publish_retry persona=%s attempt=%d delay_s=%.1f error=%s",
                post.persona,
                attempt,
                delay,
                err.message,
            )
            sleep(delay)
            if may_resend is not None and not may_resend():
                raise LeaseLost from err
        else:
            if on_attempt is not None:
                on_attempt(attempt, None)
            return receipt
    raise AssertionError("unreachable")  # the loop returns or raises


@contextmanager
def released_on_error(store: Store, claim: Claim) -> Iterator[None]:
    """An unexpected error while holding `claim`: the holder releases its slot for a later
    attempt (`mark_failed`, a no-op once the slot ended or the lease was lost) and the
    error goes on. Only the holder does this; the daemon never touches a slot it may not
    hold (#26.2). A store that fails here too leaves the slot to its lease."""
    try:
        yield
    except Exception:
        try:
            store.mark_failed(claim)
        except Exception as err:  # noqa: BLE001 - the error being raised matters more
            event(log, "release_failed", logging.WARNING, persona=claim.persona,
                  slot=claim.slot_key, error=str(err))  # fmt: skip
        raise

