"""What one slot costs the store, on SQLite and on PostgreSQL, in one run.

    python bench/store_speed.py --slots 500 --repeats 3

One slot is the daemon's whole store path: claim_slot, write_ahead, mark_sending,
record_post (with 3 rejected candidates). The reference is the bare INSERT of one post row
on the same backend, so the ratio says what the claim protocol adds. PostgreSQL is a
throwaway local cluster (tests/fakes/postgres.py: loopback TCP, scram password, fsync
off, so commits cost what the protocol costs, not what the disk costs); SQLite is a WAL
file in a temporary folder (synchronous=NORMAL, as the daemon runs it). Medians of
--repeats runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.post import Receipt
from bot.store import SQLStore
from tests.fakes.postgres import running_postgres_server
from tests.fakes.stores import Backend

REJECTIONS = [("short", "too_short"), ("@x hi", "has_mention"), ("again", "duplicate")]


def one_slot(store: SQLStore, run: int, i: int) -> None:
    key = f"r{run}-{i}"
    claim = store.claim_slot("ada", key)
    assert claim is not None
    store.write_ahead(claim, f"text {key}", "The ")
    store.mark_sending(claim)
    store.record_post("ada", key, f"text {key}", Receipt("outbox", key), rejections=REJECTIONS)


def bare_insert(backend: Backend, store: SQLStore, run: int, i: int) -> None:
    with store.transaction():
        backend.execute(
            store,
            "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id,"
            " created_at_utc) VALUES ('bob', ?, 'post', 'x', 'outbox', ?, 'now')",
            (f"r{run}-{i}", str(i)),
        )


def timed(fn: Callable[[int, int], None], run: int, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(run, i)
    return (time.perf_counter() - started) / n


def measure(backend: Backend, slots: int, repeats: int) -> dict[str, float]:
    with backend.open() as store:
        protocol, bare = [], []
        for run in range(repeats + 1):  # run 0 warms up
            p = timed(lambda r, i: one_slot(store, r, i), run, slots)
            b = timed(lambda r, i: bare_insert(backend, store, r, i), run, slots)
            if run:
                protocol.append(p)
                bare.append(b)
    slot_ms = statistics.median(protocol) * 1000
    bare_ms = statistics.median(bare) * 1000
    return {"slot_ms": slot_ms, "bare_insert_ms": bare_ms, "ratio": slot_ms / bare_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "revenant.db"
        results["sqlite"] = measure(Backend("sqlite", path, str(path)), args.slots, args.repeats)
    with running_postgres_server() as server:
        db = server.create_database()
        backend = Backend("postgres", db.location, db.url, env=db.env())
        results["postgres"] = measure(backend, args.slots, args.repeats)
        results["postgres"]["server_start_s"] = server.startup_seconds
    print(f"{'backend':<10} {'slot (ms)':>10} {'bare insert (ms)':>17} {'ratio':>6}")
    for name, r in results.items():
        print(f"{name:<10} {r['slot_ms']:>10.2f} {r['bare_insert_ms']:>17.3f} {r['ratio']:>6.1f}")
    pg, lite = results["postgres"]["slot_ms"], results["sqlite"]["slot_ms"]
    print(f"postgres / sqlite per slot: {pg / lite:.1f}x; "
          f"1,000 hourly slots: {pg:.1f} s of store time per hour on PostgreSQL")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
