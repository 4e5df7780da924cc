"""The state store: slot claims, posts, rejected candidates, cursors, failures, heartbeats,
and each persona's health (disabled, backoff), shared by every daemon on the store.

`Store` is the protocol every backend implements: `SQLiteStore` (one file, the embedded
default) and `PostgresStore` (a shared database, for replicas and big fleets). Both run
the same SQL (sql.py, base.py) and the same named migrations (migrations.py).

    store = open_store(config.store)             # created and migrated on first use
    claim = store.claim_slot("ada", "2025-01-01T10:00Z")   # a Claim for one caller, or None
    if claim:
        store.write_ahead(claim, text, prompt)   # the text, durable before anything is sent
        store.mark_sending(claim)                # "may have reached the server" from here on
        ...publish...
        store.record_post("ada", "2025-01-01T10:00Z", text, receipt, rejections=[...])

The package's modules:

    protocol.py    `Store`, the rows (Claim, SlotRow, PostRow, FailureRow, PersonaHealth), UTC time
    sql.py         `SQLStore`: slots and posts (the claim protocol), in SQL both backends take
    base.py        `SQLBase`: transactions, migration runner; failures, health, cursors, mentions
    migrations.py  m001_initial, ..., m005_post_text (never edit a shipped one)
    sqlite.py      `SQLiteStore`: WAL, busy timeout, BEGIN IMMEDIATE
    postgres.py    `PostgresStore`: psycopg 3, placeholders and DDL translated, advisory lock

Where the store lives (`store:`, a path or a postgresql:// URL) is configuration:
bot/config/location.py. May import: `bot.config`, `bot.core`.

Callers never write SQL (`bot preview` reads history through `read_history`, a read-only
open): this package is the only place that knows a database brand.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from bot.config.location import PostgresLocation, StoreLocation, is_url, parse_store_setting
from bot.core.errors import StoreError
from bot.store.migrations import MIGRATIONS, Migration, migration
from bot.store.postgres import PostgresStore, database_has_store
from bot.store.protocol import (
    LEASE_SECONDS,
    MANUAL_PREFIX,
    Claim,
    FailureRow,
    PersonaHealth,
    PersonaSummary,
    PostKind,
    PostRow,
    SlotRow,
    SlotStatus,
    Store,
    isoformat_utc,
    new_holder,
    utc_now,
)
from bot.store.sql import SQLStore
from bot.store.sqlite import BUSY_TIMEOUT_MS, SQLiteStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "LEASE_SECONDS",
    "MANUAL_PREFIX",
    "MIGRATIONS",
    "Claim",
    "FailureRow",
    "Migration",
    "PersonaHealth",
    "PersonaSummary",
    "PostKind",
    "PostRow",
    "PostgresLocation",
    "PostgresStore",
    "SQLStore",
    "SQLiteStore",
    "SlotRow",
    "SlotStatus",
    "Store",
    "StoreLocation",
    "isoformat_utc",
    "migration",
    "new_holder",
    "open_store",
    "parse_store_setting",
    "read_history",
    "read_only",
    "store_exists",
    "utc_now",
]


T = TypeVar("T")


def store_exists(location: StoreLocation) -> bool:
    """True when the store is there: the SQLite file, or a migrated PostgreSQL database (it
    connects to find out; a StoreError when the server cannot be reached)."""
    if isinstance(location, PostgresLocation):
        return database_has_store(location)
    return location.exists()


def _location(location: StoreLocation | str) -> StoreLocation:
    if isinstance(location, str) and is_url(location):
        return PostgresLocation.parse(location)
    return Path(location) if isinstance(location, str) else location


def open_store(location: StoreLocation | str, *, now: Callable[[], datetime] = utc_now) -> Store:
    """The store at `location` (config.yaml's `store:`: a path, or a postgresql:// URL or
    PostgresLocation), created and migrated if new."""
    where = _location(location)
    if isinstance(where, PostgresLocation):
        return PostgresStore(where, now=now)
    return SQLiteStore(where, now=now)


def read_only(location: StoreLocation | str, read: Callable[[SQLStore], T], empty: T) -> T:
    """`read(store)` on a read-only open: nothing is created, migrated or written; `empty`
    when there is no store yet or it is unreadable (`bot run` will say why)."""
    where = _location(location)
    store: SQLStore
    try:
        if isinstance(where, PostgresLocation):
            store = PostgresStore(where, read_only=True)
        elif where.is_file():
            store = SQLiteStore(where, read_only=True)
        else:
            return empty
        with store:
            return read(store)
    except StoreError:
        return empty
    except Exception as err:  # not a store, no table yet
        if _database_error(err):
            return empty
        raise


def read_history(location: StoreLocation | str, persona: str, limit: int) -> list[str]:
    """The persona's last `limit` post texts from a read-only open (`bot preview`); [] when
    there is no store yet or it is unreadable."""
    if limit <= 0:
        return []
    return read_only(location, lambda store: store.recent_texts(persona, limit), [])


def _database_error(err: Exception) -> bool:
    """An error of either driver (psycopg can only have raised one if it is loaded)."""
    if isinstance(err, sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(err, psycopg.Error)
