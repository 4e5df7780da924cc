"""`bot run`'s memory: resident set after its first post, and its peak, on the shipped config.

    python bench/daemon_memory.py [--runs 3] [--config config.yaml] [--json]

Starts the real daemon (`bot run`, the console script next to this Python) with a fresh
temporary REVENANT_HOME each run, waits for the first post in the outbox (the shipped
config's first run, 5 s after start), then reads VmRSS (resident now) and VmHWM (peak
resident) from /proc/PID/status and stops it with SIGTERM. Reports the median VmRSS and
the largest VmHWM over the runs, in MiB (as `ps`, systemd's MemoryMax=512M and
`docker run --memory 512m` count). Linux only (/proc).

These are the figures the README's "Deploying" section quotes (BENCHMARKS.md, "Daemon
memory"); tests/test_readme.py checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOT = Path(sys.executable).with_name("bot")
ROOT = Path(__file__).resolve().parents[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def one_run(config: Path, timeout: float) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB of one `bot run` right after its first post."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "REVENANT_HOME": home, "REVENANT_CONFIG": str(config)}
        outbox = Path(home) / "outbox"
        proc = subprocess.Popen(
            [str(BOT), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + timeout
            while not any(p.stat().st_size for p in outbox.glob("*.jsonl")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`bot run` posted nothing (exit {proc.returncode})")
                time.sleep(0.1)
            time.sleep(0.5)  # the wake finishes its bookkeeping after the outbox line
            rss, hwm = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
    return rss / 1024, hwm / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = [one_run(args.config.resolve(), args.timeout) for _ in range(args.runs)]
    result = {
        "runs": args.runs,
        "rss_mib_median": round(statistics.median(r for r, _ in runs)),
        "peak_mib_max": round(max(h for _, h in runs)),
        "rss_mib": [round(r, 1) for r, _ in runs],
        "peak_mib": [round(h, 1) for _, h in runs],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"bot run after its first post: {result['rss_mib_median']} MiB resident (median of "
          f"{args.runs}: {result['rss_mib']}), peak {result['peak_mib_max']} MiB "
          f"(max: {result['peak_mib']}); {result['cpus']} CPUs, Python {result['python']}")  # fmt: skip


if __name__ == "__main__":
    main()
