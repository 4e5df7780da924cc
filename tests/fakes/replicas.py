"""Replicas for real: N `bot run` processes on one PostgreSQL database, many personas on
1-minute slots, against the loopback Mastodon server; one replica dies by SIGKILL mid-run.

    audit = replica_round(server, db, tmp_path)       # about 2 minutes of wall time
    assert audit.duplicates == audit.orphans == 0 and not audit.missing

Each persona posts as its own account on the server (p00, p01, ...; token in P00_TOKEN,
...), so its statuses are told apart by account. All personas share the committed tiny
model (lax filters: wakes are cheap). The first replica is the victim: it runs with
REVENANT_CRASH_AT=`kill_point` (after_compose: the text is written ahead, nothing sent)
and REVENANT_CRASH_SKIP=`kill_after`, so it dies by SIGKILL in its (kill_after + 1)-th
slot, during the first whole slot, holding that slot. The others must take that slot
over once its lease has run out (and send the written-ahead text, once), and post every
later slot. The first few personas answer mentions too: the mentions are posted once
the victim is dead (so it never dies holding one), the survivors poll them at about the
same moment, and each mention must be answered once.

Used by tests/test_replicas.py (the slow test) and bench/replicas.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.post import normalise_text
from bot.store import PostgresStore

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer, MockAccount
    from tests.fakes.postgres import PostgresDatabase

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "tests" / "data" / "tiny_persona"
STARTUP_SECONDS = 15.0  # a replica's start (imports, model, store) before its first slot
SLOTS = 2  # whole 1-minute slots every persona must post
WAKE_SPACING_SECONDS = 1.0  # persona i wakes i seconds into each slot
TAIL_SECONDS = 32.0  # after the last slot starts: its wakes, a take-over, some slack


@dataclass
class ReplicaAudit:
    personas: list[str]
    expected: list[str]  # slot keys every persona must have posted
    statuses: int  # the personas' statuses on the server that are not replies
    rows: int  # post rows (kind post) in the store
    duplicates: int  # statuses whose text the same account already posted
    orphans: int  # statuses (posts or replies) that no post row records
    missing: list[tuple[str, str]]  # (persona, slot) expected, not posted
    not_posted: dict[str, int]  # slot status -> count, for slots that did not end posted
    taken_over: list[tuple[str, str, float]]  # (persona, slot, s from first claim to post)
    replies: dict[str, int]  # mention status id -> replies to it on the server
    exit_codes: list[int | None]  # the victim's first (-9 when it was killed)
    wall_seconds: float
    logs: list[Path] = field(default_factory=list)

    def tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
                         for p in self.logs)  # fmt: skip


def _minute_after(moment: datetime) -> datetime:
    start = moment.replace(second=0, microsecond=0)
    return start if start == moment else start + timedelta(minutes=1)


def _config(server: MastodonServer, db: PostgresDatabase, model: Path, names: list[str],
            lease: float, replies_for: int) -> str:  # fmt: skip
    lines = [
        f"lease_seconds: {lease}",
        f"wake_spacing_seconds: {WAKE_SPACING_SECONDS}",
        f"store: {db.url}",
        "personas:",
    ]
    for i, name in enumerate(names):
        lines += [
            f"  {name}:",
            f"    model: {model}",
            "    candidates: 16",
            "    max_rounds: 6",
            "    filters: {min_chars: 3, default_blocklist: false, novelty_words: 50}",
            "    schedule: {interval_minutes: 1, first_run_seconds: null, misfire_grace_seconds: 30}",
            "    publisher: mastodon",
            "    mastodon:",
            f"      base_url: {server.base_url}",
            f"      access_token_env: {name.upper()}_TOKEN",
            "      request_timeout_seconds: 5",
            "      settle_seconds: 1",
        ]
        if i < replies_for:
            lines.append("    replies: {enabled: true, interval_minutes: 1}")
    return "\n".join(lines) + "\n"


def replica_round(
    server: MastodonServer,
    db: PostgresDatabase,
    root: Path,
    *,
    replicas: int = 3,
    personas: int = 20,
    lease: float = 5.0,
    kill_point: str = "after_compose",
    kill_after: int = 2,
    replies_for: int = 3,
) -> ReplicaAudit:
    """Run the round and audit it (see the module docstring); `server` must be fresh."""
    started = time.monotonic()
    names = [f"p{i:02d}" for i in range(personas)]
    accounts = {name: server.create_account(name) for name in names}
    model = root / "models" / "tiny"
    if not model.exists():
        shutil.copytree(TINY, model)
    home = root / "replicas"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(_config(server, db, model, names, lease, replies_for), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REVENANT_", "MASTODON_"))}  # fmt: skip
    env.update(db.env(), REVENANT_HOME=str(home), REVENANT_CONFIG=str(config))
    env.update({f"{n.upper()}_TOKEN": a.token or "" for n, a in accounts.items()})

    # Start 15-35 s before a minute: the victim dies in that first slot, before the
    # first replies poll (a minute after start).
    lead = (_minute_after(datetime.now(UTC)) - datetime.now(UTC)).total_seconds()
    if not STARTUP_SECONDS <= lead <= STARTUP_SECONDS + 20:
        time.sleep((lead - STARTUP_SECONDS - 20) % 60)
    spawned = datetime.now(UTC)
    first = _minute_after(spawned + timedelta(seconds=STARTUP_SECONDS))
    expected = [(first + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%MZ") for i in range(SLOTS)]
    end = first + timedelta(minutes=SLOTS - 1, seconds=TAIL_SECONDS)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [home / f"replica-{i}.log" for i in range(replicas)]
    for i, log in enumerate(logs):
        extra = {"REVENANT_CRASH_AT": kill_point,
                 "REVENANT_CRASH_SKIP": str(kill_after)} if i == 0 else {}  # fmt: skip
        with log.open("wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=home,
                                          env={**env, **extra}, stdout=out,
                                          stderr=subprocess.STDOUT))  # fmt: skip
    mentions: list[str] | None = None  # posted once the victim is dead
    try:
        while datetime.now(UTC) < end:
            if any(p.poll() is not None for p in procs[1:]):
                break  # a survivor died: audit now, the test says why
            now = datetime.now(UTC)
            victim_gone = procs[0].poll() is not None
            if mentions is None and (victim_gone or now > first + timedelta(seconds=60)):
                mentions = [
                    str(server.post_as(who, f"@{name} what of the sea", visibility="public")["id"])
                    for name in names[:replies_for]
                    for who in (server.alice, server.bob)
                ]
                if now > spawned + timedelta(seconds=55):  # the next poll is a minute on
                    end = max(end, now + timedelta(seconds=80))
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    server.drain(timeout=5)
    audit = _audit(server, db, names, accounts, expected, mentions or [])
    audit.exit_codes = [p.returncode for p in procs]
    audit.wall_seconds = time.monotonic() - started
    audit.logs = logs
    return audit


def _audit(server: MastodonServer, db: PostgresDatabase, names: list[str],
           accounts: dict[str, MockAccount], expected: list[str],
           mention_ids: list[str]) -> ReplicaAudit:  # fmt: skip
    statuses = duplicates = orphans = rows = 0
    missing: list[tuple[str, str]] = []
    not_posted: dict[str, int] = {}
    taken_over: list[tuple[str, str, float]] = []
    replies = dict.fromkeys(mention_ids, 0)
    with PostgresStore(db.location) as store:
        for name in names:
            on_server = server.statuses(accounts[name])
            recorded = store.recent_posts(name, limit=1000)
            ids = {row.remote_id for row in recorded}
            orphans += sum(1 for s in on_server if str(s["id"]) not in ids)
            posts = [s for s in on_server if s.get("in_reply_to_id") is None]
            for s in on_server:
                parent = str(s.get("in_reply_to_id"))
                if parent in replies:
                    replies[parent] += 1
            texts = [normalise_text(str(s["content"]), is_html=True) for s in posts]
            statuses += len(posts)
            duplicates += len(texts) - len(set(texts))
            by_slot = {row.slot_key: row for row in recorded if row.kind == "post"}
            rows += len(by_slot)
            missing += [(name, key) for key in expected if key not in by_slot]
            for status, n in store.slot_counts(name).items():
                if status != "posted":
                    not_posted[status] = not_posted.get(status, 0) + n
            for slot in store.slots_with_status(name, "posted", limit=1000):
                post = by_slot.get(slot.slot_key)
                if slot.attempts > 1 and post is not None:
                    delay = (datetime.fromisoformat(post.created_at_utc)
                             - datetime.fromisoformat(slot.claimed_at_utc))  # fmt: skip
                    taken_over.append((name, slot.slot_key, delay.total_seconds()))
    return ReplicaAudit(names, expected, statuses, rows, duplicates, orphans, missing,
                        not_posted, taken_over, replies, [], 0.0)  # fmt: skip
