"""Replicas on one PostgreSQL database, one killed mid-run, counted (issue 18, point 3).

    python bench/replicas.py --rounds 3          # about 2.5 minutes a round on 2 busy cores

Each round is the slow test's (tests/test_replicas.py, tests/fakes/replicas.py): 3 real
`bot run` processes on a fresh database of a throwaway PostgreSQL cluster, 20 personas
on 1-minute slots (each its own account on the loopback Mastodon server), a 5 s lease;
the first replica dies by SIGKILL in its 3rd slot, in the first whole slot, with the
text written ahead and nothing sent (--point picks another step: after_accept, ...). Reported per round: slots expected and posted,
duplicates, orphans, lost slots, the slots taken over and how long after their first
claim they were posted, mentions and the replies each got, wall time.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.mastodon_server import running_mastodon_server
from tests.fakes.postgres import running_postgres_server
from tests.fakes.replicas import replica_round


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--personas", type=int, default=20)
    parser.add_argument("--point", default="after_compose", help="where the victim dies")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, rounds={args.rounds}, "
          f"replicas={args.replicas}, personas={args.personas}, victim dies {args.point}, "
          "lease 5 s, 1-minute slots")  # fmt: skip
    failed = False
    with running_mastodon_server() as server, running_postgres_server() as pg:
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the killed client
        for n in range(args.rounds):
            server.reset()
            db = pg.create_database()
            with tempfile.TemporaryDirectory() as tmp:
                audit = replica_round(server, db, Path(tmp), replicas=args.replicas,
                                      personas=args.personas, kill_point=args.point)  # fmt: skip
                delays = sorted(seconds for _p, _s, seconds in audit.taken_over)
                expected = len(audit.expected) * len(audit.personas)
                ok = (audit.duplicates == audit.orphans == 0 and not audit.missing
                      and not audit.not_posted and audit.exit_codes[0] == -9
                      and bool(delays) and delays[-1] < 10.0
                      and set(audit.replies.values()) == {1})  # fmt: skip
                failed |= not ok
                print(f"round {n + 1}: slots expected {expected}, post statuses "
                      f"{audit.statuses} (rows {audit.rows}), duplicates {audit.duplicates}, "
                      f"orphans {audit.orphans}, lost {len(audit.missing)}, "
                      f"not posted {audit.not_posted or 0}, taken over {len(delays)} "
                      f"(posted {', '.join(f'{d:.1f}' for d in delays)} s after first claim), "
                      f"mentions {len(audit.replies)} -> replies "
                      f"{sorted(audit.replies.values())}, exit codes {audit.exit_codes}, "
                      f"{audit.wall_seconds:.0f} s {'ok' if ok else 'FAILED'}")  # fmt: skip
                if not ok:
                    print(audit.tail())
            pg.drop_database(db.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
