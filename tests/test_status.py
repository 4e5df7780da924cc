"""`bot status` for a fleet (issue 18, point 5; issue 21: no "next run" from a daemon that
is not running): one line per persona, `--json`, filters by name and glob, the detail view
for one persona, and whether `bot run` runs, against a real store, real configs and real
daemons (in a thread, and as a `bot run` process)."""

from __future__ import annotations

import json
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

import pytest
from click.testing import CliRunner, Result

from bot.commands.cli import cli
from bot.config import Config, load_config
from bot.core.errors import PublishError
from bot.core.post import Post, Receipt
from bot.daemon.scheduler import Daemon
from bot.store import SQLiteStore
from tests.fakes.publishers import StandInPublisher

TINY = Path(__file__).parent / "data" / "tiny_persona"
BOT = Path(sys.executable).with_name("bot")
README = Path(__file__).resolve().parents[1] / "README.md"
FLEET_SIZE = 300


def status(*args: str) -> Result:
    return CliRunner().invoke(cli, ["status", *args])


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- a fleet of 300 from one defaults block ------------------------------------------------


@pytest.fixture
def fleet(write_config: Callable[[str], Path], tmp_path: Path) -> Config:
    """300 personas sharing a defaults block, one off, one on a Berlin cron; a real store
    with posts for every third persona, a failure and an `unknown` slot."""
    names = [f"poet-{i:03d}" for i in range(FLEET_SIZE - 2)]
    body = "".join(f"  {name}: {{}}\n" for name in names)
    config = load_config(
        write_config(
            "defaults:\n  schedule: {interval_minutes: 60, jitter_seconds: 120}\n"
            "personas:\n" + body + "  retired: {enabled: false}\n"
            "  morning: {schedule: {cron: '0 9 * * *', timezone: Europe/Berlin}}\n"
        ),
        check_models=False,
    )
    with SQLiteStore(config.store) as store, store.transaction():
        for name in names[::3]:
            for slot in ("2026-12-01T10:00Z", "2026-12-01T11:00Z"):
                store.claim_slot(name, slot)
                store.record_post(name, slot, f"{name} at {slot}", Receipt("outbox", name + slot))
        store.record_failure("poet-007", "2026-12-01T10:00Z", "publish", "instance unreachable",
                             transient=True)  # fmt: skip
        store.record_mention("poet-009", "n1", "fan@example.org", "skipped", reason="too_old")
        claim = store.claim_slot("poet-009", "2026-12-01T12:00Z")
        assert claim is not None and store.finish_slot(claim, "unknown")
    return config


def rows(output: str) -> dict[str, str]:
    """The table's persona lines, by persona."""
    return {line.split()[0]: line for line in output.splitlines() if line.startswith(("poet-", "retired", "morning"))}  # fmt: skip


def test_a_fleet_is_one_line_per_persona(fleet: Config) -> None:
    result = status()
    assert result.exit_code == 0, result.stdout
    lines = rows(result.stdout)
    assert len(lines) == FLEET_SIZE
    header = result.stdout.splitlines()[0]
    assert header.startswith("daemon: not running (it never ran on this store)")
    assert re.match(
        r"poet-000\s+not running\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\(next slot ", lines["poet-000"]
    )
    assert lines["poet-000"].split()[-2:] == ["2", "0"]  # posts, failures
    assert lines["poet-001"].split()[3] == "-"  # no post yet
    assert "publish: instance unreachable" in lines["poet-007"]
    assert re.match(r"retired\s+off\s+-\s+-\s+0\s+0$", lines["retired"])
    assert "08:00)" in lines["morning"]  # 09:00 in Berlin, in UTC (winter)
    assert result.stdout.splitlines()[-1] == (
        f"{FLEET_SIZE} personas: {FLEET_SIZE - 1} not running, 1 off; 1 unknown slot "
        "(see `bot status -p NAME`)"
    )


