"""The state store on both backends (SQLite and a real PostgreSQL, tests/fakes/stores.py):
migrations, slot claims with leases (exactly one winner, also across processes),
write-ahead text, one post row per slot. SQLite-only: WAL, file errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core.errors import StoreError
from bot.core.post import Receipt
from bot.store import MIGRATIONS, SQLiteStore, SQLStore, Store

if TYPE_CHECKING:
    from tests.fakes.stores import Backend

pytest_plugins = ["tests.fakes.postgres", "tests.fakes.stores"]

REPO_ROOT = Path(__file__).resolve().parents[1]

EXPECTED_COLUMNS = {
    "slots": [
        "id",
        "persona",
        "slot_key",
        "claimed_at_utc",
        "status",
        "attempts",
        "updated_at_utc",
        "holder",
        "lease_until_utc",
        "text",
        "prompt",
        "sent_at_utc",
        "first_sent_at_utc",
        "sends",
        "post_text",
    ],
    "posts": [
        "id",
        "persona",
        "slot_key",
        "kind",
        "text",
        "publisher",
        "remote_id",
        "url",
        "created_at_utc",
    ],
    "rejections": ["id", "persona", "slot_key", "text", "reason", "created_at_utc"],
    "cursors": ["name", "value", "updated_at_utc"],
    "failures": ["id", "persona", "slot_key", "kind", "error", "transient", "created_at_utc"],
    "heartbeats": ["name", "at_utc"],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(store_backend: Backend, clock: FakeClock):
    with store_backend.open(now=clock) as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock):
    with SQLiteStore(tmp_path / "state" / "revenant.db", now=clock) as s:
        yield s


def test_migrate_blank(store: SQLStore, store_backend: Backend) -> None:
    if isinstance(store, SQLiteStore):
        assert store.path.exists()  # the folder was created too
    assert store.migrations() == [fn.__name__ for fn in MIGRATIONS]
    assert store.migrations()[0] == "m001_initial"
    tables = {name: store_backend.columns(store, name) for name in EXPECTED_COLUMNS}
    assert tables == EXPECTED_COLUMNS
    assert store.migrate() == []  # reopening applies nothing twice
    with store_backend.open() as again:
        assert again.migrate() == [] and again.migrations() == store.migrations()


def test_wal_and_busy_timeout(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_claim_once(store: Store) -> None:
    claim = store.claim_slot("ada", "2025-01-01T10:00Z")
    assert claim is not None and not claim.taken_over
    assert store.claim_slot("ada", "2025-01-01T10:00Z") is None  # a live lease
    assert store.claim_slot("bob", "2025-01-01T10:00Z") is not None  # per persona
    slot = store.slot("ada", "2025-01-01T10:00Z")
    assert slot is not None
    assert (slot.status, slot.attempts, slot.claimed_at_utc, slot.holder) == (
        "claimed",
        1,
        "2025-01-01T10:00:00.000Z",
        claim.holder,
    )
    assert slot.lease_until_utc == "2025-01-01T10:01:00.000Z"  # LEASE_SECONDS = 60


def test_live_lease_is_never_taken_over_an_expired_one_once(store: Store, clock: FakeClock) -> None:
    first = store.claim_slot("ada", "k", lease_seconds=60)
    assert first is not None
    clock.now += timedelta(seconds=59)
    assert store.claim_slot("ada", "k") is None  # 55 minutes used to pass as "ours"
    assert store.renew(first, 60)
    clock.now += timedelta(seconds=59)
    assert store.claim_slot("ada", "k") is None  # renewed: still live
    clock.now += timedelta(seconds=2)
    second = store.claim_slot("ada", "k")
    assert second is not None and second.taken_over and second.attempts == 2
    assert store.claim_slot("ada", "k") is None  # only one taker
    # The old holder lost its lease: it can neither renew, write ahead nor send.
    assert not store.renew(first)
    assert not store.write_ahead(first, "stale", None)
    assert not store.mark_sending(first)
    assert store.write_ahead(second, "fresh", "prompt")
    slot = store.slot("ada", "k")
    assert slot is not None and (slot.text, slot.holder) == ("fresh", second.holder)


def test_write_ahead_and_sending_travel_with_the_takeover(store: Store, clock: FakeClock) -> None:
    first = store.claim_slot("ada", "k")
    assert first is not None
    assert store.write_ahead(first, "Man is a rope.", "Man ")
    assert store.mark_sending(first)
    clock.now += timedelta(minutes=2)  # the holder died mid-send
    second = store.claim_slot("ada", "k")
    assert second is not None
    assert (second.text, second.prompt) == ("Man is a rope.", "Man ")
    assert second.sent_at_utc == "2025-01-01T10:00:00.000Z"  # may have reached the server


def test_a_post_text_written_ahead_travels_with_the_takeover(
    store: Store, clock: FakeClock
) -> None:
    """A tune and the post text made from it are written ahead together, once."""
    first = store.claim_slot("tunes", "k")
    assert first is not None
    assert store.write_ahead(first, "T:Reel\nK:G\nGABc|", None, "Reel: a tune in G")
    clock.now += timedelta(minutes=2)
    second = store.claim_slot("tunes", "k")
    assert second is not None
    assert (second.text, second.post_text) == ("T:Reel\nK:G\nGABc|", "Reel: a tune in G")


def test_failed_slots_reopen_finished_ones_never(store: Store, clock: FakeClock) -> None:
    claim = store.claim_slot("ada", "k")
    assert claim is not None and store.mark_failed(claim)
    # The same millisecond: a retry right after the failure (a rate limit that resets
    # at once) finds the slot open; it once read as "already claimed" and was lost.
    assert [r.slot_key for r in store.open_slots("ada")] == ["k"]
    again = store.claim_slot("ada", "k")
    assert again is not None and again.attempts == 2
    for status in ("skipped", "unknown"):
        key = f"k-{status}"
        c = store.claim_slot("ada", key)
        assert c is not None and store.finish_slot(c, status)  # type: ignore[arg-type]
        clock.now += timedelta(hours=2)
        assert store.claim_slot("ada", key) is None
    assert store.slot_counts("ada") == {"claimed": 1, "skipped": 1, "unknown": 1}
    assert [r.slot_key for r in store.slots_with_status("ada", "unknown")] == ["k-unknown"]


def test_one_post_row_per_slot_and_publisher(store: SQLStore, store_backend: Backend) -> None:
    receipt = Receipt(publisher="outbox", remote_id="ada-1")
    first = store.record_post("ada", "k", "the text the server has", receipt)
    again = store.record_post("ada", "k", "a text nobody saw", Receipt("outbox", "ada-2"))
    assert again == first
    assert [p.text for p in store.recent_posts("ada")] == ["the text the server has"]
    with pytest.raises(store_backend.integrity_error):
        store_backend.execute(
            store,
            "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id,"
            " created_at_utc) VALUES ('ada', 'k', 'post', 'x', 'outbox', '9', 'now')",
        )


def test_m003_leaves_old_open_slots_unknown_and_keeps_first_post(
    store_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written by the previous version: open slots have no written-ahead text, so
    they can only be `unknown`; duplicate post rows (the bug) keep their first row. The
    slots are copied with their ids, and new rows still get fresh ones."""
    import bot.store.base

    monkeypatch.setattr(bot.store.base, "MIGRATIONS", MIGRATIONS[:2])
    with store_backend.open() as old:
        assert old.migrations() == ["m001_initial", "m002_mentions"]
        for key, status in (("a", "claimed"), ("b", "failed"), ("c", "posted")):
            store_backend.execute(
                old,
                "INSERT INTO slots (persona, slot_key, claimed_at_utc, status, updated_at_utc)"
                " VALUES ('ada', ?, 't', ?, 't')",
                (key, status),
            )
        for text in ("published", "never seen"):
            store_backend.execute(
                old,
                "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id,"
                " created_at_utc) VALUES ('ada', 'c', 'post', ?, 'outbox', '1', 't')",
                (text,),
            )
    monkeypatch.undo()
    with store_backend.open() as store:
        assert store.migrations()[2:4] == ["m003_leases", "m004_persona_health"]
        assert store.slot_counts("ada") == {"posted": 1, "unknown": 2}
        assert [p.text for p in store.recent_posts("ada")] == ["published"]
        moved = store_backend.execute(store, "SELECT text FROM posts_duplicates")
        assert [tuple(row) for row in moved] == [("never seen",)]
        assert store.claim_slot("ada", "d") is not None  # a fresh id after the copied ones
        assert store.record_post("ada", "d", "new", Receipt("outbox", "2")) > 1
        assert store.slot_counts("ada") == {"posted": 2, "unknown": 2}


