"""The store's shared plumbing and its simple records, in portable SQL (see sql.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol, Self

from bot.store.migrations import MIGRATIONS
from bot.store.protocol import (
    MANUAL_PREFIX,
    FailureRow,
    PersonaHealth,
    PersonaSummary,
    isoformat_utc,
    parse_ts,
    utc_now,
)


class DB(Protocol):
    """The open transaction's connection, as `transaction()` yields it."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any: ...


class SQLBase:
    """The plumbing every backend shares (a lock, nesting transactions, the clock, the
    migration runner) and the simple records: failures, persona health, cursors,
    heartbeats, mentions.
    `SQLStore` adds slots and posts; a backend adds the connection."""

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction()

    # --- what a backend provides ------------------------------------------------------

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """Group writes atomically; nests. Yields a `DB`."""
        raise NotImplementedError

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Run one read; rows by column name."""
        raise NotImplementedError

    def _before_migrations(self, db: DB) -> None:
        """Called first in the migration transaction (PostgreSQL takes a lock there)."""

    def _after_migrations(self, db: DB, applied: list[str]) -> None:
        """Called last in the migration transaction, when something was applied."""

    # --- plumbing ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ts(self) -> str:
        return isoformat_utc(self._now())

    def migrate(self) -> list[str]:
        """Apply pending migrations in one write transaction; returns the names applied."""
        applied: list[str] = []
        with self.transaction() as db:
            self._before_migrations(db)
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations "
                "(name TEXT PRIMARY KEY, applied_at_utc TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
            for fn in MIGRATIONS:
                if fn.__name__ not in done:
                    fn(db)
                    db.execute(
                        "INSERT INTO _migrations (name, applied_at_utc) VALUES (?, ?)",
                        (fn.__name__, self._ts()),
                    )
                    applied.append(fn.__name__)
            if applied:
                self._after_migrations(db, applied)
        return applied

    def migrations(self) -> list[str]:
        return [row["name"] for row in self._query("SELECT name FROM _migrations ORDER BY name")]

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

    # --- persona health (shared by every daemon on the store) -------------------------

    def persona_health(self, persona: str) -> PersonaHealth:
        """The persona's shared state; all clear when it has no row."""
        rows = self._query(
            "SELECT persona, streak, skip_slots, disabled, disabled_at_utc, updated_at_utc"
            " FROM persona_health WHERE persona = ?",
            (persona,),
        )
        return PersonaHealth(**dict(rows[0])) if rows else PersonaHealth(persona)

    def wake_failed(self, persona: str, backoff: Callable[[int], int]) -> PersonaHealth:
        """One more failed wake in a row, whichever daemon had it (an atomic increment);
        `backoff(streak)` is how many slots to skip from now (0: none, keep the count)."""
        now = self._ts()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO persona_health (persona, updated_at_utc) VALUES (?, ?)"
                " ON CONFLICT (persona) DO NOTHING",
                (persona, now),
            )
            row = db.execute(
                "UPDATE persona_health SET streak = streak + 1, updated_at_utc = ?"
                " WHERE persona = ? RETURNING streak",
                (now, persona),
            ).fetchone()
            skip = backoff(int(row[0]))
            if skip > 0:
                db.execute(
                    "UPDATE persona_health SET skip_slots = ? WHERE persona = ?", (skip, persona)
                )
            return self.persona_health(persona)

    def wake_succeeded(self, persona: str) -> None:
        """The persona works: no failures in a row, no backoff (written only on a change)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE persona_health SET streak = 0, skip_slots = 0, updated_at_utc = ?"
                " WHERE persona = ? AND (streak <> 0 OR skip_slots <> 0)",
                (self._ts(), persona),
            )

    def take_skip(self, persona: str) -> bool:
        """Use up one slot of the backoff; False when none is left (or none was set)."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE persona_health SET skip_slots = skip_slots - 1, updated_at_utc = ?"
                " WHERE persona = ? AND skip_slots > 0",
                (self._ts(), persona),
            )
            return cursor.rowcount == 1

    def disable_persona(self, persona: str, reason: str) -> bool:
        """Disable the persona for every daemon on the store (its token was refused);
        False when it already was (the first reason is kept)."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO persona_health (persona, disabled, disabled_at_utc, updated_at_utc)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (persona) DO UPDATE SET"
                " disabled = excluded.disabled, disabled_at_utc = excluded.disabled_at_utc,"
                " updated_at_utc = excluded.updated_at_utc"
                " WHERE persona_health.disabled IS NULL",
                (persona, reason, now, now),
            )
            return cursor.rowcount == 1

    def reset_persona_health(self, personas: Iterable[str]) -> None:
        """Clear the disabled flag and the backoff of `personas`, in one transaction (a
        daemon starting: a restart is how a fixed token or model is picked up)."""
        now = self._ts()
        with self.transaction() as db:
            db.executemany(
                "UPDATE persona_health SET streak = 0, skip_slots = 0, disabled = NULL,"
                " disabled_at_utc = NULL, updated_at_utc = ? WHERE persona = ?"
                " AND (disabled IS NOT NULL OR streak <> 0 OR skip_slots <> 0)",
                [(now, persona) for persona in personas],
            )

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
        return parse_ts(rows[0]["at_utc"]) if rows else None

    def heartbeats(self) -> dict[str, datetime]:
        rows = self._query("SELECT name, at_utc FROM heartbeats ORDER BY name")
        return {row["name"]: parse_ts(row["at_utc"]) for row in rows}

    # --- a fleet at a glance (`bot status`) ---------------------------------------------

    def cursors(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with `prefix`, keyed by the rest of its name
        (`cursors("next_run:")` -> {persona: value}): one query for a whole fleet. An exact,
        case-sensitive prefix on both backends (`substr`, not LIKE)."""
        rows = self._query(
            "SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return {row["name"][len(prefix) :]: row["value"] for row in rows}

    def persona_summaries(self) -> dict[str, PersonaSummary]:
        """Totals for every persona the store has rows for, in three queries whatever
        the number of personas (not three per persona)."""
        posts = self._query(  # the slot key: of the newest post in a schedule's slot
            "SELECT p.persona, m.n, p.created_at_utc, s.slot_key AS slot_key FROM posts p JOIN"
            " (SELECT persona, COUNT(*) AS n, MAX(id) AS last_id,"
            "  MAX(CASE WHEN substr(slot_key, 1, ?) <> ? THEN id END) AS slot_id FROM posts"
            "  WHERE kind = 'post' GROUP BY persona) m ON p.id = m.last_id"
            " LEFT JOIN posts s ON s.id = m.slot_id",
            (len(MANUAL_PREFIX), MANUAL_PREFIX),
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
                posts=int(row["n"]), last_post_at_utc=row["created_at_utc"],
                last_post_slot_key=row["slot_key"],
            )  # fmt: skip
        for row in failures:
            columns = ("id", "persona", "slot_key", "kind", "error", "created_at_utc")
            last = FailureRow(**{c: row[c] for c in columns}, transient=bool(row["transient"]))
            totals.setdefault(row["persona"], {}).update(failures=int(row["n"]), last_failure=last)
        for row in unknown:
            totals.setdefault(row["persona"], {})["unknown"] = int(row["n"])
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