def test_json_has_every_persona_and_the_documented_fields(fleet: Config) -> None:
    result = status("--json")
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert len(data["personas"]) == FLEET_SIZE
    assert data["daemon"] == {
        "state": "never", "running": False, "last_beat_utc": None, "started_at_utc": None,
        "stopped_at_utc": None, "last_once_utc": None,
    }  # fmt: skip
    poet = data["personas"]["poet-000"]
    assert poet["state"] == "not_running" and poet["next_run"] is None
    assert (
        poet["post_count"] == 2 and poet["last_post_at_utc"] == poet["posts"][0]["created_at_utc"]
    )
    assert poet["next_slot_if_started"].endswith(":00:00.000Z")
    assert data["personas"]["poet-007"]["last_failure"]["error"] == "instance unreachable"
    assert data["personas"]["poet-009"]["unknown_count"] == 1
    assert data["personas"]["retired"]["state"] == "off"
    section = README.read_text(encoding="utf-8").split("### bot status\n", 1)[1]
    section = section.split("\n### ", 1)[0]
    documented = section.split("#### `bot status --json`", 1)[1]
    failure = data["personas"]["poet-007"]["last_failure"]
    for key in [*data, *data["daemon"], *poet, *failure]:
        assert f"`{key}`" in documented, f"README does not document `{key}`"
    for state in ("ok", "failing", "backoff", "disabled", "not_scheduled", "not_running", "off"):
        assert f"| `{state}` |" in section


def test_totals_only_with_n_0(fleet: Config) -> None:
    data = json.loads(status("--json", "-n", "0").stdout)
    poet = data["personas"]["poet-000"]
    assert poet["post_count"] == 2 and "posts" not in poet and "rejections" not in poet


def test_filters_by_name_and_glob(fleet: Config) -> None:
    result = status("-p", "poet-01*", "-p", "morning")
    assert result.exit_code == 0, result.stdout
    assert list(rows(result.stdout)) == [f"poet-01{i}" for i in range(10)] + ["morning"]
    assert result.stdout.splitlines()[-1].startswith("11 personas: 11 not running")
    data = json.loads(status("--json", "-p", "poet-00[0-2]", "-p", "poet-001").stdout)
    assert list(data["personas"]) == ["poet-000", "poet-001", "poet-002"]
    off = status("--state", "off")
    assert list(rows(off.stdout)) == ["retired"] and "1 persona: 1 off" in off.stdout
    assert status("--state", "sleepy").exit_code == 2  # a usage error, as Click gives it


@pytest.mark.parametrize(
    "pattern, message",
    [
        (
            "poet-9*",
            "no persona matches 'poet-9*' (300 personas are configured; `bot status` lists them)",
        ),
        ("poet-0007", "no persona named 'poet-0007' (did you mean poet-007?)"),
    ],
)
def test_a_filter_that_matches_nothing_is_one_line(
    fleet: Config, pattern: str, message: str
) -> None:
    result = status("-p", pattern)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {fleet.label}: {message}\n"


def test_one_persona_gets_the_detail_view(fleet: Config) -> None:
    result = status("-p", "poet-009")
    assert result.exit_code == 0, result.stdout
    out = result.stdout
    assert "poet-009 (enabled, outbox):" in out and "  state: not running" in out
    assert "poet-009 at 2026-12-01T11:00Z" in out  # the posts themselves
    assert "unknown: 2026-12-01T12:00Z (may have been posted; never re-sent)" in out
    assert "  mentions not answered: too_old=1" in out
    data = json.loads(status("-p", "poet-009", "--json").stdout)
    assert data["personas"]["poet-009"]["reply_skips"] == {"too_old": 1}
    assert re.search(r"next run: not running; if `bot run` started now: \S+Z, the next slot at "
                     r"\S+:00:00.000Z", out)  # fmt: skip
    many = status("-p", "poet-00[0-1]", "--long")
    assert "poet-000 (enabled, outbox):" in many.stdout and "poet-001 (enabled" in many.stdout


# --- the daemon: running or not ------------------------------------------------------------


def persona_block(name: str, extra: str = "") -> str:
    return f"  {name}: {{{extra}}}\n"


