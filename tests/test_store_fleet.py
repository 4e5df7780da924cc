"""The store's reads for a fleet (`bot status`): totals for every persona in a fixed number
of queries (`persona_summaries`) and cursors by name prefix (`cursors`), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core.post import Receipt
from bot.store import FailureRow, PersonaSummary, SQLiteStore, Store

if TYPE_CHECKING:
    from tests.fakes.stores import Backend

pytest_plugins = ["tests.fakes.postgres", "tests.fakes.stores"]


@pytest.fixture
def store(store_backend: Backend) -> Iterator[Store]:
    """Each test on both backends: SQLite, and a real PostgreSQL server."""
    with store_backend.open() as s:
        yield s


def post(store: Store, persona: str, slot: str, kind: str = "post") -> None:
    store.claim_slot(persona, slot)
    store.record_post(persona, slot, f"{persona} {slot}", Receipt("outbox", persona + slot),
                      kind="reply" if kind == "reply" else "post")  # fmt: skip


def test_persona_summaries_count_and_find_the_last_rows(store: Store) -> None:
    assert store.persona_summaries() == {}
    post(store, "ada", "s1")
    post(store, "ada", "s2")
    post(store, "ada", "reply:1", kind="reply")  # replies are not posts here
    post(store, "bob", "s1")
    store.record_failure("ada", "s3", "publish", "first", transient=True)
    store.record_failure("ada", "s3", "wake", "second", transient=False)
    store.record_failure("cyd", "s1", "publish", "only", transient=True)
    claim = store.claim_slot("cyd", "s2")
    assert claim is not None and store.finish_slot(claim, "unknown")

    summaries = store.persona_summaries()
    assert list(summaries) == ["ada", "bob", "cyd"]
    ada = summaries["ada"]
    [newest_ada_post] = [p for p in store.recent_posts("ada") if p.slot_key == "s2"]
    assert (ada.posts, ada.last_post_at_utc) == (2, newest_ada_post.created_at_utc)
    assert ada.last_post_slot_key == "s2"
    assert ada.failures == 2 and ada.unknown == 0
    assert isinstance(ada.last_failure, FailureRow)
    assert (ada.last_failure.kind, ada.last_failure.error, ada.last_failure.transient) == (
        "wake", "second", False,
    )  # fmt: skip
    bob = summaries["bob"]
    assert bob == PersonaSummary("bob", 1, bob.last_post_at_utc, last_post_slot_key="s1")
    cyd = summaries["cyd"]
    assert (cyd.posts, cyd.last_post_at_utc, cyd.failures, cyd.unknown) == (0, None, 1, 1)
    assert cyd.last_failure is not None and cyd.last_failure.transient is True


def test_a_manual_post_is_no_slot_in_the_summary(store: Store) -> None:
    """#26.16: the summary's slot key is its newest post's in a schedule's slot; a `bot
    post` after it counts as a post but hides no slot (`bot status` compares the key)."""
    post(store, "ada", "2026-12-01T10:00Z")
    post(store, "ada", "manual:2026-12-01T10:20:00.000000Z")
    post(store, "bob", "manual:2026-12-01T10:20:00.000000Z")
    summaries = store.persona_summaries()
    ada, bob = summaries["ada"], summaries["bob"]
    [manual, _] = store.recent_posts("ada")
    assert (ada.posts, ada.last_post_at_utc) == (2, manual.created_at_utc)
    assert ada.last_post_slot_key == "2026-12-01T10:00Z"
    assert (bob.posts, bob.last_post_slot_key) == (1, None)


def test_cursors_by_prefix_match_the_prefix_exactly(store: Store) -> None:
    store.set_cursor("next_run:ada", "a")
    store.set_cursor("next_run:bob", "b")
    store.set_cursor("nextXrun:eve", "LIKE's _ matches any character")
    store.set_cursor("NEXT_RUN:mallory", "SQLite's LIKE ignores case")
    store.set_cursor("state:ada", "{}")
    assert store.cursors("next_run:") == {"ada": "a", "bob": "b"}
    assert store.cursors("state:") == {"ada": "{}"}
    assert store.cursors("100%") == {}


def test_summaries_take_the_same_queries_for_3_or_300_personas(tmp_path: Path) -> None:
    def statements(personas: int) -> int:
        with SQLiteStore(tmp_path / f"{personas}.db") as store:
            for i in range(personas):
                post(store, f"p{i}", "s1")
                store.record_failure(f"p{i}", "s2", "publish", "down", transient=True)
            seen: list[str] = []
            store.db.set_trace_callback(seen.append)
            assert len(store.persona_summaries()) == personas
            assert len(store.cursors("next_run:")) == 0
            store.db.set_trace_callback(None)
            return len(seen)

    assert statements(3) == statements(300) == 4
