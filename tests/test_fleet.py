"""Many personas in one process: models take turns in memory (an LRU shared by every
persona, one copy per model folder) and personas on one schedule wake apart, not at once."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.config import Config, Schedule, load_config
from bot.daemon.scheduler import Daemon, next_run_times, slot_key, wake_offsets
from bot.engine.modelcache import MODELS, ModelCache
from bot.posting.persona import Persona
from bot.store import SQLiteStore, Store
from tests.fakes.clock import FakeClock

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "data" / "tiny_persona"
T0 = datetime(2026, 11, 26, 14, 10, 7, tzinfo=UTC)


def copies(tmp_path: Path, n: int) -> list[Path]:
    folders = [tmp_path / "models" / f"p{i}" for i in range(n)]
    for folder in folders:
        shutil.copytree(TINY, folder)
    return folders


# --- the model cache ----------------------------------------------------------------------


def test_cache_keeps_at_most_capacity_models_and_reloads_a_dropped_one(tmp_path: Path) -> None:
    cache = ModelCache(capacity=2)
    a, b, c = (cache.handle(p) for p in copies(tmp_path, 3))
    first = a.get().sampler
    b.get()
    assert cache.loaded() == 2 and a.in_memory
    c.get()  # a is the least recently used: dropped
    assert cache.loaded() == 2 and not a.in_memory and b.in_memory and c.in_memory
    again = a.get().sampler  # loaded again on its next use, b dropped now
    assert again is not first and again.card.name == first.card.name
    assert not b.in_memory and cache.loaded() == 2


def test_a_model_in_use_is_kept_by_its_wake_when_dropped(tmp_path: Path) -> None:
    cache = ModelCache(capacity=1)
    a, b = (cache.handle(p) for p in copies(tmp_path, 2))
    in_use = a.get()
    b.get()
    assert not a.in_memory
    [sample] = in_use.sampler.generate("The ", n=1, max_chars=20, rng=np.random.default_rng(1))
    assert sample.text  # still whole


def test_personas_of_one_model_folder_share_one_loaded_model(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    shutil.copytree(TINY, tmp_path / "models" / "shared")
    config = load_config(write_config(
        "personas:\n"
        + "".join(f"  p{i}:\n    model: models/shared\n" for i in range(3))
    ))  # fmt: skip
    runners = [Persona(settings) for settings in config.personas.values()]
    samplers = {id(r.model.get().sampler) for r in runners}
    assert len(samplers) == 1
    assert runners[0].model is MODELS.handle(tmp_path / "models" / "shared")


def test_models_in_memory_is_checked(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    from bot.core.errors import ConfigError

    shutil.copytree(TINY, tmp_path / "models" / "ada")
    with pytest.raises(ConfigError, match="models_in_memory"):
        load_config(write_config("models_in_memory: 0\npersonas:\n  ada: {model: models/ada}\n"))


# --- wakes spread over the slot ----------------------------------------------------------


def test_personas_on_one_schedule_wake_spacing_apart() -> None:
    hourly = Schedule(interval_minutes=60)
    offsets = wake_offsets(dict.fromkeys(("cy", "ada", "bo"), hourly), 2.0, T0)
    assert offsets == {"ada": 0.0, "bo": 2.0, "cy": 4.0}
    assert wake_offsets({"ada": hourly}, 2.0, T0) == {"ada": 0.0}


def test_a_thousand_hourly_personas_spread_over_half_the_hour_each_in_its_slot() -> None:
    hourly = Schedule(interval_minutes=60, jitter_seconds=60)
    names = [f"p{i:04d}" for i in range(1000)]
    offsets = wake_offsets(dict.fromkeys(names, hourly), 2.0, T0)
    values = sorted(offsets.values())
    assert values[0] == 0.0 and values[-1] < 1800 - 60  # half the hour, less the jitter
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(values)}
    assert gaps == {round((1800 - 60) / 1000, 6)}
    for name in ("p0000", "p0999"):
        fire = next_run_times(hourly, T0, 2, offset=offsets[name])[1]
        assert slot_key(hourly, fire) == "2026-11-26T15:00Z"  # its own slot, not the next


def test_schedules_are_spread_separately_and_cron_keeps_its_slot() -> None:
    hourly, cron = (
        Schedule(interval_minutes=60),
        Schedule(interval_minutes=None, cron="*/10 * * * *"),
    )
    offsets = wake_offsets({"a": hourly, "b": hourly, "c": cron, "d": cron}, 2.0, T0)
    assert offsets == {"a": 0.0, "b": 2.0, "c": 0.0, "d": 2.0}
    fire = next_run_times(cron, T0, 2, offset=2.0)[1]
    assert fire == datetime(2026, 11, 26, 14, 20, 2, tzinfo=UTC)
    assert slot_key(cron, fire) == "2026-11-26T14:20Z"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "state.db", now=clock.now) as s:
        yield s


def test_the_daemon_spreads_first_runs_and_slots(
    tmp_path: Path, write_config: Callable[[str], Path], store: Store, clock: FakeClock
) -> None:
    for folder in copies(tmp_path, 3):
        folder.rename(folder.with_name(folder.name.replace("p", "q")))
    body = "".join(
        f"  q{i}:\n    model: models/q{i}\n"
        "    schedule: {interval_minutes: 60, first_run_seconds: 5}\n"
        for i in range(3)
    )
    config: Config = load_config(write_config("wake_spacing_seconds: 3\npersonas:\n" + body))
    daemon = Daemon(config, list(config.personas.values()), store, clock=clock)
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    posts = [jobs[f"post:q{i}"].next_run_time for i in range(3)]
    firsts = [jobs[f"first:q{i}"].trigger.run_date for i in range(3)]
    top = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    assert posts == [top, top + timedelta(seconds=3), top + timedelta(seconds=6)]
    assert firsts == [T0 + timedelta(seconds=5 + 3 * i) for i in range(3)]


@pytest.mark.slow
def test_fleet_bench_smoke_posts_every_planned_slot(tmp_path: Path) -> None:
    """bench/fleet.py --smoke: a real `bot run` of 3 personas on the shipped model, for
    half a minute: every slot planned in the window is posted, memory is measured."""
    out = tmp_path / "fleet.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), "--smoke", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["personas"] == 3 and report["exit_code"] == 0
    assert report["expected"] >= 3 and report["missed"] == 0, report["missed_slots"]
    assert report["posted"] == report["expected"]
    assert 50 < report["rss_peak_mb"] < 1024 and report["cpu_s_per_wake"] > 0
    assert set(report["late_s"]) == {"p50", "p90", "p99", "max"}