CLAIM_SCRIPT = """
import sys
from bot.store import open_store
store = open_store(sys.argv[1])
sys.stdout.write("won" if store.claim_slot("ada", "2025-01-01T10:00Z") is not None else "lost")
"""


def test_claim_exactly_once_across_processes(store_backend: Backend) -> None:
    """Several processes race on a fresh store (migration included): one wins the slot."""
    env = {**os.environ, **store_backend.env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_SCRIPT, store_backend.location_text],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(out)
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    with store_backend.open() as store:
        assert store.migrations() == [fn.__name__ for fn in MIGRATIONS]


def test_record_post_marks_slot_and_keeps_rejections(store: Store, clock: FakeClock) -> None:
    store.claim_slot("ada", "k1")
    receipt = Receipt(publisher="outbox", remote_id="ada-1", url="file:///x#ada-1")
    post_id = store.record_post(
        "ada",
        "k1",
        "Man is a rope.",
        receipt,
        rejections=[("@x hi", "has_mention"), ("short", "too_short"), ("tiny", "too_short")],
    )
    assert post_id > 0
    slot = store.slot("ada", "k1")
    assert slot is not None and slot.status == "posted"
    [post] = store.recent_posts("ada")
    assert (post.text, post.url, post.kind, post.created_at_utc) == (
        "Man is a rope.",
        "file:///x#ada-1",
        "post",
        "2025-01-01T10:00:00.000Z",
    )
    assert store.rejection_counts("ada") == {"too_short": 2, "has_mention": 1}
    assert store.rejection_counts("bob") == {}


