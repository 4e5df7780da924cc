"""`bot run` as users and supervisors see it: a real process that posts within seconds and
stops cleanly on SIGTERM/SIGINT, an in-flight post finishing (or abandoned at the deadline),
`bot run --once`, `bot status --check`, and Mastodon failures against the loopback server."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli, status
from bot.config import Config, load_config
from bot.core.post import Post, Receipt
from bot.daemon.scheduler import HEARTBEAT_SECONDS, RUN_CURSOR, Daemon
from bot.store import SQLiteStore, Store
from tests.fakes.clock import FakeClock
from tests.fakes.publishers import StandInPublisher

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]

TINY = Path(__file__).parent / "data" / "tiny_persona"
BOT = Path(sys.executable).with_name("bot")
STOP_LIMIT_SECONDS = 10  # what systemd (TimeoutStopSec) and `docker stop` allow


def persona(name: str, extra: str = "") -> str:
    return f"""\
  {name}:
    model: models/{name}
    candidates: 16
    max_rounds: 4
    filters: {{min_chars: 5, max_chars: 300, default_blocklist: false}}
{extra}"""


DAILY = "    schedule: {interval_minutes: 1440, first_run_seconds: 0}\n"


@pytest.fixture
def make_config(tmp_path: Path, write_config: Callable[[str], Path]) -> Callable[..., Config]:
    def make(personas: dict[str, str], top: str = "") -> Config:
        for name in personas:
            if not (tmp_path / "models" / name).exists():
                shutil.copytree(TINY, tmp_path / "models" / name)
        body = "".join(persona(n, extra) for n, extra in personas.items())
        return load_config(write_config(top + "personas:\n" + body))

    return make


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def outbox_lines(config: Config, name: str) -> list[str]:
    path = config.outbox / f"{name}.jsonl"
    return path.read_text().splitlines() if path.exists() else []


# --- the process ----------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_bot_run_posts_within_seconds_and_exits_0_on_a_signal(
    make_config: Callable[..., Config], tmp_path: Path, stop: signal.Signals
) -> None:
    config = make_config({"ada": DAILY})
    log_path = tmp_path / "run.log"

    def run_until_stopped(ready: Callable[[], bool]) -> tuple[int, float, str]:
        with log_path.open("w") as log_file:
            proc = subprocess.Popen([str(BOT), "run"], stdout=log_file, stderr=subprocess.STDOUT)
            try:
                assert wait_for(ready), log_path.read_text()
                sent = time.monotonic()
                proc.send_signal(stop)
                code = proc.wait(timeout=STOP_LIMIT_SECONDS)
                return code, time.monotonic() - sent, log_path.read_text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    code, took, log = run_until_stopped(lambda: len(outbox_lines(config, "ada")) == 1)
    assert code == 0 and took < STOP_LIMIT_SECONDS, log
    assert "event=posted persona=ada" in log and "event=next_run persona=ada" in log
    assert f"event=stopping reason={stop.name}" in log and "event=daemon_stopped clean=true" in log
    # A quick restart inside the same slot posts nothing more, and says so and when it posts
    # next, in the log and in `bot check` (#21).
    check = CliRunner().invoke(cli, ["check"])
    assert check.exit_code == 0, check.output
    [first] = [line for line in check.output.splitlines() if "first run:" in line]
    assert "first run: none: slot " in first and "is done (posted at" in first, first
    next_runs = next(line for line in check.output.splitlines() if "next runs:" in line)
    assert first.endswith("posts first at " + next_runs.split(": ", 1)[1].split(", ")[0])
    code, took, log = run_until_stopped(lambda: "event=daemon_started" in log_path.read_text())
    assert code == 0, log
    [skipped] = [line for line in log.splitlines() if "event=first_run_skipped" in line]
    assert "persona=ada" in skipped and "status=posted" in skipped, skipped
    assert "why=one_post_per_slot next_run=" in skipped, skipped
    assert "event=wake " not in log and len(outbox_lines(config, "ada")) == 1


# --- in-flight wakes at shutdown ------------------------------------------------------


class GatedPublisher(StandInPublisher):
    """An outbox stand-in whose publish() waits for `release` (a slow server)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(self, post: Post) -> Receipt:
        self.entered.set()
        self.release.wait(30)
        return Receipt("outbox", f"{post.persona}-1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "state.db") as s:
        yield s


def test_sigterm_lets_the_in_flight_post_finish(
    make_config: Callable[..., Config], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config({"ada": DAILY})
    gate = GatedPublisher()
    daemon = Daemon(config, list(config.personas.values()), store, publishers={"ada": gate})

    signalled: list[float] = []

    def stop_mid_post() -> None:
        assert gate.entered.wait(30)
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the daemon: run() is on this thread
        time.sleep(0.5)
        gate.release.set()

    previous = signal.getsignal(signal.SIGTERM)
    helper = threading.Thread(target=stop_mid_post)
    helper.start()
    with caplog.at_level(logging.INFO, logger="bot"):
        clean = daemon.run()
    helper.join()
    assert clean and time.monotonic() - signalled[0] < STOP_LIMIT_SECONDS
    [post] = store.recent_posts("ada")
    slot = store.slot("ada", post.slot_key)
    assert slot is not None and slot.status == "posted"
    assert any(f"in_flight=ada@{post.slot_key}" in r.getMessage() for r in caplog.records)
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


def test_a_hung_wake_is_abandoned_at_the_deadline(
    make_config: Callable[..., Config], store: Store
) -> None:
    config = make_config({"ada": DAILY})
    gate = GatedPublisher()
    daemon = Daemon(config, list(config.personas.values()), store, publishers={"ada": gate},
                    shutdown_grace_seconds=1.0)  # fmt: skip
    helper = threading.Thread(target=lambda: gate.entered.wait(30) and daemon.request_stop("t"))
    helper.start()
    try:
        assert daemon.run() is False
        [failure] = store.recent_failures("ada")
        assert failure.kind == "shutdown" and failure.transient
        slot = store.slot("ada", failure.slot_key)
        assert slot is not None and slot.status == "claimed"  # re-run after restart, same key
    finally:
        gate.release.set()
        helper.join()
        assert daemon._stopper is not None
        daemon._stopper.join(10)


# --- bot run --once, bot status --check -------------------------------------------------


def test_run_once_posts_then_finds_the_slot_taken(make_config: Callable[..., Config]) -> None:
    config = make_config({"ada": DAILY, "bob": DAILY + "    enabled: false\n"})
    first = CliRunner().invoke(cli, ["run", "--once"])
    assert first.exit_code == 0, first.output
    [line] = first.stdout.splitlines()
    assert line.endswith(f"posted file://{config.outbox}/ada.jsonl#ada-1")
    again = CliRunner().invoke(cli, ["run", "--once", "-p", "ada"])
    assert again.exit_code == 0 and again.stdout.split()[1] == "already_claimed"


def test_run_without_an_enabled_persona_is_one_line(make_config: Callable[..., Config]) -> None:
    make_config({"ada": "    enabled: false\n"})
    result = CliRunner().invoke(cli, ["run", "--once"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no enabled persona to run" in result.stderr


def test_status_check_is_a_liveness_probe(make_config: Callable[..., Config]) -> None:
    config = make_config({"ada": DAILY})
    missing = CliRunner().invoke(cli, ["status", "--check"])
    assert missing.exit_code == 1 and "no daemon heartbeat" in missing.stderr
    old = datetime.now(UTC) - timedelta(seconds=600)
    with SQLiteStore(config.store, now=lambda: old) as store:
        store.beat("daemon")
    stale = CliRunner().invoke(cli, ["status", "--check"])
    assert stale.exit_code == 1 and stale.stderr.count("\n") == 1
    assert "daemon heartbeat is stale" in stale.stderr and "600 s ago" in stale.stderr
    assert CliRunner().invoke(cli, ["status", "--check", "--max-age-seconds", "900"]).exit_code == 0
    with SQLiteStore(config.store) as store:
        store.beat("daemon")
    fresh = CliRunner().invoke(cli, ["status", "--check"])
    assert fresh.exit_code == 0 and re.match(r"ok: daemon heartbeat \d s ago", fresh.stdout)


def test_status_check_says_stopped_after_a_clean_stop(
    make_config: Callable[..., Config],
) -> None:
    config = make_config({"ada": DAILY})
    with SQLiteStore(config.store) as store:
        daemon = Daemon(config, list(config.personas.values()), store)
        runner = threading.Thread(target=daemon.run)
        runner.start()
        assert wait_for(lambda: store.last_beat("daemon") is not None)
        daemon.request_stop("test")
        runner.join(15)
        result = CliRunner().invoke(cli, ["status", "--check"])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert "daemon stopped: `bot run` stopped at" in result.stderr
        time.sleep(0.01)
        store.beat("daemon")  # a new `bot run` beats again: alive
        assert CliRunner().invoke(cli, ["status", "--check"]).exit_code == 0


def test_a_second_daemon_on_one_store_names_the_first_at_start(
    make_config: Callable[..., Config], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """#26.25: two `bot run` on one store are safe (every slot is claimed in the store),
    but not silent: the second says at start, in one line, which daemon already beats."""
    config = make_config({"ada": DAILY})
    caplog.set_level(logging.INFO, logger="bot")
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([str(BOT), "run"], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: "event=daemon_started" in log_path.read_text()), (
                log_path.read_text()
            )
            with SQLiteStore(config.store) as store:
                first = store.get_cursor(RUN_CURSOR)
                second = Daemon(config, list(config.personas.values()), store)
                second.request_stop("test")  # it starts, says what it says, and stops at once
                assert second.run() is True
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=STOP_LIMIT_SECONDS)
    assert "event=another_daemon" not in log_path.read_text()  # the first was alone
    [line] = [r.getMessage() for r in caplog.records if "event=another_daemon" in r.getMessage()]
    assert first is not None and f":{proc.pid}:" in first
    assert f"run={first}" in line and "heartbeat=" in line, line


def test_status_check_default_follows_the_heartbeat_interval() -> None:
    [option] = [p for p in status.params if p.name == "max_age_seconds"]
    assert option.default == 6 * HEARTBEAT_SECONDS


# --- Mastodon, over loopback -------------------------------------------------------------


def mastodon_persona(server: MastodonServer, token_env: str = "MASTODON_ACCESS_TOKEN") -> str:
    return (
        DAILY + "    publisher: mastodon\n"
        f"    mastodon: {{base_url: '{server.base_url}', access_token_env: {token_env}}}\n"
    )


def test_a_rejected_token_disables_the_persona_not_the_daemon(
    make_config: Callable[..., Config],
    store: Store,
    mastodon_server: MastodonServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ADA_TOKEN", "revoked-token-for-tests")
    config = make_config({"ada": mastodon_persona(mastodon_server, "ADA_TOKEN"), "bob": DAILY})
    clock = FakeClock()
    daemon = Daemon(config, list(config.personas.values()), store, clock=clock)
    with caplog.at_level(logging.INFO, logger="bot"):
        results = daemon.run_once()
    assert [r.outcome for r in results] == ["failed", "posted"]
    [line] = [r.getMessage() for r in caplog.records if "event=persona_disabled" in r.getMessage()]
    assert "persona=ada status=401 token_env=ADA_TOKEN" in line
    assert "write:statuses" in line and "until=restart" in line
    assert daemon.scheduler.get_job("post:ada") is None
    assert daemon.scheduler.get_job("post:bob") is not None
    assert mastodon_server.statuses() == []


def test_rate_limited_slot_is_retried_at_the_reset_once(
    make_config: Callable[..., Config],
    store: Store,
    mastodon_server: MastodonServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", mastodon_server.bot.token or "")
    config = make_config({"ada": mastodon_persona(mastodon_server)})
    clock = FakeClock()
    daemon = Daemon(config, list(config.personas.values()), store, clock=clock,
                    retry_max_delay_seconds=1.0)  # fmt: skip
    mastodon_server.inject_rate_limit(reset_in_seconds=120)
    result = daemon.wake("ada")
    assert result.outcome == "failed"
    retry = daemon.scheduler.get_job("retry:ada")
    assert retry is not None
    wait = (retry.next_run_time - clock.now()).total_seconds()
    assert 100 < wait < 125
    clock.advance(wait)
    retry.func(*retry.args)
    [status] = mastodon_server.statuses()
    [post] = store.recent_posts("ada")
    assert (post.remote_id, post.slot_key) == (str(status["id"]), result.slot_key)
    assert store.failure_counts("ada") == {"publish": 1, "publish_attempt": 1}
