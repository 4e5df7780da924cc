"""Exactly once, for real (issue 16): the real Persona, Store and Mastodon publisher against
the loopback Mastodon server, including one that ignores `Idempotency-Key` and one that
stalls past the client's timeout and applies the request late.

Fast tests drive `Persona.wake` in this process with an injectable clock, on both store
backends (SQLite and a real PostgreSQL, tests/fakes/stores.py). The slow ones
(`pytest -m ""`) start real `bot run` / `bot run --once` processes: racing on one store,
and killed with SIGKILL at every step boundary (REVENANT_CRASH_AT, bot/core/faults.py) and
restarted. bench/exactly_once.py runs the same rounds 20 times each (BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from click.testing import CliRunner

from bot import config as cfg
from bot.commands.cli import cli
from bot.config.registry import length_function
from bot.core.faults import POINTS
from bot.core.post import normalise_text
from bot.posting.delivery import SENDS_PER_WAKE, LeaseKeeper
from bot.posting.persona import Persona
from bot.publishers.mastodon.client import MastodonPublisher
from bot.publishers.mastodon.kind import MastodonSettings
from bot.publishers.outbox import Outbox
from bot.store import SQLiteStore
from bot.store.protocol import parse_ts
from tests.fakes.fleet import LEASE_SECONDS, STALL_SECONDS, Fleet, kill_round, race_round

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer
    from tests.fakes.stores import Backend

pytest_plugins = ["tests.fakes.mastodon_server", "tests.fakes.postgres", "tests.fakes.stores"]

TINY = Path(__file__).parent / "data" / "tiny_persona"
SLOT = "2026-12-01T10:00Z"
KILL_ROUNDS = 3  # per crash point here; bench/exactly_once.py runs 20


class Clock:
    """Real time plus a settable offset (the mock stamps statuses with real time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def settings(server: MastodonServer | None = None, **changes: Any) -> cfg.PersonaSettings:
    base = cfg.PersonaSettings(
        name="tiny",
        model=TINY,
        candidates=16,
        max_rounds=6,
        publisher="mastodon" if server else "outbox",
        publisher_settings={
            "mastodon": MastodonSettings(base_url=server.base_url if server else None)
        },
        filters=cfg.Filters(min_chars=3, default_blocklist=False, novelty_words=50),
    )
    return cfg.PersonaSettings(**{**base.__dict__, **changes})


class Rig:
    def __init__(self, server: MastodonServer, backend: Backend) -> None:
        self.server = server
        self.clock = Clock()
        self.store = backend.open(now=self.clock)

    def publisher(self, *, timeout: float = 5.0, settle: float = 0.0) -> MastodonPublisher:
        return MastodonPublisher(
            self.server.base_url,
            self.server.bot.token or "",
            request_timeout_seconds=timeout,
            settle_seconds=settle,
        )

    def persona(self, publisher: Any, **changes: Any) -> Persona:
        s = settings(self.server, **changes)
        return Persona(s, store=self.store, publisher=publisher, rng=np.random.default_rng(3),
                       now=self.clock, length=length_function(s), lease_seconds=1)  # fmt: skip

    def check(self) -> None:
        """One status per post row, and the stored text is the server's."""
        self.server.drain()
        statuses = self.server.statuses()
        rows = self.store.recent_posts("tiny", limit=100)
        assert len(statuses) == len(rows)
        by_id = {str(s["id"]): normalise_text(s["content"], is_html=True) for s in statuses}
        assert {row.remote_id: normalise_text(row.text) for row in rows} == by_id


@pytest.fixture
def rig(mastodon_server: MastodonServer, store_backend: Backend) -> Iterator[Rig]:
    r = Rig(mastodon_server, store_backend)
    yield r
    r.store.close()


# --- in process ------------------------------------------------------------------------


def test_answer_lost_after_the_server_posted_is_found_not_sent_again(rig: Rig) -> None:
    """The server ignores the key and answers after the client gave up: the post is found
    among the account's statuses; a blind retry would have made a second one."""
    rig.server.ignore_idempotency_keys()
    rig.server.inject_late_response(1.0)
    result = rig.persona(rig.publisher(timeout=0.3, settle=0.8)).wake(SLOT)
    assert result.outcome == "posted"
    rig.check()
    assert len(rig.server.statuses()) == 1


def test_stalling_key_ignoring_server_never_gets_two_statuses(rig: Rig) -> None:
    """Every request stalls past the client timeout and is applied late; the key is
    ignored. Within the settle bound the first send is found: one status per slot."""
    rig.server.ignore_idempotency_keys()
    rig.server.inject_stall(0.6, count=None)
    persona = rig.persona(rig.publisher(timeout=0.3, settle=1.0))
    results = [persona.wake(f"2026-12-01T1{i}:00Z") for i in range(2)]
    assert [r.outcome for r in results] == ["posted", "posted"]
    rig.check()
    assert len(rig.server.statuses()) == 2


def test_5xx_with_nothing_posted_is_looked_for_then_sent_once(rig: Rig) -> None:
    rig.server.ignore_idempotency_keys()
    rig.server.inject_error(502)
    result = rig.persona(rig.publisher()).wake(SLOT)
    assert result.outcome == "posted"
    rig.check()
    row = rig.store.slot("tiny", SLOT)
    assert row is not None and row.sends == 2 and row.text == result.text


def test_outcome_unknown_past_the_key_lifetime_is_never_resent(
    rig: Rig, mastodon_server: MastodonServer
) -> None:
    statuses_path = f"/api/v1/accounts/{mastodon_server.bot.id}/statuses"
    rig.server.inject_error(500)  # the send: maybe posted
    rig.server.inject_error(503, path=statuses_path, methods=["GET"])  # the look fails
    persona = rig.persona(rig.publisher())
    first = persona.wake(SLOT)
    assert first.outcome == "failed"
    row = rig.store.slot("tiny", SLOT)
    assert row is not None and row.status == "failed" and row.sent_at_utc is not None

    rig.clock.offset += timedelta(minutes=61)  # past Mastodon's key lifetime
    rig.server.inject_error(503, path=statuses_path, methods=["GET"])
    second = persona.wake(SLOT)

    assert second.outcome == "unknown"
    assert rig.store.slot_counts("tiny") == {"unknown": 1}
    rig.clock.offset += timedelta(minutes=5)
    assert persona.wake(SLOT).outcome == "already_claimed"  # never re-sent
    assert rig.server.statuses() == []


def test_one_wake_sends_a_slot_at_most_sends_per_wake_times(rig: Rig) -> None:
    """Every send is answered 500 (nothing made) and every look finds nothing: the wake
    stops after SENDS_PER_WAKE sends, the last one looked for too."""
    rig.server.inject_error(500, count=None)
    result = rig.persona(rig.publisher()).wake(SLOT)
    assert result.outcome == "failed"
    row = rig.store.slot("tiny", SLOT)
    assert row is not None and row.sends == SENDS_PER_WAKE == 3
    assert row.sent_at_utc is None  # all looked for: the next attempt sends at once


def test_a_refused_first_send_does_not_bound_the_slots_life(
    rig: Rig, mastodon_server: MastodonServer
) -> None:
    """The first send was refused (429): nothing landed. An hour later the next send's
    answer is a 500 and the look fails: the slot stays open (the bound counts from the
    first send that may have landed) and the next attempt posts it."""
    statuses_path = f"/api/v1/accounts/{mastodon_server.bot.id}/statuses"
    rig.server.inject_rate_limit(reset_in_seconds=120)
    persona = rig.persona(rig.publisher())
    assert persona.wake(SLOT).outcome == "failed"
    rig.clock.offset += timedelta(minutes=61)
    rig.server.inject_error(500)  # the send: maybe posted
    rig.server.inject_error(503, path=statuses_path, methods=["GET"])  # the look fails
    assert persona.wake(SLOT).outcome == "failed"
    assert persona.wake(SLOT).outcome == "posted"
    rig.check()


def test_a_post_composed_again_after_a_refusal_is_sent_without_a_stale_look(
    rig: Rig, mastodon_server: MastodonServer
) -> None:
    """An earlier send may have landed (500) and could not be looked for. The next wake
    looks (absent), sends, is refused for length and composes again: the new text goes
    out at once, not after another look from the old send's time (which failed here)."""
    statuses_path = f"/api/v1/accounts/{mastodon_server.bot.id}/statuses"
    rig.server.inject_error(500)  # the send: maybe posted
    rig.server.inject_error(503, path=statuses_path, methods=["GET"])  # the look fails
    persona = rig.persona(rig.publisher())
    assert persona.wake(SLOT).outcome == "failed"
    rig.server.inject_error(
        422, body={"error": "Validation failed: Text character limit of 500 exceeded"}
    )
    rig.server.inject({"type": "latency", "delay_ms": 0}, path=statuses_path,
                      methods=["GET"])  # the first look answers, any later one fails  # fmt: skip
    rig.server.inject_error(503, path=statuses_path, methods=["GET"], count=None)
    result = persona.wake(SLOT)
    assert result.outcome == "posted", result
    rig.server.clear_faults()
    rig.check()


def test_a_slot_taken_over_after_the_misfire_grace_is_skipped_not_posted_late(
    rig: Rig,
) -> None:
    claim = rig.store.claim_slot("tiny", SLOT, lease_seconds=1)
    assert claim is not None  # a process claimed it, then died before composing
    rig.clock.offset += timedelta(minutes=6)
    result = rig.persona(rig.publisher()).wake(SLOT, late_grace=timedelta(minutes=5))
    assert result.outcome == "late"
    assert rig.store.slot_counts("tiny") == {"skipped": 1}
    assert rig.server.statuses() == []


def test_a_crashed_earlier_slot_is_reconciled_on_the_next_wake(rig: Rig) -> None:
    """Crash after the server accepted, restart in the next slot: the earlier slot's post
    is found and recorded, and nothing is sent for it again."""
    publisher = rig.publisher()
    persona = rig.persona(publisher)
    claim = rig.store.claim_slot("tiny", SLOT, lease_seconds=1)
    assert claim is not None
    text = persona.compose().chosen[0].text
    assert rig.store.write_ahead(claim, text, "")
    assert rig.store.mark_sending(claim)
    publisher.publish(persona._post(text, SLOT))  # the server has it; the process dies
    rig.clock.offset += timedelta(hours=1)

    result = persona.wake("2026-12-01T11:00Z")

    assert result.outcome == "posted"
    assert rig.store.slot_counts("tiny") == {"posted": 2}
    rig.check()


def test_two_wakers_in_one_process_post_once(rig: Rig) -> None:
    publisher = rig.publisher()
    first, second = rig.persona(publisher), rig.persona(publisher)
    assert first.wake(SLOT).outcome == "posted"
    assert second.wake(SLOT).outcome == "already_claimed"
    rig.check()


class SlowOutbox(Outbox):
    """An outbox whose publish takes `seconds` (a slow server), longer than the lease."""

    seconds = 2.5

    def publish(self, post: Any) -> Any:
        time.sleep(self.seconds)
        return super().publish(post)


def test_the_lease_is_renewed_while_the_holder_works(
    tmp_path: Path, store_backend: Backend
) -> None:
    """A 1 s lease held through a 2.5 s send: renewed every 0.25 s, never taken over by
    a second waker on its own connection (another process or replica)."""
    with store_backend.open() as store, store_backend.open() as other:
        outbox = SlowOutbox(tmp_path / "outbox")

        def persona(on: Any) -> Persona:
            return Persona(settings(), store=on, publisher=outbox, lease_seconds=1,
                           rng=np.random.default_rng(5))  # fmt: skip

        results: list[str] = []
        holder = threading.Thread(target=lambda: results.append(persona(store).wake(SLOT).outcome))
        holder.start()
        time.sleep(1.8)  # well past the first lease, while the send is still going
        second = persona(other).wake(SLOT)
        holder.join(10)
        assert (results, second.outcome) == (["posted"], "already_claimed")
        assert len(outbox.read("tiny")) == 1


def test_length_counts_the_content_warning(tmp_path: Path) -> None:
    """A 69-character content warning leaves 431 of Mastodon's 500 for the text."""
    s = settings(spoiler_text="c" * 69, filters=cfg.Filters(min_chars=3, max_chars=500,
                 default_blocklist=False, novelty_words=50))  # fmt: skip
    persona = Persona(s, publisher=Outbox(tmp_path), rng=np.random.default_rng(1),
                      length=length_function(s))  # fmt: skip
    comp = persona.compose(want=8)
    assert comp.chosen
    assert all(len(c.text) + 69 <= 500 for c in comp.chosen)
    assert length_function(s)("x" * 453) == 522  # what the server refused with 422


def test_bot_status_shows_unknown_slots(ada_config: Path, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "home" / "revenant.db") as store:
        claim = store.claim_slot("ada", SLOT)
        assert claim is not None and store.write_ahead(claim, "Man is a rope.", None)
        store.finish_slot(claim, "unknown")
    result = CliRunner().invoke(cli, ["status", "-p", "ada"])
    assert result.exit_code == 0, result.output
    assert f"unknown: {SLOT} (may have been posted; never re-sent)" in result.output
    data = CliRunner().invoke(cli, ["status", "--json"]).output
    assert '"unknown": [' in data and SLOT in data


def test_bot_post_leaves_a_live_bot_posts_slot_to_it(
    write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    """#26.3: another `bot post` is still working (it renews its claim): a second one waits
    for that lease, sees it renewed, and says so in one line; it posts nothing."""
    config = cfg.load_config(write_config(
        f"lease_seconds: 1\npersonas:\n  tiny:\n    model: {TINY}\n"
        "    filters: {min_chars: 3, default_blocklist: false, novelty_words: 50}\n"
    ))  # fmt: skip
    slot = "manual:2026-12-01T10:00:00.000000Z"
    with SQLiteStore(config.store) as store:
        claim = store.claim_slot("tiny", slot, lease_seconds=1)
        assert claim is not None
        with LeaseKeeper(store, claim, lease_seconds=1):
            result = CliRunner().invoke(cli, ["post"])
        assert result.exit_code == 1, result.output
        [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert "another `bot post`" in error and slot in error, error
        assert store.recent_posts("tiny") == []
    assert not (config.outbox / "tiny.jsonl").exists()


# --- real processes (slow) --------------------------------------------------------------


@pytest.fixture
def fleet(mastodon_server: MastodonServer, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    # A request whose client was killed makes the mock log a traceback; not a failure.
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")
    return Fleet(mastodon_server, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("once", "daemons", "ignore_keys", "stall"),
    [(2, 0, False, False), (2, 2, True, False), (1, 3, True, True)],
)
def test_processes_racing_on_one_store_post_each_slot_once(
    fleet: Fleet, once: int, daemons: int, ignore_keys: bool, stall: bool
) -> None:
    audit = race_round(fleet, "race", once=once, daemons=daemons, ignore_keys=ignore_keys,
                       stall=stall)  # fmt: skip
    assert audit.clean, audit
    assert audit.each_slot_once and len(audit.slots) <= 2, audit


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_9_at_every_step_then_restart_posts_once(fleet: Fleet, point: str) -> None:
    for variant in range(KILL_ROUNDS):
        audit, code = kill_round(fleet, f"{point}-{variant}", point, variant)
        assert code == -9, f"{point}: the crash run was not killed ({code})"
        assert audit.clean, audit
        assert audit.each_slot_once and len(audit.slots) <= 2, audit


@pytest.mark.slow
def test_bot_post_holds_its_claim_for_the_configured_lease(fleet: Fleet) -> None:
    """#26.4: `bot post` leases its slot for config.yaml's `lease_seconds` (1 s here), not
    the default minute: killed once its text is written ahead, its claim ends within a
    lease of its last write, and a later run may take it over that soon."""
    home = fleet.round("post-lease")
    crashed = fleet.run(home, "--yes", command="post", crash_at="after_compose")
    assert crashed.returncode == -9, crashed.stderr
    with SQLiteStore(home / "revenant.db") as store:
        [row] = store.slots_with_status("tiny", "claimed")
    assert row.slot_key.startswith("manual:") and row.lease_until_utc is not None
    lease = parse_ts(row.lease_until_utc) - parse_ts(row.updated_at_utc)
    assert lease <= timedelta(seconds=LEASE_SECONDS), lease


@pytest.mark.slow
def test_bot_post_killed_mid_send_is_finished_by_the_next_bot_post(fleet: Fleet) -> None:
    """#26.3: `bot post` killed while the server holds its request (and applies it after);
    the next `bot post` finishes that slot instead of posting anew: it finds the status,
    records it, sends nothing new and prints the status' address."""
    home = fleet.round("post-again")
    fleet.server.inject_stall(STALL_SECONDS)  # applied after the client died
    crashed = fleet.run(home, "--yes", command="post", crash_at="during_send", delay=0.3)
    assert crashed.returncode == -9, crashed.stderr

    again = fleet.run(home, "--yes", command="post")

    assert again.returncode == 0, again.stderr
    audit = fleet.audit(home)
    assert audit.clean and audit.statuses == audit.rows == 1, audit
    assert list(audit.slots.values()) == ["posted"], audit
    [status] = fleet.server.statuses()
    assert f"posted to mastodon {status['url']}" in again.stdout, again.stdout
