"""Real `bot run` processes against the loopback Mastodon server, and an audit of the result.

    fleet = Fleet(server, tmp_path)
    home = fleet.round("r1", ignore_keys=True)      # fresh store + server state for a round
    fleet.run(home, "--once", crash_at="after_accept")   # REVENANT_CRASH_AT: kill -9 there
    fleet.run(home, "--yes", command="post")         # `bot post` instead of `bot run`
    audit = fleet.audit(home)                        # statuses vs. post rows vs. slots
    assert audit.duplicates == 0 and audit.orphans == 0

Shared by tests/test_exactly_once.py (a few rounds) and bench/exactly_once.py (many). The
persona is the committed tiny model with lax filters, on the mastodon publisher, with a
short lease (so a restart after kill -9 can take over within a second or two), a short
request timeout and a settle bound that covers the server's stall.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.post import normalise_text

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "tests" / "data" / "tiny_persona"
LEASE_SECONDS = 1.0
TIMEOUT_SECONDS = 1.0
SETTLE_SECONDS = 2.5  # covers STALL_SECONDS plus the client's time to send
STALL_SECONDS = 1.5  # how long the stalling server holds a request before applying it


@dataclass
class Audit:
    """One round's outcome: the server's statuses against the store's rows and slots."""

    statuses: int  # statuses of the bot on the server
    rows: int  # post rows in the store
    slots: dict[str, str]  # slot key -> status
    duplicates: int  # statuses whose text another status already has (a slot posted twice)
    orphans: int  # statuses no post row records (published, not recorded)
    mismatched: int  # rows whose text differs from the server's status with that id
    unknown: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Slots that ended without a post (skipped for a reason other than no candidate,
        failed, still claimed)."""
        return sum(1 for status in self.slots.values() if status not in ("posted", "unknown"))

    @property
    def each_slot_once(self) -> bool:
        """Every posted slot has exactly one status on the server and one row in the store,
        and no slot was lost. (Rounds run on the wall clock: one that straddles the hour
        rightly posts two slots, each once.)"""
        posted = sum(1 for status in self.slots.values() if status == "posted")
        return self.statuses == self.rows == posted >= 1 and self.lost == 0

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.orphans or self.mismatched or self.problems)


class Fleet:
    def __init__(self, server: MastodonServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.model = root / "models" / "tiny"
        if not self.model.exists():
            shutil.copytree(TINY, self.model)

    def round(
        self,
        name: str,
        *,
        ignore_keys: bool = False,
        settle_seconds: float = SETTLE_SECONDS,
        interval_minutes: int = 60,
    ) -> Path:
        """A fresh home (config, store) and a reset server; returns the home folder."""
        self.server.reset()
        if ignore_keys:
            self.server.ignore_idempotency_keys()
        home = self.root / name
        home.mkdir(parents=True)
        (home / "config.yaml").write_text(
            f"""\
lease_seconds: {LEASE_SECONDS}
store: revenant.db
personas:
  tiny:
    model: {self.model}
    candidates: 16
    max_rounds: 6
    filters: {{min_chars: 3, default_blocklist: false, novelty_words: 50}}
    schedule: {{interval_minutes: {interval_minutes}, first_run_seconds: 0}}
    publisher: mastodon
    mastodon:
      base_url: {self.server.base_url}
      request_timeout_seconds: {TIMEOUT_SECONDS}
      settle_seconds: {settle_seconds}
