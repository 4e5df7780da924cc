"""What the bot needs from its state (`Store`), the rows it gets back, and the time format.

Both backends (bot/store/sqlite.py, bot/store/postgres.py) implement `Store` with the
same SQL (bot/store/sql.py), so their public behaviour is the same.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self, runtime_checkable

from bot.core.post import Receipt

SlotStatus = Literal["claimed", "posted", "failed", "skipped", "unknown"]
PostKind = Literal["post", "reply"]
LEASE_SECONDS = 60.0  # a claim's lease; the holder renews it every LEASE_SECONDS / 4
MANUAL_PREFIX = "manual:"  # a `bot post` slot's key: manual:<UTC time>, no schedule's slot


@dataclass(frozen=True)
class PostRow:
    id: int
    persona: str
    slot_key: str
    kind: str
    text: str
    publisher: str
    remote_id: str
    url: str | None
    created_at_utc: str


@dataclass(frozen=True)
class SlotRow:
    persona: str
    slot_key: str
    claimed_at_utc: str
    status: str
    attempts: int
    updated_at_utc: str
    holder: str | None = None
    lease_until_utc: str | None = None
    text: str | None = None
    prompt: str | None = None
    sent_at_utc: str | None = None
    first_sent_at_utc: str | None = None
    sends: int = 0
    post_text: str | None = None


SLOT_COLUMNS = (
    "persona, slot_key, claimed_at_utc, status, attempts, updated_at_utc, holder,"
    " lease_until_utc, text, prompt, sent_at_utc, first_sent_at_utc, sends, post_text"
)


@dataclass(frozen=True)
class Claim:
    """This caller holds (persona, slot_key) until `lease_until_utc`, as `holder`.

    `taken_over` is True when the slot existed before (a crashed or failed earlier
    attempt). `text`/`prompt` are what an earlier attempt wrote ahead (with `post_text`,
    the text its post carries where that is not `text`: a music persona's); `sent_at_utc` is
    set when an earlier attempt may have reached the server (it must be reconciled
    before anything is re-sent)."""

    persona: str
    slot_key: str
    holder: str
    taken_over: bool
    row: SlotRow

    @property
    def text(self) -> str | None:
        return self.row.text

    @property
    def prompt(self) -> str | None:
        return self.row.prompt

    @property
    def post_text(self) -> str | None:
        return self.row.post_text

    @property
    def sent_at_utc(self) -> str | None:
        return self.row.sent_at_utc

    @property
    def attempts(self) -> int:
        return self.row.attempts


@dataclass(frozen=True)
class FailureRow:
    id: int
    persona: str
    slot_key: str
    kind: str
    error: str
    transient: bool
    created_at_utc: str


@dataclass(frozen=True)
class PersonaHealth:
    """What every daemon on the store agrees on about one persona (`persona_health`):
    `streak` failed wakes in a row, `skip_slots` slots still to skip (backoff), and
    `disabled` (why, e.g. "401: ...") once a server refused its token. All zero/None when
    nothing is known."""

    persona: str
    streak: int = 0
    skip_slots: int = 0
    disabled: str | None = None
    disabled_at_utc: str | None = None
    updated_at_utc: str | None = None


@dataclass(frozen=True)
class PersonaSummary:
    """One persona's totals, read for a whole fleet at once (`bot status`): its posts (not
    replies), failures and `unknown` slots."""

    persona: str
    posts: int = 0
    last_post_at_utc: str | None = None
    last_post_slot_key: str | None = None  # of its newest post in a schedule's slot, not
    # a `bot post` (whose key is no slot): whether the current slot is done (`bot status`)
    failures: int = 0
    last_failure: FailureRow | None = None
    unknown: int = 0


def new_holder() -> str:
    """A claim holder id: host, process and a random part (unique per claim)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat_utc(moment: datetime) -> str:
    """2025-01-01T10:00:00.000Z: one fixed format, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


@runtime_checkable
class Store(Protocol):
    """What the bot needs from its state, whatever holds it; `bot.store.sql.SQLStore`
    documents each method's contract. Get one with `open_store`."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def transaction(self) -> AbstractContextManager[Any]: ...

    def migrate(self) -> list[str]: ...

    def migrations(self) -> list[str]: ...

    def claim_slot(
        self,
        persona: str,
        slot_key: str,
        *,
        holder: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> Claim | None: ...

    def renew(self, claim: Claim, lease_seconds: float = LEASE_SECONDS) -> bool: ...

    def write_ahead(
        self, claim: Claim, text: str, prompt: str | None, post_text: str | None = None
    ) -> bool: ...

    def mark_sending(self, claim: Claim) -> bool: ...

    def clear_sent(self, claim: Claim, previous: str | None) -> bool: ...

    def mark_failed(self, claim: Claim) -> bool: ...

    def finish_slot(self, claim: Claim, status: Literal["skipped", "unknown"]) -> bool: ...

    def mark_slot(self, persona: str, slot_key: str, status: SlotStatus) -> None: ...

    def slot(self, persona: str, slot_key: str) -> SlotRow | None: ...

    def open_slots(self, persona: str, *, exclude_prefix: str = "reply:") -> list[SlotRow]: ...

    def unfinished_slots(self, persona: str, prefix: str) -> list[SlotRow]: ...

    def slots_with_status(
        self, persona: str, status: SlotStatus, limit: int = 10
    ) -> list[SlotRow]: ...

    def slot_counts(self, persona: str) -> dict[str, int]: ...

    def record_post(
        self,
        persona: str,
        slot_key: str,
        text: str,
        receipt: Receipt,
        *,
        kind: PostKind = "post",
        rejections: Iterable[tuple[str, str]] = (),
    ) -> int: ...

    def record_rejections(
        self, persona: str, slot_key: str, rejections: Iterable[tuple[str, str]]
    ) -> None: ...

    def recent_posts(self, persona: str | None = None, limit: int = 10) -> list[PostRow]: ...

    def recent_texts(self, persona: str, limit: int = 200) -> list[str]: ...

    def rejection_counts(self, persona: str) -> dict[str, int]: ...

    def recent_rejections(self, persona: str, limit: int = 10) -> list[tuple[str, str, str]]: ...

    def record_failure(
        self, persona: str, slot_key: str, kind: str, error: str, *, transient: bool
    ) -> None: ...

    def failure_counts(self, persona: str | None = None) -> dict[str, int]: ...

    def recent_failures(self, persona: str | None = None, limit: int = 5) -> list[FailureRow]: ...

    def persona_health(self, persona: str) -> PersonaHealth: ...

    def wake_failed(self, persona: str, backoff: Callable[[int], int]) -> PersonaHealth: ...

    def wake_succeeded(self, persona: str) -> None: ...

    def take_skip(self, persona: str) -> bool: ...

    def disable_persona(self, persona: str, reason: str) -> bool: ...

    def reset_persona_health(self, personas: Iterable[str]) -> None: ...

    def get_cursor(self, name: str, default: str | None = None) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def beat(self, name: str) -> None: ...

    def last_beat(self, name: str) -> datetime | None: ...

    def heartbeats(self) -> dict[str, datetime]: ...

    def cursors(self, prefix: str) -> dict[str, str]: ...

    def persona_summaries(self) -> dict[str, PersonaSummary]: ...

    def record_mention(
        self,
        persona: str,
        notification_id: str,
        acct: str,
        outcome: Literal["replied", "skipped"],
        *,
        status_id: str | None = None,
        in_reply_to_id: str | None = None,
        reason: str | None = None,
        reply_remote_id: str | None = None,
        at: datetime | None = None,
    ) -> bool: ...

    def mention_outcome(self, persona: str, notification_id: str) -> str | None: ...

    def mention_answered_by(
        self, persona: str, reply_remote_id: str
    ) -> tuple[str | None, str | None] | None: ...

    def replies_since(self, persona: str, acct: str, since: datetime) -> int: ...

    def mention_skip_counts(self, persona: str) -> dict[str, int]: ...
