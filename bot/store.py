"""The state store: slot claims, posts, rejected candidates, cursors, failures, heartbeats.

`Store` is the protocol every backend implements; `SQLiteStore` is the one there is.

    store = open_store(config.store)             # created and migrated on first use (WAL)
    claim = store.claim_slot("ada", "2025-01-01T10:00Z")   # a Claim for one caller, or None
    if claim:
        store.write_ahead(claim, text, prompt)   # the text, durable before anything is sent
        store.mark_sending(claim)                # "may have reached the server" from here on
        ...publish...
        store.record_post("ada", "2025-01-01T10:00Z", text, receipt, rejections=[...])

The claim protocol (see DESIGN.md, "Growing past one machine"): a claim names its holder
and holds a lease (`lease_until_utc`, LEASE_SECONDS); the holder renews it while it works
(`renew`), and another caller takes the slot over only after the lease has expired, in
one statement that only one caller can win (`UPDATE ... WHERE lease_until_utc < now`,
checked by its row count). A fresh slot is one `INSERT ... ON CONFLICT DO NOTHING`. Every
write of the holder (`write_ahead`, `mark_sending`, `mark_failed`, `finish_slot`) is
conditional on still holding a live lease, so a holder that lost its lease cannot send.
At most one post row exists per (persona, slot, publisher): a unique index, and
`record_post` inserts with ON CONFLICT DO NOTHING.

Schema changes are named migrations (`m001_initial`, ...) applied in order on open and
recorded in `_migrations`; never edit one that has shipped, add the next. Callers never
write SQL (`bot preview` reads history through `read_history`, a read-only open): this
module is the only place that would change for PostgreSQL, and the SQL of
the protocol keeps to what both understand (UTC ISO-8601 text timestamps in one fixed
format, so text order is time order; INSERT ... ON CONFLICT; UPDATE checked by row count).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

from bot.errors import StoreError
from bot.publishers.base import Receipt

SlotStatus = Literal["claimed", "posted", "failed", "skipped", "unknown"]
PostKind = Literal["post", "reply"]
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's lock
LEASE_SECONDS = 60.0  # a claim's lease; the holder renews it every LEASE_SECONDS / 4

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE slots (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            slot_key TEXT NOT NULL,
            claimed_at_utc TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'claimed'
                CHECK (status IN ('claimed', 'posted', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 1,
            updated_at_utc TEXT NOT NULL,
            UNIQUE (persona, slot_key)
        )""",
        """CREATE TABLE posts (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            slot_key TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('post', 'reply')),
            text TEXT NOT NULL,
            publisher TEXT NOT NULL,
            remote_id TEXT NOT NULL,
            url TEXT,
            created_at_utc TEXT NOT NULL
        )""",
        "CREATE INDEX posts_by_persona ON posts (persona, id)",
        """CREATE TABLE rejections (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            slot_key TEXT NOT NULL,
            text TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at_utc TEXT NOT NULL
        )""",
        "CREATE INDEX rejections_by_persona ON rejections (persona, reason)",
        """CREATE TABLE cursors (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at_utc TEXT NOT NULL
        )""",
        """CREATE TABLE failures (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            slot_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            error TEXT NOT NULL,
            transient INTEGER NOT NULL,
            created_at_utc TEXT NOT NULL
        )""",
        "CREATE INDEX failures_by_persona ON failures (persona, id)",
        """CREATE TABLE heartbeats (
            name TEXT PRIMARY KEY,
            at_utc TEXT NOT NULL
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@migration
def m002_mentions(db: sqlite3.Connection) -> None:
    """Replies (issue 8): one row per mention handled, answered or deliberately skipped.
    `reason` is a stable skip reason (too_old, nobot, account_limit, ...); the per-account
    reply limit counts `replied` rows by `acct` and time."""
    db.execute(
        """CREATE TABLE mentions (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            notification_id TEXT NOT NULL,
            status_id TEXT,
            in_reply_to_id TEXT,
            acct TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('replied', 'skipped')),
            reason TEXT,
            reply_remote_id TEXT,
            created_at_utc TEXT NOT NULL,
            UNIQUE (persona, notification_id)
        )"""
    )
    db.execute("CREATE INDEX mentions_by_acct ON mentions (persona, acct, outcome, created_at_utc)")


@migration
def m003_leases(db: sqlite3.Connection) -> None:
    """Issue 16: claims with a holder and a lease, the written-ahead text, the `unknown`
    outcome, and one post row per (persona, slot, publisher).

    A slot an older version left open (`claimed` or `failed`) has no written-ahead text,
    so nothing can tell whether it reached the server or re-send it with the same text:
    it becomes `unknown` (never re-sent). Duplicate post rows (the bug this fixes) keep
    their first row; the later ones move to `posts_duplicates` for inspection."""
    db.execute(
        """CREATE TABLE slots_new (
            id INTEGER PRIMARY KEY,
            persona TEXT NOT NULL,
            slot_key TEXT NOT NULL,
            claimed_at_utc TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'claimed'
                CHECK (status IN ('claimed', 'posted', 'failed', 'skipped', 'unknown')),
            attempts INTEGER NOT NULL DEFAULT 1,
            updated_at_utc TEXT NOT NULL,
            holder TEXT,
            lease_until_utc TEXT,
            text TEXT,
            prompt TEXT,
            sent_at_utc TEXT,
            first_sent_at_utc TEXT,
            sends INTEGER NOT NULL DEFAULT 0,
            UNIQUE (persona, slot_key)
        )"""
    )
    db.execute(
        "INSERT INTO slots_new (id, persona, slot_key, claimed_at_utc, status, attempts,"
        " updated_at_utc, lease_until_utc)"
        " SELECT id, persona, slot_key, claimed_at_utc,"
        " CASE WHEN status IN ('claimed', 'failed') THEN 'unknown' ELSE status END,"
        " attempts, updated_at_utc, updated_at_utc FROM slots"
    )
    db.execute("DROP TABLE slots")
    db.execute("ALTER TABLE slots_new RENAME TO slots")
    db.execute("CREATE TABLE posts_duplicates AS SELECT * FROM posts WHERE 0 = 1")
    keep = "SELECT MIN(id) FROM posts GROUP BY persona, slot_key, publisher"
    db.execute(f"INSERT INTO posts_duplicates SELECT * FROM posts WHERE id NOT IN ({keep})")
    db.execute(f"DELETE FROM posts WHERE id NOT IN ({keep})")
    db.execute("CREATE UNIQUE INDEX posts_one_per_slot ON posts (persona, slot_key, publisher)")


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


_SLOT_COLUMNS = (
    "persona, slot_key, claimed_at_utc, status, attempts, updated_at_utc, holder,"
    " lease_until_utc, text, prompt, sent_at_utc, first_sent_at_utc, sends"
)


@dataclass(frozen=True)
class Claim:
    """This caller holds (persona, slot_key) until `lease_until_utc`, as `holder`.

    `taken_over` is True when the slot existed before (a crashed or failed earlier
    attempt). `text`/`prompt` are what an earlier attempt wrote ahead; `sent_at_utc` is
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
    def sent_at_utc(self) -> str | None:
        return self.row.sent_at_utc

    @property
    def attempts(self) -> int:
        return self.row.attempts