""",
            encoding="utf-8",
        )
        return home

    def _env(self, home: Path, crash_at: str | None, delay: float | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVENANT_")}
        env.update(
            REVENANT_HOME=str(home),
            REVENANT_CONFIG=str(home / "config.yaml"),
            MASTODON_ACCESS_TOKEN=self.server.bot.token or "",
        )
        if crash_at is not None:
            env["REVENANT_CRASH_AT"] = crash_at
        if delay is not None:
            env["REVENANT_CRASH_DELAY"] = str(delay)
        return env

    def start(
        self,
        home: Path,
        *args: str,
        crash_at: str | None = None,
        delay: float | None = None,
        command: str = "run",
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "-q", command, *args],
            cwd=home,
            env=self._env(home, crash_at, delay),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        home: Path,
        *args: str,
        crash_at: str | None = None,
        delay: float | None = None,
        command: str = "run",
    ) -> subprocess.CompletedProcess[str]:
        """`bot run ARGS` (or `bot COMMAND ARGS`, e.g. post) to its end."""
        proc = self.start(home, *args, crash_at=crash_at, delay=delay, command=command)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def stop(self, proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
        """SIGTERM a `bot run` daemon and wait for it."""
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=timeout)
        return proc.returncode

    def wait_for_posts(self, home: Path, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._rows(home)) >= count:
                return
            time.sleep(0.1)

    def _rows(self, home: Path) -> list[tuple[str, str, str]]:
        path = home / "revenant.db"
        if not path.exists():
            return []
        db = sqlite3.connect(path, timeout=10)
        try:
            return db.execute("SELECT slot_key, text, remote_id FROM posts").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def audit(self, home: Path) -> Audit:
        self.server.drain(timeout=STALL_SECONDS + 5)
        statuses = self.server.statuses()
        rows = self._rows(home)
        db = sqlite3.connect(home / "revenant.db", timeout=10)
        try:
            slots = dict(db.execute("SELECT slot_key, status FROM slots").fetchall())
        finally:
            db.close()
        texts = [normalise_text(str(s["content"]), is_html=True) for s in statuses]
        by_id = {str(s["id"]): text for s, text in zip(statuses, texts, strict=True)}
        recorded = {remote_id for _slot, _text, remote_id in rows}
        problems = []
        if len({slot for slot, _t, _r in rows}) != len(rows):
            problems.append("two post rows for one slot")
        return Audit(
            statuses=len(statuses),
            rows=len(rows),
            slots=slots,
            duplicates=len(texts) - len(set(texts)),
            orphans=sum(1 for status_id in by_id if status_id not in recorded),
            mismatched=sum(
                1 for _slot, text, remote_id in rows if by_id.get(remote_id) != normalise_text(text)
            ),
            unknown=sum(1 for status in slots.values() if status == "unknown"),
            problems=problems,
        )


def kill_round(fleet: Fleet, name: str, point: str, variant: int) -> tuple[Audit, int]:
    """`bot run --once` killed with SIGKILL at `point`, then restarted once the lease has
    expired. Odd variants use a server that ignores the idempotency key; for during_send,
    odd variants stall the request and apply it after the client died, even ones hold it
    and drop it. Returns the audit and the crashed run's exit code (-9 when killed)."""
    server = fleet.server
    home = fleet.round(name, ignore_keys=bool(variant % 2))
    if point == "during_send":
        if variant % 2:
            server.inject_stall(STALL_SECONDS)
        else:
            server.inject_delay(STALL_SECONDS)
        crashed = fleet.run(home, "--once", crash_at=point, delay=0.3)
    else:
        crashed = fleet.run(home, "--once", crash_at=point)
    time.sleep(LEASE_SECONDS + 0.2)  # the dead holder's lease runs out
    restarted = fleet.run(home, "--once")
    audit = fleet.audit(home)
    if restarted.returncode != 0:
        audit.problems.append(f"restart exited {restarted.returncode}: {restarted.stderr[-300:]}")
    return audit, crashed.returncode


def race_round(
    fleet: Fleet, name: str, *, once: int, daemons: int, ignore_keys: bool, stall: bool
) -> Audit:
    """`once` x `bot run --once` and `daemons` x `bot run` started together on one store."""
    home = fleet.round(name, ignore_keys=ignore_keys)
    if stall:
        fleet.server.inject_stall(STALL_SECONDS, count=None)
    procs = [fleet.start(home, "--once") for _ in range(once)]
    runners = [fleet.start(home) for _ in range(daemons)]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    fleet.wait_for_posts(home, 1)
    time.sleep(0.5 if not stall else SETTLE_SECONDS)  # let the daemons' wakes finish
    for runner in runners:
        fleet.stop(runner)
    audit = fleet.audit(home)
    said_posted = sum(out.count(" posted ") for out in outputs)
    if said_posted > 1:
        audit.problems.append(f"{said_posted} processes said they posted the slot")
    return audit