def test_record_post_is_atomic(store: Store, store_backend: Backend) -> None:
    assert store.claim_slot("ada", "k1") is not None
    receipt = Receipt(publisher="outbox", remote_id="1")
    with pytest.raises(store_backend.integrity_error):
        store.record_post("ada", "k1", "text", receipt, kind="bogus")  # type: ignore[arg-type]
    assert store.recent_posts("ada") == []
    slot = store.slot("ada", "k1")
    assert slot is not None and slot.status == "claimed"


def test_recent_posts_and_texts_newest_first(store: Store, clock: FakeClock) -> None:
    for i in range(5):
        clock.now += timedelta(minutes=1)
        store.record_post(
            "ada" if i % 2 == 0 else "bob",
            f"k{i}",
            f"text {i}",
            Receipt(publisher="outbox", remote_id=str(i)),
        )
    assert [p.text for p in store.recent_posts(limit=2)] == ["text 4", "text 3"]
    assert [p.text for p in store.recent_posts("ada")] == ["text 4", "text 2", "text 0"]
    assert store.recent_texts("ada", limit=2) == ["text 4", "text 2"]


def test_failures(store: Store) -> None:
    store.record_failure("ada", "k1", "publish", "503 from instance", transient=True)
    store.record_failure("ada", "k2", "publish", "401", transient=False)
    store.record_failure("ada", "k3", "sample", "boom", transient=False)
    assert store.failure_counts("ada") == {"publish": 2, "sample": 1}
    [last] = store.recent_failures("ada", limit=1)
    assert (last.kind, last.error, last.transient) == ("sample", "boom", False)
    assert store.recent_failures("ada")[-1].transient is True
    assert store.failure_counts("bob") == {}


def test_cursors_and_heartbeats(store: Store, clock: FakeClock) -> None:
    assert store.get_cursor("scrape:@ada@x") is None
    assert store.get_cursor("scrape:@ada@x", "0") == "0"
    store.set_cursor("scrape:@ada@x", "110")
    store.set_cursor("scrape:@ada@x", "120")
    assert store.get_cursor("scrape:@ada@x") == "120"
    assert store.last_beat("scheduler") is None
    store.beat("scheduler")
    clock.now += timedelta(seconds=30)
    store.beat("scheduler")
    assert store.last_beat("scheduler") == clock.now
    assert store.heartbeats() == {"scheduler": clock.now}