def new_holder() -> str:
    """A claim holder id: host, process and a random part (unique per claim)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
class PersonaSummary:
    """One persona's totals, read for a whole fleet at once (`bot status`): its posts (not
    replies), failures and `unknown` slots."""

    persona: str
    posts: int = 0
    last_post_at_utc: str | None = None
    last_post_slot_key: str | None = None
    failures: int = 0
    last_failure: FailureRow | None = None
    unknown: int = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat_utc(moment: datetime) -> str:
    """2025-01-01T10:00:00.000Z: one fixed format, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process holds the lock.

    On a fresh file the switch needs an exclusive lock and SQLite does not apply busy_timeout
    to it: processes starting together (the daemon and a `bot post`) got "database is
    locked" at once. Seen in the multi-process claim test under a full suite's load."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


@runtime_checkable
class Store(Protocol):
    """What the bot needs from its state, whatever holds it; `SQLiteStore` documents each
    method's contract. Get one with `open_store`."""

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

    def write_ahead(self, claim: Claim, text: str, prompt: str | None) -> bool: ...

    def mark_sending(self, claim: Claim) -> bool: ...

    def clear_sent(self, claim: Claim, previous: str | None) -> bool: ...

    def mark_failed(self, claim: Claim) -> bool: ...

    def finish_slot(self, claim: Claim, status: Literal["skipped", "unknown"]) -> bool: ...

    def mark_slot(self, persona: str, slot_key: str, status: SlotStatus) -> None: ...

    def slot(self, persona: str, slot_key: str) -> SlotRow | None: ...

    def open_slots(self, persona: str, *, exclude_prefix: str = "reply:") -> list[SlotRow]: ...

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

    def record_failure(
        self, persona: str, slot_key: str, kind: str, error: str, *, transient: bool
    ) -> None: ...

    def failure_counts(self, persona: str | None = None) -> dict[str, int]: ...

    def recent_failures(self, persona: str | None = None, limit: int = 5) -> list[FailureRow]: ...

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


