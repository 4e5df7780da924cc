"""The embedded backend: one SQLite file in WAL mode (stdlib `sqlite3`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.core.errors import StoreError
from bot.store.protocol import utc_now
from bot.store.sql import SQLStore

BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's lock


def _file_uri(path: Path) -> str:
    """`path` as an SQLite `file:` URI: a `?`, `#` or `%` in it is part of the file's name,
    not the start of the query (a `?mode=ro` after it would be lost), a fragment or an
    escape."""
    return "file:" + quote(str(path), safe="/")


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


class SQLiteStore(SQLStore):
    """`Store` in one SQLite file in WAL mode; safe to share between the scheduler's
    threads. `read_only=True` opens an existing file for reading only (no migration)."""

    def __init__(
        self,
        path: Path | str,
        *,
        now: Callable[[], datetime] = utc_now,
        read_only: bool = False,
    ) -> None:
        super().__init__(now)
        self.path = Path(path)
        if read_only:
            try:
                self.db = sqlite3.connect(
                    f"{_file_uri(self.path)}?mode=ro", uri=True, check_same_thread=False
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

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            cursor = self.db.execute(sql, tuple(params))
            cursor.row_factory = sqlite3.Row
            return list(cursor.fetchall())
