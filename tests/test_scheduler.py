"""The daemon's scheduling logic on a FakeClock: slot keys (DST included), exactly once per
slot, isolation and backoff, a refused token, rate-limit retries, hot reload, coalescing.

No test here sleeps or starts a real wall-clock scheduler; test_daemon.py does the real-time
parts (signals, `bot run` as a process) and test_soak.py the long run.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config, Schedule, load_config
from bot.core.errors import PublishError
from bot.core.post import Post, Receipt
from bot.daemon.scheduler import (
    Daemon,
    GridTrigger,
    WallClockCronTrigger,
    grid_start,
    next_run_times,
    slot_key,
)
from bot.daemon.state import MAX_BACKOFF_WAKES
from bot.posting.persona import Persona
from bot.store import SQLiteStore, Store
from tests.conftest import add_word_list_and_critic
from tests.fakes.clock import FakeClock
from tests.fakes.publishers import StandInPublisher

TINY = Path(__file__).parent / "data" / "tiny_persona"
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 26, 14, 10, 7, tzinfo=UTC)


def persona_yaml(name: str, extra: str = "") -> str:
    """A persona on a copy of tiny_persona with lax filters (it writes gibberish); `extra`
    is more YAML for it (a `schedule:` there replaces the hourly default)."""
    schedule = (
        ""
        if "schedule:" in extra
        else ("    schedule: {interval_minutes: 60, first_run_seconds: 5}\n")
    )
    return f"""\
  {name}:
    model: models/{name}
    candidates: 16
    max_rounds: 4
    filters: {{min_chars: 5, max_chars: 300, default_blocklist: false}}
{schedule}{extra}"""


@pytest.fixture
def make_config(tmp_path: Path, write_config: Callable[[str], Path]) -> Callable[..., Config]:
    """make_config("ada", "bob") -> a Config with those personas on copies of tiny_persona."""

    def make(*names: str, extra: dict[str, str] | None = None) -> Config:
        for name in names:
            if not (tmp_path / "models" / name).exists():
                shutil.copytree(TINY, tmp_path / "models" / name)
        body = "".join(persona_yaml(n, (extra or {}).get(n, "")) for n in names)
        return load_config(write_config("personas:\n" + body))

    return make


class ScriptedPublisher(StandInPublisher):
    """A Publisher whose answers are scripted: a PublishError/Exception to raise, or None
    for success. Records every post it was handed."""

    def __init__(self, name: str = "outbox", script: list[BaseException | None] | None = None):
        self.name = name
        self.script = list(script or [])
        self.posts: list[Post] = []
        self.published: dict[str, Receipt] = {}  # idempotency key -> receipt

    def find(self, post: Post, since: object) -> Receipt | None:
        return self.published.get(post.idempotency_key)

    def publish(self, post: Post) -> Receipt:
        self.posts.append(post)
        if self.script:
            outcome = self.script.pop(0)
            if outcome is not None:
                raise outcome
        if post.idempotency_key not in self.published:
            n = len(self.published) + 1
            self.published[post.idempotency_key] = Receipt(self.name, f"{post.persona}-{n}")
        return self.published[post.idempotency_key]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "state.db", now=clock.now) as s:
        yield s


def make_daemon(
    config: Config, store: Store, clock: FakeClock, **publishers: ScriptedPublisher
) -> Daemon:
    personas = list(config.personas.values())
    pubs = {p.name: publishers.get(p.name) or ScriptedPublisher() for p in personas}
    return Daemon(config, personas, store, clock=clock, publishers=pubs, seed=1337,
                  retry_base_delay_seconds=0.5)  # fmt: skip


# --- slot keys ------------------------------------------------------------------------


def test_interval_slots_are_cells_of_a_utc_grid() -> None:
    hourly = Schedule(interval_minutes=60)
    assert slot_key(hourly, T0) == "2026-11-26T14:00Z"
    # A restart anywhere inside the hour derives the same slot; the next hour a new one.
    assert slot_key(hourly, T0.replace(minute=59, second=59)) == "2026-11-26T14:00Z"
    assert slot_key(hourly, T0.replace(hour=15, minute=0, second=0)) == "2026-11-26T15:00Z"
    assert slot_key(Schedule(interval_minutes=90), T0) == "2026-11-26T13:30Z"  # epoch grid
    # In any zone: the grid is UTC, so the key does not depend on the persona's zone.
    assert slot_key(Schedule(interval_minutes=60, timezone="Asia/Kolkata"), T0) == (
        "2026-11-26T14:00Z"
    )
    assert slot_key(Schedule(interval_minutes=1 / 60), T0) == "2026-11-26T14:10:07Z"


def test_grid_trigger_does_not_drift_with_jitter() -> None:
    trigger = GridTrigger(3600, jitter=300)
    fire = trigger.get_next_fire_time(None, T0)
    keys = []
    for _ in range(500):  # APScheduler's IntervalTrigger would drift ~2.5 min per run
        assert fire is not None
        base = grid_start(fire, 3600)
        assert timedelta(0) <= fire - base <= timedelta(seconds=300)
        keys.append(slot_key(Schedule(interval_minutes=60), fire))
        fire = trigger.get_next_fire_time(fire, fire)
    assert len(set(keys)) == 500  # every run in its own slot, none skipped
    assert keys[0] == "2026-11-26T15:00Z" and keys[-1] == "2026-12-17T10:00Z"
    assert GridTrigger(60, jitter=300).jitter == 30  # capped: a run never leaves its slot


def test_cron_slot_keys_across_dst_in_berlin() -> None:
    nine = Schedule(interval_minutes=None, cron="0 9 * * *", timezone="Europe/Berlin")
    # 09:00 local is 08:00Z in winter and 07:00Z in summer; the key is the UTC fire time.
    assert slot_key(nine, datetime(2026, 3, 28, 10, 0, tzinfo=BERLIN)) == "2026-03-28T08:00Z"
    assert slot_key(nine, datetime(2026, 3, 29, 10, 0, tzinfo=BERLIN)) == "2026-03-29T07:00Z"
    assert slot_key(nine, datetime(2026, 3, 29, 8, 59, tzinfo=BERLIN)) == "2026-03-28T08:00Z"
    # 02:30 does not exist on 29 March (02:00 -> 03:00): one run, at 03:30 CEST (01:30Z).
    night = Schedule(interval_minutes=None, cron="30 2 * * *", timezone="Europe/Berlin")
    assert slot_key(night, datetime(2026, 3, 29, 3, 45, tzinfo=BERLIN)) == "2026-03-29T01:30Z"
    # 02:30 happens twice on 25 October (CEST, then CET): one slot, so one post.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, an hour later
    assert slot_key(night, first + timedelta(minutes=1)) == "2026-10-25T00:30Z"
    assert slot_key(night, second + timedelta(minutes=1)) == "2026-10-25T00:30Z"
    assert slot_key(night, datetime(2026, 10, 26, 3, 0, tzinfo=BERLIN)) == "2026-10-26T01:30Z"


def test_cron_trigger_moves_through_the_repeated_hour() -> None:
    """APScheduler 3.11 loops forever on `*/30` when DST ends (agronholm/apscheduler#1021);
    the daemon's trigger walks through the night, always forward."""
    every_half_hour = Schedule(interval_minutes=None, cron="*/30 * * * *", timezone="Europe/Berlin")
    trigger = WallClockCronTrigger(every_half_hour, jitter=False)
    fire = trigger.get_next_fire_time(None, datetime(2026, 10, 24, 23, 45, tzinfo=UTC))
    fires = []
    while fire is not None and fire < datetime(2026, 10, 25, 3, 0, tzinfo=UTC):
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert [f.strftime("%H:%M") for f in fires] == [
        "00:00", "00:30", "01:00", "01:30", "02:00", "02:30",
    ]  # fmt: skip
    keys = [slot_key(every_half_hour, f + timedelta(seconds=5)) for f in fires]
    # The repeated 02:00 and 02:30 (CET) are the CEST slots again: no post twice an hour.
    assert keys == [
        "2026-10-25T00:00Z", "2026-10-25T00:30Z", "2026-10-25T00:00Z", "2026-10-25T00:30Z",
        "2026-10-25T02:00Z", "2026-10-25T02:30Z",
    ]  # fmt: skip


def test_next_run_times_first_run_then_grid() -> None:
    times = next_run_times(Schedule(interval_minutes=60, first_run_seconds=5), T0)
    assert [t.isoformat() for t in times] == [
        "2026-11-26T14:10:12+00:00", "2026-11-26T15:00:00+00:00", "2026-11-26T16:00:00+00:00",
    ]  # fmt: skip


# --- jobs -----------------------------------------------------------------------------


def test_jobs_follow_the_config(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    config = make_config(
        "ada",
        "bob",
        extra={"bob": "    schedule: {cron: '0 9 * * 1-5', timezone: Europe/Berlin,"
                      " coalesce: false, misfire_grace_seconds: 900, first_run_seconds: null}\n"},
    )  # fmt: skip
    daemon = make_daemon(config, store, clock)
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"post:ada", "first:ada", "post:bob", "heartbeat"}
    ada, bob = jobs["post:ada"], jobs["post:bob"]
    assert (ada.coalesce, ada.misfire_grace_time, ada.max_instances) == (True, 300, 1)
    assert (bob.coalesce, bob.misfire_grace_time, bob.max_instances) == (False, 900, 1)
    assert ada.next_run_time == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    assert jobs["first:ada"].trigger.run_date == T0 + timedelta(seconds=5)
    assert bob.next_run_time == datetime(2026, 11, 27, 9, 0, tzinfo=BERLIN)  # a Friday


def test_replies_job_only_with_mastodon(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "test-token-not-a-secret")
    mastodon = "    publisher: mastodon\n    mastodon: {base_url: 'http://127.0.0.1:9'}\n"
    replies = "    replies: {enabled: true, interval_minutes: 2}\n"
    config = make_config("ada", "bob", extra={"ada": mastodon + replies, "bob": replies})
    daemon = Daemon(config, list(config.personas.values()), store, clock=clock)
    job = daemon.scheduler.get_job("replies:ada")
    assert job is not None and job.trigger.interval == timedelta(minutes=2)
    assert daemon.scheduler.get_job("replies:bob") is None  # the outbox has no mentions


# --- exactly once ---------------------------------------------------------------------


def test_one_post_per_slot_across_restarts(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    config = make_config("ada")
    publisher = ScriptedPublisher()
    first = make_daemon(config, store, clock, ada=publisher)
    result = first.wake("ada", trigger="first_run")
    assert (result.slot_key, result.outcome) == ("2026-11-26T14:00Z", "posted")
    assert publisher.posts[0].idempotency_key == "revenant:ada:2026-11-26T14:00Z"
    # Restarted 20 minutes later: its first run falls in the same slot and posts nothing.
    clock.advance(minutes=20)
    again = make_daemon(config, store, clock, ada=publisher)
    assert again.wake("ada", trigger="first_run").outcome == "already_claimed"
    clock.set(datetime(2026, 11, 26, 15, 0, 3, tzinfo=UTC))
    assert again.wake("ada").outcome == "posted"
    assert [p.slot_key for p in store.recent_posts("ada")] == [
        "2026-11-26T15:00Z",
        "2026-11-26T14:00Z",
    ]
    assert len(publisher.posts) == 2
    assert store.last_beat("daemon") == clock.now()


@pytest.mark.parametrize(
    ("status", "first_run_kept"),
    [("posted", False), ("skipped", False), ("unknown", False), ("failed", True),
     ("claimed", True)],
)  # fmt: skip
def test_a_restart_leaves_out_the_first_run_only_when_its_slot_is_done(
    make_config: Callable[..., Config], store: Store, clock: FakeClock, status: str,
    first_run_kept: bool,
) -> None:  # fmt: skip
    """#21: a second `bot run` inside the hour says it posts nothing now; a slot a crash or
    a failure left open keeps its first run, which takes the slot over (exactly once)."""
    config = make_config("ada")
    claim = store.claim_slot("ada", "2026-11-26T14:00Z", lease_seconds=1)
    assert claim is not None
    if status == "posted":
        store.record_post("ada", claim.slot_key, "Man is a rope.", Receipt("outbox", "ada-1"))
    elif status in ("skipped", "unknown"):
        store.finish_slot(claim, status)  # type: ignore[arg-type]
    elif status == "failed":
        store.mark_failed(claim)
    clock.advance(minutes=20)
    daemon = make_daemon(config, store, clock)
    assert (daemon.scheduler.get_job("first:ada") is not None) is first_run_kept


def test_run_once_posts_each_persona(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    daemon = make_daemon(make_config("ada", "bob"), store, clock)
    results = daemon.run_once()
    assert [(r.slot_key, r.outcome) for r in results] == [
        ("2026-11-26T14:00Z", "posted"),
        ("2026-11-26T14:00Z", "posted"),
    ]


# --- isolation and backoff ------------------------------------------------------------


def test_a_crashing_persona_is_isolated_and_backs_off(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = ScriptedPublisher(script=[RuntimeError("boom")] * 10)
    daemon = make_daemon(make_config("ada", "bob"), store, clock, bob=broken)
    outcomes: dict[str, list[str]] = {"ada": [], "bob": []}
    with caplog.at_level(logging.INFO, logger="bot"):
        for hour in range(15):
            clock.set(T0.replace(minute=0, second=1) + timedelta(hours=hour + 1))
            for name, seen in outcomes.items():
                seen.append(daemon.wake(name).outcome)
    assert outcomes["ada"] == ["posted"] * 15  # never disturbed
    # bob: fails, fails (skip 2), fails (skip 4), fails (skip 8) ...
    f, s = "failed", "skipped"
    assert outcomes["bob"] == [f, f, s, s, f, s, s, s, s, f, s, s, s, s, s]
    assert daemon.states["bob"].failures == 4 and store.persona_health("bob").skip_slots == 3
    # Each failed wake's slot is closed by the next wake: nothing reached the server.
    assert store.failure_counts("bob") == {"backoff": 11, "wake": 4, "late": 3}
    slot = store.slot("bob", "2026-11-26T15:00Z")
    assert slot is not None and slot.status == "skipped"
    last = store.slot("bob", "2026-11-27T00:00Z")
    assert last is not None and last.status == "failed"
    crash = next(r for r in caplog.records if "event=wake_failed" in r.getMessage())
    assert "persona=bob" in crash.getMessage() and "RuntimeError: boom" in crash.getMessage()
    assert crash.exc_info is not None  # the traceback goes to the log
    assert any("event=backoff persona=bob failed_in_a_row=2 skip_wakes=2" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_backoff_is_capped_and_resets_after_success(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    publisher = ScriptedPublisher()
    daemon = make_daemon(make_config("ada"), store, clock, ada=publisher)
    for _ in range(9):
        store.wake_failed("ada", lambda streak: 0)  # nine failed wakes, no backoff set
    publisher.script = [PublishError("down", transient=False)]
    assert daemon.wake("ada").outcome == "failed"
    assert store.persona_health("ada").skip_slots == MAX_BACKOFF_WAKES
    while store.take_skip("ada"):
        pass
    clock.advance(hours=1)
    assert daemon.wake("ada").outcome == "posted"
    health = store.persona_health("ada")
    assert (health.streak, health.skip_slots) == (0, 0)


# --- publishing failures --------------------------------------------------------------


def test_refused_token_disables_only_that_persona(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = PublishError(
        "example.social rejected the access token in ADA_TOKEN (401 Unauthorized)",
        "set ADA_TOKEN to an access token for this account with the scopes write:statuses,"
        " read:notifications, read:accounts, then run `bot check --online`",
        status_code=401,
    )
    daemon = make_daemon(make_config("ada", "bob"), store, clock,
                         ada=ScriptedPublisher(script=[refused]))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="bot"):
        assert daemon.wake("ada").outcome == "failed"
    [line] = [r.getMessage() for r in caplog.records if "persona_disabled" in r.getMessage()]
    assert "persona=ada status=401" in line and "ADA_TOKEN" in line and "write:statuses" in line
    assert {job.id for job in daemon.scheduler.get_jobs()} == {"post:bob", "first:bob",
                                                               "heartbeat"}  # fmt: skip
    clock.advance(hours=1)
    assert daemon.wake("ada").outcome == "disabled"
    assert daemon.wake("bob").outcome == "posted"


def test_transient_errors_retry_inside_the_wake_and_each_attempt_is_recorded(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    flaky = ScriptedPublisher(script=[PublishError("500", transient=True, status_code=500),
                                      PublishError("timed out", transient=True)])  # fmt: skip
    daemon = make_daemon(make_config("ada"), store, clock, ada=flaky)
    result = daemon.wake("ada")
    assert result.outcome == "posted"
    assert len(flaky.posts) == 3 and len({p.idempotency_key for p in flaky.posts}) == 1
    assert store.failure_counts("ada") == {"publish_attempt": 2}
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] / 2  # backoff, no sleep


def test_rate_limit_keeps_the_slot_and_retries_at_the_reset(
    make_config: Callable[..., Config], store: Store, clock: FakeClock
) -> None:
    limited = PublishError("429", transient=True, status_code=429, retry_after=600)
    publisher = ScriptedPublisher(script=[limited])
    daemon = make_daemon(make_config("ada"), store, clock, ada=publisher)
    result = daemon.wake("ada")
    assert result.outcome == "failed"
    slot = store.slot("ada", result.slot_key)
    assert slot is not None and slot.status == "failed"
    retry = daemon.scheduler.get_job("retry:ada")
    assert retry is not None and retry.next_run_time == T0 + timedelta(seconds=601)
    assert store.persona_health("ada").skip_slots == 0  # one failure is not yet a pattern
    clock.advance(seconds=601)
    retry.func(*retry.args)  # what the scheduler runs at the reset
    [post] = store.recent_posts("ada")
    assert post.slot_key == result.slot_key
    assert len({p.idempotency_key for p in publisher.posts}) == 1
    slot = store.slot("ada", result.slot_key)
    assert slot is not None and (slot.status, slot.attempts) == ("posted", 2)


class OutlastingClock(FakeClock):
    """A FakeClock whose first sleep outlasts a lease (two minutes pass) while `meanwhile`
    runs: another waker on the same store."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.meanwhile: Callable[[], object] | None = None

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            self.advance(minutes=2)
            meanwhile()
        return super().sleep(seconds, until)


def test_a_retry_wait_that_outlasts_the_lease_sends_nothing_more(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """A transient error, then the retry wait; meanwhile the lease ran out and another
    waker took the slot over and posted it. The first holder sends nothing more: only the
    holder of a live lease sends (a server that ignores keys would show two posts)."""
    clock = OutlastingClock(T0)
    config = make_config("ada")
    publisher = ScriptedPublisher(script=[PublishError("503", transient=True, status_code=503)])
    with SQLiteStore(tmp_path / "state.db", now=clock.now) as store:
        daemon = make_daemon(config, store, clock, ada=publisher)
        other = Persona(config.personas["ada"], store=store, publisher=publisher, now=clock.now)
        taken: list[str] = []
        clock.meanwhile = lambda: taken.extend(
            other.wake(row.slot_key).outcome for row in store.open_slots("ada"))  # fmt: skip
        result = daemon.wake("ada")
        assert taken == ["posted"]
        assert len(publisher.posts) == 2  # the first try and the other waker's send
        assert result.outcome == "already_claimed"
        assert len(store.recent_posts("ada")) == 1


def test_a_retry_is_not_scheduled_past_the_next_slot(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reset after the next scheduled run: the new slot posts instead (never two at once)."""
    limited = PublishError("429", transient=True, status_code=429, retry_after=1500)
    daemon = make_daemon(make_config("ada"), store, clock,
                         ada=ScriptedPublisher(script=[limited]))  # fmt: skip
    clock.set(datetime(2026, 11, 26, 14, 40, tzinfo=UTC))  # the reset, 15:05, is after 15:00
    with caplog.at_level(logging.INFO, logger="bot"):
        assert daemon.wake("ada").outcome == "failed"
    assert daemon.scheduler.get_job("retry:ada") is None
    assert any("event=retry_given_up" in r.getMessage() and "next slot" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    slot = store.slot("ada", "2026-11-26T14:00Z")
    assert slot is not None and slot.status == "failed"


# --- hot reload -----------------------------------------------------------------------


def test_replaced_model_is_used_and_a_corrupt_one_refused(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = make_daemon(make_config("ada"), store, clock)
    handle = daemon.states["ada"].runner.model
    assert daemon.wake("ada").outcome == "posted"
    old = handle.get()
    # The trainer writes models/.ada.tmp-*/ and renames it over models/ada.
    models = tmp_path / "models"
    fresh = models / ".ada.tmp-1"
    shutil.copytree(TINY, fresh)
    card = (
        (fresh / "card.json")
        .read_text()
        .replace('"created_at_utc": "', '"created_at_utc": "retrained ')
    )
    (fresh / "card.json").write_text(card)
    (models / "ada").rename(models / ".ada.old")
    fresh.rename(models / "ada")
    clock.advance(hours=1)
    with caplog.at_level(logging.INFO, logger="bot"):
        assert daemon.wake("ada").outcome == "posted"
    new = handle.get()
    assert new is not old and new.sampler.card.created_at_utc.startswith("retrained")
    assert any("event=model_reloaded" in r.getMessage() for r in caplog.records)
    # A corrupt replacement: refused in one line, the last good model keeps posting.
    (models / "ada" / "model.keras").write_bytes(b"not a keras file")
    clock.advance(hours=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bot"):
        assert daemon.wake("ada").outcome == "posted"
    assert handle.get().sampler is new.sampler
    assert any("event=model_refused" in r.getMessage() and "keeping=" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert len(store.recent_posts("ada")) == 3


@pytest.mark.parametrize("name", ["words.npz", "critic.npz"])
def test_a_truncated_word_list_or_critic_is_refused_and_the_last_good_model_kept(
    make_config: Callable[..., Config],
    store: Store,
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    folder = tmp_path / "models" / "ada"
    shutil.copytree(TINY, folder)
    add_word_list_and_critic(folder)
    daemon = make_daemon(make_config("ada", extra={"ada": "    vocabulary: any\n"}), store, clock)
    handle = daemon.states["ada"].runner.model
    assert daemon.wake("ada").outcome == "posted"
    good = handle.get()
    assert good.words is not None and good.critic is not None
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])  # a copy cut short
    clock.advance(hours=1)
    with caplog.at_level(logging.INFO, logger="bot"):
        assert daemon.wake("ada").outcome == "posted"
    assert handle.get() is good
    assert any("event=model_refused" in r.getMessage() and name in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert len(store.recent_posts("ada")) == 2


# --- coalescing, with APScheduler itself on the fake clock ------------------------------


@pytest.fixture
def scheduler_on(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """APScheduler's own `datetime.now` follows the FakeClock (its 3.x tests do the same)."""
    import apscheduler.executors.base as executors_base
    import apscheduler.schedulers.base as schedulers_base

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return clock.now().astimezone(tz) if tz else clock.now().replace(tzinfo=None)

    monkeypatch.setattr(schedulers_base, "datetime", FakeDatetime)
    monkeypatch.setattr(executors_base, "datetime", FakeDatetime)
    return clock


@pytest.mark.parametrize("coalesce", [True, False])
def test_a_suspended_daemon_posts_once_when_it_wakes(
    make_config: Callable[..., Config],
    store: Store,
    scheduler_on: FakeClock,
    coalesce: bool,
) -> None:
    """Three hourly runs missed while the process was stopped (SIGSTOP, a suspended VM):
    with coalescing they become one run; without it, the extra runs find the slot claimed."""
    clock = scheduler_on
    config = make_config("ada")
    settings = config.personas["ada"]
    schedule = replace(settings.schedule, first_run_seconds=None, coalesce=coalesce,
                       misfire_grace_seconds=4 * 3600)  # fmt: skip
    config = replace(config, personas={"ada": replace(settings, schedule=schedule)})
    publisher = ScriptedPublisher()
    daemon = make_daemon(config, store, clock, ada=publisher)
    wakes: list[str] = []
    original = daemon.wake

    def counting_wake(name: str, **kwargs: Any) -> Any:
        result = original(name, **kwargs)
        wakes.append(result.outcome)
        return result

    daemon.wake = counting_wake  # type: ignore[method-assign]
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert daemon._started.wait(5)
        clock.set(datetime(2026, 11, 26, 17, 0, 30, tzinfo=UTC))  # missed 15:00, 16:00, 17:00
        daemon.scheduler.wakeup()
        pause = threading.Event()
        for _ in range(200):  # real time, only for the job thread to finish
            if len(wakes) >= (1 if coalesce else 3):
                break
            pause.wait(0.05)
    finally:
        daemon.request_stop("test")
        runner.join(10)
    assert not runner.is_alive()
    assert wakes == (["posted"] if coalesce else ["posted", "already_claimed", "already_claimed"])
    assert [p.slot_key for p in store.recent_posts("ada")] == ["2026-11-26T17:00Z"]
