"""Exactly once under fault injection, counted (issue 16, point 6).

    python bench/exactly_once.py --rounds 20          # about 10 minutes on 2 busy cores

Real `bot run --once` / `bot run` processes, the real store and Mastodon publisher, against
the loopback mastodon-mock server (tests/fakes/mastodon_server.py):

1. kill -9: for each step boundary (after_claim, after_compose, during_send, after_accept,
   after_record) --rounds rounds of "run killed with SIGKILL there, restart once the lease
   has expired". Odd rounds use a server that ignores `Idempotency-Key`; during_send
   alternates a request the server drops with one it stalls and applies after the client
   died.
2. races: --rounds rounds of each mix: 2 x `--once`; 2 x `--once` + 2 daemons on a
   key-ignoring server; 1 x `--once` + 3 daemons on a key-ignoring server that stalls every
   post past the client timeout (1.5 s stall, 1 s timeout, 2.5 s settle bound).

Counts per scenario: runs (processes started), injected faults, duplicates (a slot with two
statuses), orphans (a status no row records), mismatched (stored text != server text),
lost slots (not posted), unknown. The tests run the same rounds, 3 times per crash point.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.faults import POINTS
from tests.fakes.fleet import Fleet, kill_round, race_round
from tests.fakes.mastodon_server import running_mastodon_server

RACES = {
    "race 2x --once": {"once": 2, "daemons": 0, "ignore_keys": False, "stall": False},
    "race 2x --once + 2 daemons, keys ignored": {
        "once": 2, "daemons": 2, "ignore_keys": True, "stall": False,
    },
    "race 1x --once + 3 daemons, keys ignored, stalling": {
        "once": 1, "daemons": 3, "ignore_keys": True, "stall": True,
    },
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, rounds={args.rounds}")
    rows: list[tuple[str, Counter[str]]] = []
    failed = False
    start = time.monotonic()
    with running_mastodon_server() as server, tempfile.TemporaryDirectory() as tmp:
        # uvicorn sets its loggers up on start; a request whose client was killed is no news.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        fleet = Fleet(server, Path(tmp))
        for point in POINTS:
            c: Counter[str] = Counter()
            for i in range(args.rounds):
                audit, code = kill_round(fleet, f"{point}-{i}", point, i)
                c["runs"] += 2
                c["faults"] += 1 + (point == "during_send") + (i % 2)  # kill, stall/drop, keys
                c["killed"] += code == -9
                for key in ("duplicates", "orphans", "mismatched", "unknown", "lost"):
                    c[key] += getattr(audit, key)
                c["problems"] += len(audit.problems)
            rows.append((f"kill -9 {point}", c))
            print(f"kill -9 {point}: {dict(c)}", flush=True)
        for label, mix in RACES.items():
            c = Counter()
            for i in range(args.rounds):
                audit = race_round(fleet, f"race-{len(rows)}-{i}", **mix)  # type: ignore[arg-type]
                c["runs"] += int(mix["once"]) + int(mix["daemons"])
                c["faults"] += int(bool(mix["ignore_keys"])) + int(bool(mix["stall"]))
                for key in ("duplicates", "orphans", "mismatched", "unknown", "lost"):
                    c[key] += getattr(audit, key)
                c["problems"] += len(audit.problems)
            rows.append((label, c))
            print(f"{label}: {dict(c)}", flush=True)
    print()
    print(
        "| scenario | runs | injected faults | duplicates | orphans | mismatched | lost | unknown |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, c in rows:
        print(f"| {label} | {c['runs']} | {c['faults']} | {c['duplicates']} | {c['orphans']} "
              f"| {c['mismatched']} | {c['lost']} | {c['unknown']} |")  # fmt: skip
        failed |= any(c[k] for k in ("duplicates", "orphans", "mismatched", "lost", "problems"))
    print(f"\ntotal {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
