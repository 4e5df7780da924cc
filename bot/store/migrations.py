"""Named schema migrations, applied in order on open and recorded in `_migrations`.

Never edit one that has shipped: add the next (`m004_...`). Each is written once, in the
SQL both backends take: `?` placeholders, SQLite's column types. The PostgreSQL backend
translates the few words that differ when it runs them (bot/store/postgres.py,
`postgres_ddl`): `INTEGER PRIMARY KEY` becomes an identity column, and `TEXT` columns
compare bytewise (`COLLATE "C"`, SQLite's order), so timestamp text sorts as time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class SchemaDB(Protocol):
    """The open migration transaction: one statement at a time."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any: ...


Migration = Callable[[SchemaDB], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: SchemaDB) -> None:
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
def m002_mentions(db: SchemaDB) -> None:
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
def m003_leases(db: SchemaDB) -> None:
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


@migration
def m004_persona_health(db: SchemaDB) -> None:
    """Issue 18 (replicas): what every daemon on one store must agree on about a persona,
    one row each: `disabled` (why the server refused its token; a daemon that starts
    clears it), the failed wakes in a row (`streak`) and the slots still to skip
    (`skip_slots`, the backoff), whichever replica woke it."""
    db.execute(
        """CREATE TABLE persona_health (
            persona TEXT PRIMARY KEY,
            streak INTEGER NOT NULL DEFAULT 0,
            skip_slots INTEGER NOT NULL DEFAULT 0,
            disabled TEXT,
            disabled_at_utc TEXT,
            updated_at_utc TEXT NOT NULL
        )"""
    )


@migration
def m005_post_text(db: SchemaDB) -> None:
    """Issue 26: the text a slot's post carries, written ahead once with the chosen text
    where the two differ (a music persona's tune becomes a post text that depends on the
    publisher's limit at the time), so a re-send or a look for the post never rebuilds it
    from a limit that has changed since. NULL: the post carries `text`."""
    db.execute("ALTER TABLE slots ADD COLUMN post_text TEXT")