def test_nested_transaction_rolls_back_together(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.claim_slot("ada", "k")
        store.set_cursor("c", "1")
        raise RuntimeError("crash between the two writes")
    assert store.slot("ada", "k") is None
    assert store.get_cursor("c") is None


def test_mentions_once_and_counted(store: Store, clock: FakeClock) -> None:
    assert store.record_mention("ada", "n1", "Alice@x", "replied", status_id="s1",
                                reply_remote_id="r1")  # fmt: skip
    assert not store.record_mention("ada", "n1", "alice@x", "skipped", reason="again")
    assert store.record_mention("ada", "n2", "bob@x", "skipped", reason="nobot")
    assert store.mention_outcome("ada", "n1") == "replied"
    assert store.mention_outcome("ada", "n3") is None
    assert store.mention_answered_by("ada", "r1") == ("s1", None)
    assert store.replies_since("ada", "ALICE@x", clock.now) == 1
    assert store.replies_since("ada", "alice@x", clock.now + timedelta(seconds=1)) == 0
    assert store.mention_skip_counts("ada") == {"nobot": 1}


def test_open_slots_leave_out_reply_slots_and_live_leases(store: Store, clock: FakeClock) -> None:
    for key in ("2025-01-01T09:00Z", "reply:n1", "Reply:n2", "2025-01-01T10:00Z"):
        assert store.claim_slot("ada", key, lease_seconds=1) is not None
    live = store.claim_slot("ada", "live", lease_seconds=600)
    assert live is not None
    clock.now += timedelta(seconds=2)
    keys = [row.slot_key for row in store.open_slots("ada")]
    assert keys == ["2025-01-01T09:00Z", "Reply:n2", "2025-01-01T10:00Z"]  # case matters
    assert [row.slot_key for row in store.open_slots("ada", exclude_prefix="2025")] == [
        "reply:n1",
        "Reply:n2",
    ]


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(StoreError) as info:
        SQLiteStore(tmp_path / "taken" / "revenant.db")
    assert "cannot open the state database" in str(info.value)
    assert "\n" not in str(info.value)


def test_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "revenant.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the state database"):
        SQLiteStore(bogus)


# --- the Store protocol (#18) -------------------------------------------------------------


def test_each_backend_implements_the_protocol(store_backend: Backend) -> None:
    from bot.store import PostgresStore, open_store

    with open_store(store_backend.location) as store:
        assert isinstance(store, Store) and isinstance(store, SQLStore)
        backend = type(store)
        assert backend is {"sqlite": SQLiteStore, "postgres": PostgresStore}[store_backend.name]
    public = {n for cls in backend.__mro__[:-1] for n in vars(cls) if not n.startswith("_")}
    protocol = {n for n in vars(Store) if not n.startswith("_")}
    assert public <= protocol | {"path", "db", "location"}, public - protocol


def test_no_sql_outside_the_store() -> None:
    bot = Path(__file__).resolve().parents[1] / "bot"
    for path in bot.rglob("*.py"):
        if path.parent.name == "store":
            continue
        text = path.read_text(encoding="utf-8")
        assert "sqlite3" not in text and "SELECT " not in text, path


def test_read_history_opens_read_only(tmp_path: Path) -> None:
    from bot.store import read_history

    path = tmp_path / "s.db"
    assert read_history(path, "ada", 5) == [] and not path.exists()
    with SQLiteStore(path) as store:
        for i in range(3):
            store.record_post("ada", f"s{i}", f"text {i}", Receipt("outbox", f"ada-{i}"))
    before = path.read_bytes()
    assert read_history(path, "ada", 2) == ["text 2", "text 1"]
    assert read_history(path, "ada", 0) == []
    assert path.read_bytes() == before
    with SQLiteStore(path, read_only=True) as store, pytest.raises(sqlite3.OperationalError):
        store.set_cursor("x", "1")  # a read-only open cannot write


@pytest.mark.parametrize("folder", ["why?", "no#1", "100%", "a%20b", "x?mode=rwc"])
def test_a_read_only_open_reads_the_file_whatever_its_folder_is_called(
    tmp_path: Path, folder: str
) -> None:
    """`bot status` and `bot preview` read the store through a `file:` URI: a `?`, `#` or
    `%` in the path is the file's name, not the URI's query, fragment or an escape."""
    from bot.store import read_history

    path = tmp_path / folder / "s.db"
    with SQLiteStore(path) as store:
        store.record_post("ada", "s1", "text 1", Receipt("outbox", "ada-1"))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert read_history(path, "ada", 5) == ["text 1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray database made
    with SQLiteStore(path, read_only=True) as store, pytest.raises(sqlite3.OperationalError):
        store.set_cursor("x", "1")  # still read-only
