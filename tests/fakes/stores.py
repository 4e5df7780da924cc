"""Both store backends for one test: `store_backend` is parametrized over SQLite (a file
under tmp_path) and PostgreSQL (a fresh database on the session's server, see
tests/fakes/postgres.py), so a suite written once runs on both.

    pytest_plugins = ["tests.fakes.postgres", "tests.fakes.stores"]

    def test_x(store_backend):
        with store_backend.open(now=clock) as store: ...      # a migrated store
        store_backend.columns(store, "slots")                 # column names, in order
        store_backend.execute(store, "INSERT ...")            # raw SQL around the API
        store_backend.integrity_error                         # what a constraint raises
        store_backend.location_text, store_backend.env        # for a child process

Raw SQL lives here and in the tests only to reach around the store's API (old schemas,
constraint checks); the product's SQL stays in bot/store/.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.store import PostgresLocation, PostgresStore, SQLiteStore, SQLStore, utc_now
from bot.store.postgres import postgres_sql

BACKENDS = ["sqlite", "postgres"]


@dataclass
class Backend:
    name: str
    location: Path | PostgresLocation
    location_text: str  # what config.yaml's `store:` (or open_store) takes
    env: dict[str, str] = field(default_factory=dict)  # what a child process needs

    def open(self, now: Callable[[], datetime] = utc_now, **kwargs: Any) -> SQLStore:
        if isinstance(self.location, PostgresLocation):
            return PostgresStore(self.location, now=now, **kwargs)
        return SQLiteStore(self.location, now=now, **kwargs)

    @property
    def integrity_error(self) -> type[Exception]:
        if self.name == "sqlite":
            return sqlite3.IntegrityError
        import psycopg

        return psycopg.IntegrityError

    def execute(self, store: SQLStore, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Raw SQL (with `?` placeholders) outside the store's API; returns the rows."""
        if isinstance(store, PostgresStore):
            cursor = store.db.execute(postgres_sql(sql), params)
            return cursor.fetchall() if cursor.description else []
        assert isinstance(store, SQLiteStore)
        return store.db.execute(sql, params).fetchall()

    def columns(self, store: SQLStore, table: str) -> list[str]:
        if isinstance(store, PostgresStore):
            rows = self.execute(
                store,
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                " AND table_schema = current_schema() ORDER BY ordinal_position",
                (table,),
            )
            return [row[0] for row in rows]
        return [row[1] for row in self.execute(store, f"PRAGMA table_info({table})")]


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "state" / "revenant.db"
        return Backend("sqlite", path, str(path))
    db = request.getfixturevalue("postgres_db")
    return Backend("postgres", db.location, db.url, env=db.env())
