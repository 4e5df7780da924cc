"""SQLite state: slot claims, posts, rejected candidates, cursors, failures, heartbeats.

    store = Store(config.store)                  # created and migrated on first use (WAL)
    if store.claim_slot("ada", "2025-01-01T10:00Z"):   # True exactly once, across processes
        ...publish...
        store.record_post("ada", "2025-01-01T10:00Z", text, receipt, rejections=[...])

Schema changes are named migrations (`m001_initial`, ...) applied in order on open and
recorded in `_migrations`; never edit one that has shipped, add the next. Callers never
write SQL: this module is the only place that would change for PostgreSQL, and the SQL
here keeps to what both understand (UTC ISO-8601 text timestamps, the slot claim as one
`INSERT ... ON CONFLICT DO NOTHING`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

from bot.errors import StoreError
from bot.publishers.base import Receipt

SlotStatus = Literal["claimed", "posted", "failed", "skipped"]
PostKind = Literal["post", "reply"]
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's lock

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


@dataclass(frozen=True)
class FailureRow:
    id: int
    persona: str
    slot_key: str
    kind: str
    error: str
    transient: bool
    created_at_utc: str


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


class Store:
    """One SQLite file in WAL mode; safe to share between the scheduler's threads."""

    def __init__(self, path: Path | str, *, now: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        self._now = now
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction()
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

    def claim_slot(self, persona: str, slot_key: str) -> bool:
        """True for exactly one caller per (persona, slot_key), across threads and processes."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO slots (persona, slot_key, claimed_at_utc, status, attempts,"
                " updated_at_utc) VALUES (?, ?, ?, 'claimed', 1, ?)"
                " ON CONFLICT (persona, slot_key) DO NOTHING",
                (persona, slot_key, now, now),
            )
            return cursor.rowcount == 1

    def retry_slot(self, persona: str, slot_key: str, max_attempts: int) -> bool:
        """Re-claim a slot that failed transiently; True for one caller, attempts counted."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE slots SET status = 'claimed', attempts = attempts + 1, updated_at_utc = ?"
                " WHERE persona = ? AND slot_key = ? AND status = 'failed' AND attempts < ?",
                (self._ts(), persona, slot_key, max_attempts),
            )
            return cursor.rowcount == 1

    def mark_slot(self, persona: str, slot_key: str, status: SlotStatus) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE slots SET status = ?, updated_at_utc = ? WHERE persona = ? AND slot_key = ?",
                (status, self._ts(), persona, slot_key),
            )

    def slot(self, persona: str, slot_key: str) -> SlotRow | None:
        rows = self._query(
            "SELECT persona, slot_key, claimed_at_utc, status, attempts, updated_at_utc"
            " FROM slots WHERE persona = ? AND slot_key = ?",
            (persona, slot_key),
        )
        return SlotRow(**dict(rows[0])) if rows else None

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
        posted, in one transaction. Returns the post's row id."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id, url,"
                " created_at_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            self.record_rejections(persona, slot_key, rejections)
            self.mark_slot(persona, slot_key, "posted")
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