@pytest.fixture
def small_fleet(write_config: Callable[[str], Path], tmp_path: Path) -> Callable[..., Config]:
    shutil.copytree(TINY, tmp_path / "models" / "shared")

    def make(names: list[str]) -> Config:
        return load_config(write_config(
            "defaults:\n  model: models/shared\n  candidates: 16\n  max_rounds: 4\n"
            "  filters: {min_chars: 5, max_chars: 300, default_blocklist: false}\n"
            "  schedule: {interval_minutes: 1440, first_run_seconds: 0}\n"
            "personas:\n" + "".join(persona_block(n) for n in names)
        ))  # fmt: skip

    return make


def test_a_real_daemon_started_and_stopped(
    small_fleet: Callable[..., Config], tmp_path: Path
) -> None:
    """`bot run -p ada` as a process: while it runs, ada's next run is the scheduled one and
    bob (not run by it) says so; after SIGTERM, nothing is shown as scheduled."""
    small_fleet(["ada", "bob"])
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([str(BOT), "run", "-p", "ada"], stdout=log_file,
                                stderr=subprocess.STDOUT)  # fmt: skip
        try:
            assert wait_for(lambda: "event=next_run persona=ada at=2026" in log_path.read_text()
                            and "event=posted" in log_path.read_text()), log_path.read_text()  # fmt: skip
            running = status()
            data = json.loads(status("--json").stdout)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    planned = re.findall(r"event=next_run persona=ada at=(\S+)", log_path.read_text())[-1]
    assert running.exit_code == 0, running.stdout
    assert re.match(r"daemon: running \(since \S+, heartbeat \d+ s ago\)$",
                    running.stdout.splitlines()[0])  # fmt: skip
    table = rows_of(running.stdout)
    assert re.match(rf"ada\s+ok\s+\S+ \S+\s+{planned[:10]} {planned[11:16]}\s+1\s+0$", table["ada"])
    assert re.match(r"bob\s+not scheduled\s+-\s+\(next slot ", table["bob"])
    assert data["daemon"]["running"] is True and data["daemon"]["state"] == "running"
    assert data["personas"]["ada"]["next_run"] == planned
    assert data["personas"]["bob"]["next_run"] is None
    assert data["personas"]["bob"]["state"] == "not_scheduled"

    stopped = status()
    assert stopped.stdout.startswith("daemon: not running (stopped at ")
    assert "nothing is scheduled" in stopped.stdout.splitlines()[0]
    table = rows_of(stopped.stdout)
    assert re.match(r"ada\s+not running\s+\S+ \S+\s+\(next slot ", table["ada"])
    assert planned[11:16] not in table["ada"].split("(next slot")[0]
    detail = status("-p", "ada")
    assert "  next run: not running; if `bot run` started now: " in detail.stdout
    assert "scheduled by the running daemon" not in detail.stdout
    after = json.loads(status("--json").stdout)
    assert after["daemon"]["state"] == "stopped" and after["personas"]["ada"]["next_run"] is None
    ada, bob = after["personas"]["ada"], after["personas"]["bob"]
    # ada's slot is posted: a restart's first run would post nothing, so the next slot is next
    assert ada["next_run_if_started"] == ada["next_slot_if_started"] is not None
    assert bob["next_run_if_started"] < bob["next_slot_if_started"]  # bob's first run posts
    assert status("--check").exit_code == 1


def rows_of(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[2:-1]}


def test_a_stale_heartbeat_is_not_running(small_fleet: Callable[..., Config]) -> None:
    """A daemon killed with -9 writes no stop: after --max-age-seconds it is not running."""
    config = small_fleet(["ada"])
    old = datetime.now(UTC) - timedelta(seconds=600)
    with SQLiteStore(config.store, now=lambda: old) as store:
        store.beat("daemon:started")
        store.beat("daemon")
        store.set_cursor("next_run:ada", "2026-12-02T10:00:00.000Z")
    result = status("-p", "ada")
    assert result.stdout.startswith("daemon: not running (last heartbeat ")
    assert "next run: not running" in result.stdout and "2026-12-02T10:00" not in result.stdout
    assert "daemon: running" in status("-p", "ada", "--max-age-seconds", "900").stdout


def test_run_once_is_not_a_running_daemon(small_fleet: Callable[..., Config]) -> None:
    small_fleet(["ada"])
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    data = json.loads(status("--json").stdout)
    assert data["daemon"]["state"] == "never" and data["daemon"]["last_once_utc"] is not None
    assert data["personas"]["ada"]["post_count"] == 1
    assert data["personas"]["ada"]["state"] == "not_running"


