"""A fleet of personas in one `bot run`: memory, missed slots, wake lateness, CPU (#18).

    python bench/fleet.py --personas 1000 --minutes 10 --compress 2   # ~15 min with setup
    python bench/fleet.py --smoke                                    # 3 personas, ~30 s
    python bench/fleet.py --personas 200 --minutes 4 --spacing 0.1   # wakes 0.1 s apart

N personas, each with its own model folder holding the shipped persona's model (card.json
written per persona; the large files are hard links, which changes nothing in memory: every
folder is loaded into its own arrays, and a persona's model is never shared with another
folder). Each persona has the shipped persona's settings (64 candidates, known words, the
critic, T 0.8, 100..280 chars) on the outbox, with the hourly schedule compressed
`--compress` times (2: every 30 minutes; its 300 s jitter compressed alike) and the
shipped first run 5 s after start. One real `bot run` process with JSON logs; its
/proc entry is sampled every second.

Reported: startup (process start to `daemon_started`, which includes loading every model
once to check it), resident memory (peak and median after start), threads, CPU share of
the machine, slots expected (every planned fire time at least `--margin` seconds before
the end), posted and missed, and how late each post went out after its planned time
(p50/p90/p99/max), plus the CPU one wake costs and what N hourly wakes take of this machine
(the headroom). `--json FILE` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_config
from bot.daemon.slots import interval_seconds, slot_key
from bot.store import SQLiteStore

SHIPPED = ROOT / "models" / "nietzsche"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Report:
    personas: int
    minutes: float
    compress: float
    cores: int
    startup_s: float = 0.0
    rss_peak_mb: float = 0.0
    rss_median_mb: float = 0.0
    threads_max: int = 0
    cpu_share: float = 0.0  # of all cores, while running (after start)
    cpu_s_per_wake: float = 0.0
    hourly_cpu_share: float = 0.0  # N hourly wakes, uncompressed, of all cores
    expected: int = 0
    posted: int = 0
    missed: int = 0
    missed_slots: list[str] = field(default_factory=list)
    late_s: dict[str, float] = field(default_factory=dict)  # p50 p90 p99 max
    exit_code: int | None = None


def build(workdir: Path, n: int, compress: float, model: Path, spacing: float | None = None) -> Path:
    """models/pNNNN/ for each persona and a config.yaml with the shipped settings; with
    `spacing`, no jitter and `wake_spacing_seconds: spacing` (wakes bunched that close)."""
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    template = dict(shipped["personas"]["nietzsche"])
    schedule = dict(template.get("schedule") or {})
    schedule["interval_minutes"] = 60 / compress
    schedule["jitter_seconds"] = int(schedule.get("jitter_seconds", 0) / compress)
    schedule["first_run_seconds"] = schedule.get("first_run_seconds", 5)
    if spacing is not None:
        schedule["jitter_seconds"] = 0
    template["schedule"] = schedule
    card = json.loads((model / "card.json").read_text(encoding="utf-8"))
    personas: dict[str, Any] = {}
    for i in range(n):
        name = f"p{i:04d}"
        folder = workdir / "models" / name
        folder.mkdir(parents=True)
        for item in model.iterdir():
            if item.name == "card.json" or not item.is_file():
                continue
            os.link(item, folder / item.name)
        (folder / "card.json").write_text(json.dumps({**card, "name": name}), encoding="utf-8")
        personas[name] = {**template, "model": f"models/{name}"}
    config: dict[str, Any] = {"timezone": "UTC", "logging": {"level": "INFO", "json": True},
                              "personas": personas}  # fmt: skip
    if spacing is not None:
        config["wake_spacing_seconds"] = spacing
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def sample(pid: int) -> tuple[int, int, int, float]:
    """(rss kB, peak rss kB, threads, cpu seconds) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / TICK  # utime, stime
    return (int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0]),
            int(fields["Threads"]), cpu)  # fmt: skip


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 2)}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def run(
    n: int, minutes: float, compress: float, margin: float, model: Path, keep: bool = False,
    spacing: float | None = None,
) -> Report:
    report = Report(personas=n, minutes=minutes, compress=compress, cores=os.cpu_count() or 1)
    workdir = Path(tempfile.mkdtemp(prefix="revenant-fleet-"))
    try:
        config_path = build(workdir, n, compress, model, spacing)
        env = {**os.environ, "REVENANT_CONFIG": str(config_path),
               "REVENANT_HOME": str(workdir / "home")}  # fmt: skip
        log_path = workdir / "run.log"
        with log_path.open("w") as log_file:
            started = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=workdir,
                                    stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
            samples: list[tuple[float, int, int, int, float]] = []
            ready_at: float | None = None
            deadline: float | None = None
            while proc.poll() is None:
                now = time.monotonic()
                try:
                    samples.append((now, *sample(proc.pid)))
                except (FileNotFoundError, ProcessLookupError):
                    break
                if ready_at is None and "daemon_started" in log_path.read_text():
                    ready_at = now
                    deadline = now + minutes * 60
                if deadline is not None and now >= deadline:
                    break
                time.sleep(1.0)
            ended = datetime.now().astimezone()
            proc.send_signal(signal.SIGTERM)
            try:
                report.exit_code = proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                report.exit_code = proc.wait()
        if ready_at is None:
            sys.stderr.write(log_path.read_text()[-3000:])
            raise SystemExit("the daemon never started: see the log above")
        report.startup_s = round(ready_at - started, 1)
        running = [s for s in samples if s[0] >= ready_at]
        report.rss_peak_mb = round(max(s[2] for s in samples) / 1024, 1)
        report.rss_median_mb = round(statistics.median(s[1] for s in running) / 1024, 1)
        report.threads_max = max(s[3] for s in samples)
        if len(running) >= 2:
            cpu = running[-1][4] - running[0][4]
            report.cpu_share = round(cpu / (running[-1][0] - running[0][0]) / report.cores, 3)
        analyse(report, workdir, config_path, log_path, ended, margin, running)
        return report
    finally:
        if keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def analyse(report: Report, workdir: Path, config_path: Path, log_path: Path,
            ended: datetime, margin: float, running: list[Any]) -> None:  # fmt: skip
    """Planned fire times from the `scheduled` events, outcomes from the store."""
    home = {**os.environ, "REVENANT_HOME": str(workdir / "home")}  # the daemon's store
    config = load_config(config_path, env=home)
    planned: dict[str, tuple[datetime | None, datetime | None]] = {}
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "scheduled":
            first, nxt = entry.get("first_run"), entry.get("next_run")
            planned[entry["persona"]] = (parse_time(first) if first else None,
                                         parse_time(nxt) if nxt else None)  # fmt: skip
    cutoff = ended - timedelta(seconds=margin)
    late: list[float] = []
    with SQLiteStore(config.store) as store:
        for name, settings in config.personas.items():
            first, nxt = planned.get(name, (None, None))
            step = timedelta(seconds=interval_seconds(settings.schedule) or 3600)
            fires: dict[str, datetime] = {}
            if first is not None and first <= cutoff:
                fires.setdefault(slot_key(settings.schedule, first), first)
            fire = nxt
            while fire is not None and fire <= cutoff:
                fires.setdefault(slot_key(settings.schedule, fire), fire)
                fire += step
            for key, when in fires.items():
                report.expected += 1
                row = store.slot(name, key)
                if row is None or row.status != "posted" or row.sent_at_utc is None:
                    report.missed += 1
                    status = row.status if row is not None else "never claimed"
                    report.missed_slots.append(f"{name} {key} ({status})")
                    continue
                report.posted += 1
                late.append((parse_time(row.sent_at_utc) - when).total_seconds())
    report.late_s = percentiles(late)
    if running and report.posted:
        cpu = running[-1][4] - running[0][4]
        report.cpu_s_per_wake = round(cpu / report.posted, 2)
        report.hourly_cpu_share = round(
            report.cpu_s_per_wake * report.personas / 3600 / report.cores, 3
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--compress",
        type=float,
        default=2.0,
        help="hourly schedule compressed this many times (at most 5)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=60.0,
        help="slots planned this close to the end are not counted",
    )
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument(
        "--spacing",
        type=float,
        help="wake_spacing_seconds, with no jitter: wakes bunched this close (default: "
        "the shipped jitter and the default spacing)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="3 personas, half a minute, schedule compressed 120x"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (and log)")
    args = parser.parse_args()
    if args.smoke:
        args.personas, args.minutes, args.compress, args.margin = 3, 0.5, 60.0, 5.0
    elif not 1 <= args.compress <= 5:
        parser.error("--compress must be 1..5 (the issue's bound)")
    report = run(args.personas, args.minutes, args.compress, args.margin, args.model, args.keep,
                 args.spacing)
    print(f"fleet: {platform.processor() or platform.machine()}, {report.cores} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    for key, value in asdict(report).items():
        if key == "missed_slots":
            value = value[:10]
        print(f"  {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