def open_store(location: Path | str, *, now: Callable[[], datetime] = utc_now) -> Store:
    """The store at `location` (config.yaml's `store:`), created and migrated if new."""
    return SQLiteStore(location, now=now)


def read_history(location: Path | str, persona: str, limit: int) -> list[str]:
    """The persona's last `limit` post texts from a read-only open: nothing is created,
    migrated or written (`bot preview`); [] when there is no store yet or it is unreadable."""
    if limit <= 0 or not Path(location).is_file():
        return []
    try:
        with SQLiteStore(location, read_only=True) as store:
            return store.recent_texts(persona, limit)
    except (StoreError, sqlite3.Error):
        return []


class SQLiteStore:
    """`Store` in one SQLite file in WAL mode; safe to share between the scheduler's
    threads. `read_only=True` opens an existing file for reading only (no migration)."""

    def __init__(
        self,
        path: Path | str,
        *,
        now: Callable[[], datetime] = utc_now,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._now = now
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction()
        if read_only:
            try:
                self.db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            except sqlite3.Error as err:
                raise StoreError(
                    f"{self.path}: cannot read the state database ({err})", ""
                ) from err
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(self.db)
            self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints
            self.migrate()
        except (OSError, sqlite3.Error) as err:
            raise StoreError(
                f"{self.path}: cannot open the state database ({err})",
                "check that REVENANT_HOME, or `store:` in config.yaml, is a writable folder",
            ) from err

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------

    def _ts(self) -> str:
        return isoformat_utc(self._now())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group writes atomically; nests (inner blocks join the outer transaction)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-way
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
            finally:
                self._depth = 0

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self.db.execute(sql, tuple(params))
            cursor.row_factory = sqlite3.Row
            return list(cursor.fetchall())

    def migrate(self) -> list[str]:
        """Apply pending migrations in one write transaction; returns the names applied."""
        applied: list[str] = []
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations "
                "(name TEXT PRIMARY KEY, applied_at_utc TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                if fn.__name__ not in done:
                    fn(db)
                    db.execute(
                        "INSERT INTO _migrations (name, applied_at_utc) VALUES (?, ?)",
                        (fn.__name__, self._ts()),
                    )
                    applied.append(fn.__name__)
        return applied

    def migrations(self) -> list[str]:
        return [row["name"] for row in self._query("SELECT name FROM _migrations ORDER BY name")]

    # --- slots ------------------------------------------------------------------------

    def _lease_end(self, lease_seconds: float) -> str:
        return isoformat_utc(self._now() + timedelta(seconds=lease_seconds))

    def claim_slot(
        self,
        persona: str,
        slot_key: str,
        *,
        holder: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> Claim | None:
        """Claim the slot for one caller, across threads and processes; None if another
        holds a live lease or the slot is finished (posted, skipped, unknown).

        A new slot is an INSERT ... ON CONFLICT DO NOTHING; an open slot (`claimed` with
        an expired lease, or `failed`) is taken over by one UPDATE whose WHERE clause
        only one caller can satisfy. Both are checked by their row count."""
        holder = holder or new_holder()
        now = self._ts()
        until = self._lease_end(lease_seconds)
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO slots (persona, slot_key, claimed_at_utc, status, attempts,"
                " updated_at_utc, holder, lease_until_utc, sends)"
                " VALUES (?, ?, ?, 'claimed', 1, ?, ?, ?, 0)"
                " ON CONFLICT (persona, slot_key) DO NOTHING",
                (persona, slot_key, now, now, holder, until),
            )
            taken_over = False
            if cursor.rowcount != 1:
                cursor = db.execute(
                    "UPDATE slots SET holder = ?, lease_until_utc = ?, status = 'claimed',"
                    " attempts = attempts + 1, updated_at_utc = ?"
                    " WHERE persona = ? AND slot_key = ?"
                    " AND status IN ('claimed', 'failed')"
                    " AND (lease_until_utc IS NULL OR lease_until_utc < ?)",
                    (holder, until, now, persona, slot_key, now),
                )
                if cursor.rowcount != 1:
                    return None
                taken_over = True
            row = self.slot(persona, slot_key)
        assert row is not None  # written in this transaction
        return Claim(persona, slot_key, holder, taken_over, row)

    def _holder_update(self, claim: Claim, assignments: str, params: Iterable[Any]) -> bool:
        """UPDATE the claimed slot only while `claim` still holds a live lease."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE slots SET {assignments}, updated_at_utc = ?"
                " WHERE persona = ? AND slot_key = ? AND holder = ? AND status = 'claimed'"
                " AND lease_until_utc >= ?",
                (*params, now, claim.persona, claim.slot_key, claim.holder, now),
            )
            return cursor.rowcount == 1

    def renew(self, claim: Claim, lease_seconds: float = LEASE_SECONDS) -> bool:
        """Extend the lease; False when it was lost (expired and taken, or finished)."""
        return self._holder_update(claim, "lease_until_utc = ?", [self._lease_end(lease_seconds)])

    def write_ahead(self, claim: Claim, text: str, prompt: str | None) -> bool:
        """Store the chosen text (and prompt) with the claim, before anything is sent."""
        return self._holder_update(claim, "text = ?, prompt = ?", [text, prompt])

    def mark_sending(self, claim: Claim) -> bool:
        """Record that a send starts now: from here the post may reach the server, and a
        later attempt must reconcile before re-sending. False (send nothing) when the
        lease was lost."""
        now = self._ts()
        return self._holder_update(
            claim,
            "sent_at_utc = ?, first_sent_at_utc = COALESCE(first_sent_at_utc, ?),"
            " sends = sends + 1",
            [now, now],
        )

    def clear_sent(self, claim: Claim, previous: str | None) -> bool:
        """The server answered that the last send was not applied (e.g. 429, 422):
        put back what was known before it (`previous`: None = nothing may have landed)."""
        return self._holder_update(claim, "sent_at_utc = ?", [previous])

    def mark_failed(self, claim: Claim) -> bool:
        """Release the slot for a later attempt (transient failure): the lease ends now."""
        return self._holder_update(claim, "status = 'failed', lease_until_utc = ?", [self._ts()])

    def finish_slot(self, claim: Claim, status: Literal["skipped", "unknown"]) -> bool:
        """End the slot without a post: skipped (nothing was published) or unknown (it may
        have been; never re-sent)."""
        return self._holder_update(claim, "status = ?, lease_until_utc = NULL", [status])

    def mark_slot(self, persona: str, slot_key: str, status: SlotStatus) -> None:
        """Set a slot's status regardless of holder (the daemon's backoff skip)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE slots SET status = ?, updated_at_utc = ? WHERE persona = ? AND slot_key = ?",
                (status, self._ts(), persona, slot_key),
            )

    def slot(self, persona: str, slot_key: str) -> SlotRow | None:
        rows = self._query(
            f"SELECT {_SLOT_COLUMNS} FROM slots WHERE persona = ? AND slot_key = ?",
            (persona, slot_key),
        )
        return SlotRow(**dict(rows[0])) if rows else None

    def open_slots(self, persona: str, *, exclude_prefix: str = "reply:") -> list[SlotRow]:
        """The persona's slots left open (claimed with an expired lease, or failed),
        oldest first; slot keys starting with `exclude_prefix` are left out."""
        rows = self._query(
            f"SELECT {_SLOT_COLUMNS} FROM slots WHERE persona = ?"
            " AND status IN ('claimed', 'failed') AND lease_until_utc < ?"
            " AND slot_key NOT LIKE ? ORDER BY id",
            (persona, self._ts(), exclude_prefix + "%"),
        )
        return [SlotRow(**dict(row)) for row in rows]

    def slots_with_status(self, persona: str, status: SlotStatus, limit: int = 10) -> list[SlotRow]:
        """The persona's slots in `status`, newest first (e.g. `unknown` for `bot status`)."""
        rows = self._query(
            f"SELECT {_SLOT_COLUMNS} FROM slots WHERE persona = ? AND status = ?"
            " ORDER BY id DESC LIMIT ?",
            (persona, status, limit),
        )
        return [SlotRow(**dict(row)) for row in rows]

    def slot_counts(self, persona: str) -> dict[str, int]:
        """status -> count of the persona's slots."""
        rows = self._query(
            "SELECT status, COUNT(*) AS n FROM slots WHERE persona = ? GROUP BY status"
            " ORDER BY status",
            (persona,),
        )
        return {row["status"]: row["n"] for row in rows}

    # --- posts and rejections ---------------------------------------------------------

    def record_post(
        self,
        persona: str,
        slot_key: str,
        text: str,
        receipt: Receipt,
        *,
        kind: PostKind = "post",
        rejections: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Store a published post (and the slot's rejected candidates) and mark the slot
        posted, in one transaction. Returns the post's row id. The post exists on the
        server, so this does not depend on holding the claim; a second record of the same
        (persona, slot, publisher) is ignored and returns the first row's id."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id, url,"
                " created_at_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (persona, slot_key, publisher) DO NOTHING",
                (
                    persona,
                    slot_key,
                    kind,
                    text,
                    receipt.publisher,
                    receipt.remote_id,
                    receipt.url,
                    now,
                ),
            )
            if cursor.rowcount != 1:
                row = db.execute(
                    "SELECT id FROM posts WHERE persona = ? AND slot_key = ? AND publisher = ?",
                    (persona, slot_key, receipt.publisher),
                ).fetchone()
                self.mark_slot(persona, slot_key, "posted")
                return int(row[0])
            self.record_rejections(persona, slot_key, rejections)
            db.execute(
                "UPDATE slots SET status = 'posted', lease_until_utc = NULL, updated_at_utc = ?"
                " WHERE persona = ? AND slot_key = ?",
                (now, persona, slot_key),
            )
            return int(cursor.lastrowid or 0)

    def record_rejections(
        self, persona: str, slot_key: str, rejections: Iterable[tuple[str, str]]
    ) -> None:
        """Store rejected candidates as (text, reason) pairs; reasons are stable names."""
        now = self._ts()
        rows = [(persona, slot_key, text, reason, now) for text, reason in rejections]
        if rows:
            with self.transaction() as db:
                db.executemany(
                    "INSERT INTO rejections (persona, slot_key, text, reason, created_at_utc)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

    def recent_posts(self, persona: str | None = None, limit: int = 10) -> list[PostRow]:
        """Newest first."""
        where, params = ("WHERE persona = ?", [persona]) if persona else ("", [])
        rows = self._query(
            f"SELECT id, persona, slot_key, kind, text, publisher, remote_id, url, created_at_utc"
            f" FROM posts {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [PostRow(**dict(row)) for row in rows]

    def recent_texts(self, persona: str, limit: int = 200) -> list[str]:
        """The persona's last `limit` posted texts, newest first (for the duplicate filter)."""
        rows = self._query(
            "SELECT text FROM posts WHERE persona = ? ORDER BY id DESC LIMIT ?", (persona, limit)
        )
        return [row["text"] for row in rows]

    def rejection_counts(self, persona: str) -> dict[str, int]:
        """reason -> count, most frequent first."""
        rows = self._query(
            "SELECT reason, COUNT(*) AS n FROM rejections WHERE persona = ?"
            " GROUP BY reason ORDER BY n DESC, reason",
            (persona,),
        )
        return {row["reason"]: row["n"] for row in rows}

    # --- failures ---------------------------------------------------------------------

    def record_failure(
        self, persona: str, slot_key: str, kind: str, error: str, *, transient: bool
    ) -> None:
        """A failed wake or publish; `kind` names the step (e.g. publish, sample)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO failures (persona, slot_key, kind, error, transient,"
                " created_at_utc) VALUES (?, ?, ?, ?, ?, ?)",
                (persona, slot_key, kind, error, int(transient), self._ts()),
            )

    def failure_counts(self, persona: str | None = None) -> dict[str, int]:
        """kind -> count."""
        where, params = ("WHERE persona = ?", [persona]) if persona else ("", [])
        rows = self._query(
            f"SELECT kind, COUNT(*) AS n FROM failures {where} GROUP BY kind ORDER BY n DESC, kind",
            params,
        )
        return {row["kind"]: row["n"] for row in rows}

    def recent_failures(self, persona: str | None = None, limit: int = 5) -> list[FailureRow]:
        """Newest first."""
        where, params = ("WHERE persona = ?", [persona]) if persona else ("", [])
        rows = self._query(
            f"SELECT id, persona, slot_key, kind, error, transient, created_at_utc"
            f" FROM failures {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [FailureRow(**{**dict(row), "transient": bool(row["transient"])}) for row in rows]

    # --- cursors and heartbeats -------------------------------------------------------

    def get_cursor(self, name: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM cursors WHERE name = ?", (name,))
        return rows[0]["value"] if rows else default

    def set_cursor(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cursors (name, value, updated_at_utc) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at_utc = excluded.updated_at_utc",
                (name, value, self._ts()),
            )

    def beat(self, name: str) -> None:
        """Record that `name` (e.g. the scheduler) is alive now."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO heartbeats (name, at_utc) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET at_utc = excluded.at_utc",
                (name, self._ts()),
            )

    def last_beat(self, name: str) -> datetime | None:
        rows = self._query("SELECT at_utc FROM heartbeats WHERE name = ?", (name,))
        return _parse_ts(rows[0]["at_utc"]) if rows else None

    def heartbeats(self) -> dict[str, datetime]:
        rows = self._query("SELECT name, at_utc FROM heartbeats ORDER BY name")
        return {row["name"]: _parse_ts(row["at_utc"]) for row in rows}

    # --- a fleet at a glance (`bot status`) ---------------------------------------------

    def cursors(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with `prefix`, keyed by the rest of its name
        (`cursors("next_run:")` -> {persona: value}): one query for a whole fleet."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            "SELECT name, value FROM cursors WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
            (escaped + "%",),
        )
        return {  # SQLite's LIKE ignores ASCII case; the prefix must match exactly
            row["name"][len(prefix) :]: row["value"]
            for row in rows
            if row["name"].startswith(prefix)
        }

    def persona_summaries(self) -> dict[str, PersonaSummary]:
        """Totals for every persona the store has rows for, in three queries whatever
        the number of personas (not three per persona)."""
        posts = self._query(
            "SELECT p.persona, m.n, p.created_at_utc, p.slot_key FROM posts p JOIN"
            " (SELECT persona, COUNT(*) AS n, MAX(id) AS last_id FROM posts"
            "  WHERE kind = 'post' GROUP BY persona) m ON p.id = m.last_id"
        )
        failures = self._query(
            "SELECT f.id, f.persona, f.slot_key, f.kind, f.error, f.transient,"
            " f.created_at_utc, m.n FROM failures f JOIN"
            " (SELECT persona, COUNT(*) AS n, MAX(id) AS last_id FROM failures"
            "  GROUP BY persona) m ON f.id = m.last_id"
        )
        unknown = self._query(
            "SELECT persona, COUNT(*) AS n FROM slots WHERE status = 'unknown' GROUP BY persona"
        )
        totals: dict[str, dict[str, Any]] = {}
        for row in posts:
            totals.setdefault(row["persona"], {}).update(
                posts=row["n"], last_post_at_utc=row["created_at_utc"],
                last_post_slot_key=row["slot_key"],
            )  # fmt: skip
        for row in failures:
            columns = ("id", "persona", "slot_key", "kind", "error", "created_at_utc")
            last = FailureRow(**{c: row[c] for c in columns}, transient=bool(row["transient"]))
            totals.setdefault(row["persona"], {}).update(failures=row["n"], last_failure=last)
        for row in unknown:
            totals.setdefault(row["persona"], {})["unknown"] = row["n"]
        return {name: PersonaSummary(name, **values) for name, values in sorted(totals.items())}

    # --- mentions (replies) -----------------------------------------------------------

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
    ) -> bool:
        """Record how a mention was handled, once; False if it already was. `at` (UTC,
        default now) is what the per-account limit counts from."""
        when = isoformat_utc(at) if at is not None else self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO mentions (persona, notification_id, status_id, in_reply_to_id, acct,"
                " outcome, reason, reply_remote_id, created_at_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (persona, notification_id) DO NOTHING",
                (
                    persona,
                    notification_id,
                    status_id,
                    in_reply_to_id,
                    acct.lower(),
                    outcome,
                    reason,
                    reply_remote_id,
                    when,
                ),
            )
            return cursor.rowcount == 1

    def mention_outcome(self, persona: str, notification_id: str) -> str | None:
        """'replied', 'skipped', or None when the mention was never handled."""
        rows = self._query(
            "SELECT outcome FROM mentions WHERE persona = ? AND notification_id = ?",
            (persona, notification_id),
        )
        return rows[0]["outcome"] if rows else None

    def mention_answered_by(
        self, persona: str, reply_remote_id: str
    ) -> tuple[str | None, str | None] | None:
        """(status_id, in_reply_to_id) of the mention our status `reply_remote_id`
        answered, or None when that status is not one of our replies."""
        rows = self._query(
            "SELECT status_id, in_reply_to_id FROM mentions WHERE persona = ?"
            " AND reply_remote_id = ?",
            (persona, reply_remote_id),
        )
        return (rows[0]["status_id"], rows[0]["in_reply_to_id"]) if rows else None

    def replies_since(self, persona: str, acct: str, since: datetime) -> int:
        """How many mentions by `acct` the persona answered at or after `since`."""
        rows = self._query(
            "SELECT COUNT(*) AS n FROM mentions WHERE persona = ? AND acct = ?"
            " AND outcome = 'replied' AND created_at_utc >= ?",
            (persona, acct.lower(), isoformat_utc(since)),
        )
        return int(rows[0]["n"])

    def mention_skip_counts(self, persona: str) -> dict[str, int]:
        """Skip reason -> count (for `bot status`), most frequent first."""
        rows = self._query(
            "SELECT reason, COUNT(*) AS n FROM mentions WHERE persona = ? AND outcome = 'skipped'"
            " GROUP BY reason ORDER BY n DESC, reason",
            (persona,),
        )
        return {row["reason"]: row["n"] for row in rows}


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)