def test_a_manual_post_does_not_hide_that_the_slot_is_posted(
    small_fleet: Callable[..., Config],
) -> None:
    """#26.16: `bot run` posted this slot, then `bot post` posted once more: a `bot run`
    started now would skip its first run (the slot is done), so status names the next
    slot, as the daemon does; the manual post's own key is no slot."""
    small_fleet(["ada"])
    assert CliRunner().invoke(cli, ["run", "--once"]).exit_code == 0
    posted = CliRunner().invoke(cli, ["post"])
    assert posted.exit_code == 0, posted.output
    ada = json.loads(status("--json").stdout)["personas"]["ada"]
    assert ada["post_count"] == 2
    assert ada["next_run_if_started"] == ada["next_slot_if_started"] is not None
    detail = status("-p", "ada").stdout
    assert f"if `bot run` started now: {ada['next_slot_if_started']}\n" in detail, detail


class RefusingPublisher(StandInPublisher):
    """A network that answers every post with `error` (what Mastodon.py errors become)."""

    def __init__(self, error: PublishError) -> None:
        self.error = error

    def publish(self, post: Post) -> Receipt:
        raise self.error


@pytest.fixture
def running(small_fleet: Callable[..., Config]) -> Iterator[Daemon]:
    """ada posts, bob's token is refused (401), cyd's instance is down (transient)."""
    config = small_fleet(["ada", "bob", "cyd"])
    refused = PublishError("token refused", "check it", status_code=401)
    down = PublishError("instance unreachable", "", transient=True)
    with SQLiteStore(config.store) as store:
        daemon = Daemon(config, list(config.personas.values()), store, publish_attempts=1,
                        retry_base_delay_seconds=600,  # no retry job runs during a test
                        publishers={"bob": RefusingPublisher(refused),
                                    "cyd": RefusingPublisher(down)})  # fmt: skip
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            yield daemon
        finally:
            daemon.request_stop("test")
            thread.join(15)


def test_failing_and_disabled_personas_show_their_state(running: Daemon) -> None:
    def states() -> dict[str, str]:
        data = json.loads(status("--json", "-n", "0").stdout)
        return {name: info["state"] for name, info in data["personas"].items()}

    assert wait_for(lambda: states() == {"ada": "ok", "bob": "disabled", "cyd": "failing"}), (
        states()
    )
    table = rows_of(status().stdout)
    assert re.match(r"bob\s+disabled\s+-\s+-\s+0\s+\d+\s+\S+ \S+ publish: token refused",
                    table["bob"])  # fmt: skip
    assert re.match(r"cyd\s+failing\s+-\s+\d{4}-", table["cyd"])  # still scheduled
    detail = status("-p", "bob").stdout
    assert "  state: disabled (token refused (401: token refused); until restart)" in detail
    assert "next run:" not in detail  # nothing is scheduled for it
    assert status().stdout.splitlines()[-1] == "3 personas: 1 ok, 1 failing, 1 disabled"
    needs_a_look = status("-s", "failing", "-s", "disabled", "-s", "backoff")
    assert list(rows_of(needs_a_look.stdout)) == ["bob", "cyd"]
    assert needs_a_look.stdout.splitlines()[-1] == "2 personas: 1 failing, 1 disabled"
    data = json.loads(status("--json", "-n", "0", "--state", "ok").stdout)
    assert list(data["personas"]) == ["ada"]


def test_a_persona_failing_twice_shows_its_backoff(running: Daemon) -> None:
    def cyd() -> dict[str, str]:
        info: dict[str, str] = json.loads(status("--json", "-n", "0", "-p", "cyd").stdout)[
            "personas"
        ]["cyd"]
        return info

    assert wait_for(lambda: cyd()["state"] == "failing"), cyd()
    assert running.wake("cyd", trigger="test").outcome == "failed"  # the second in a row
    assert cyd()["state"] == "backoff"
    assert cyd()["state_detail"] == "2 failed wakes in a row; skipping the next 2"
    assert rows_of(status("-s", "backoff").stdout).keys() == {"cyd"}
