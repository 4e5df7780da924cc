"""Slots: which post a moment belongs to, and when each persona's wakes fire.

    slot_key(schedule, now)          # "2026-11-26T14:00Z": the same for every wake in it
    post_trigger(schedule, offset=2) # the APScheduler trigger of a persona's post job

An interval schedule is a fixed UTC grid anchored at the epoch (`GridTrigger`: jitter never
drifts a run into the next cell); a cron schedule fires in the persona's zone, safely
across DST (`WallClockCronTrigger`). Personas on one schedule wake apart within the first
half of each slot (`wake_offsets`). Used by bot/daemon/scheduler.py, `bot check` and `bot status`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from bot import config as cfg
from bot.store import SlotRow, isoformat_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # interval slots are counted from here, in UTC


# --- slot keys ------------------------------------------------------------------------------


def interval_seconds(schedule: cfg.Schedule) -> float | None:
    """The interval in seconds (None for cron), rounded to the microsecond."""
    if schedule.interval_minutes is None:
        return None
    return round(schedule.interval_minutes * 60.0, 6)


def grid_start(moment: datetime, seconds: float) -> datetime:
    """Start of the `seconds`-long cell of the UTC grid (anchored at the epoch) holding `moment`."""
    step = max(1, round(seconds * 1_000_000))
    elapsed = (moment - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=elapsed // step * step)


def cron_slot(schedule: cfg.Schedule, moment: datetime) -> datetime | None:
    """The latest cron fire time at or before `moment` (without jitter), or None if none in
    5 years. Windows grow from an hour, so a frequent cron takes few steps.

    A wall-clock time that happens twice (the hour repeated when DST ends) is one slot: the
    key is its first occurrence, so `30 2 * * *` posts once on that night, as cron does.
    """
    trigger = WallClockCronTrigger(schedule, jitter=False)
    zone = trigger.zone
    for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367),
                   timedelta(days=5 * 366)):  # fmt: skip
        fire = trigger.get_next_fire_time(None, moment - window)
        if fire is None or fire > moment:
            continue
        while True:
            after = trigger.get_next_fire_time(fire, fire)
            if after is None or after > moment:
                local = fire.astimezone(zone).replace(fold=0)
                return local.astimezone(UTC)
            fire = after
    return None


def format_slot(moment: datetime, step_seconds: float | None = None) -> str:
    """`2026-11-26T14:00Z`: UTC, to the minute; seconds (or ms) only for sub-minute grids."""
    moment = moment.astimezone(UTC)
    if step_seconds is not None and step_seconds % 60:
        if step_seconds % 1:
            return isoformat_utc(moment)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def slot_key(schedule: cfg.Schedule, moment: datetime) -> str:
    """The slot a wake at `moment` posts: the same for every wake inside one slot."""
    seconds = interval_seconds(schedule)
    if seconds is not None:
        return format_slot(grid_start(moment, seconds), seconds)
    fire = cron_slot(schedule, moment)
    if fire is None:  # a cron that has not fired for years: the minute is the slot
        fire = moment.replace(second=0, microsecond=0)
    return format_slot(fire)


class GridTrigger(BaseTrigger):
    """Every `seconds` on the UTC grid anchored at the epoch, plus 0..`jitter` seconds.

    APScheduler 3's IntervalTrigger counts each run from the previous *jittered* run, so the
    jitter adds up and runs drift across slot boundaries (two runs in one slot, a slot with
    none). This trigger snaps back to the grid every time; jitter is capped at half the
    interval so each run stays inside its own slot.
    """

    def __init__(self, seconds: float, jitter: float = 0.0, offset: float = 0.0) -> None:
        self.seconds = seconds
        self.offset = min(max(0.0, offset), seconds / 2)  # a fixed place in the slot
        self.jitter = min(max(0.0, jitter), seconds / 2 - self.offset)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        step = timedelta(seconds=self.seconds)
        if previous_fire_time is not None:
            base = grid_start(previous_fire_time, self.seconds) + step
        else:
            start = grid_start(now, self.seconds)
            base = start if start == now else start + step
        base += timedelta(seconds=self.offset)
        if self.jitter:
            base += timedelta(seconds=random.uniform(0, self.jitter))
        return base

    def __str__(self) -> str:
        return f"grid[{self.seconds:g}s, offset {self.offset:g}s, jitter {self.jitter:g}s]"


class WallClockCronTrigger(BaseTrigger):
    """The config's cron trigger, made safe across DST changes; fire times are in UTC.

    APScheduler 3.11's CronTrigger compares a folded fire time (the repeated hour when DST
    ends) by wall clock, so `*/30 * * * *` in Europe/Berlin steps back to 02:30 CEST after
    02:00 CET, and the scheduler's catch-up loop never ends (agronholm/apscheduler#1021).
    This wrapper searches from an instant strictly after the previous fire time, in UTC,
    and never returns an earlier one. Jitter (0..jitter_seconds) is added here.
    """

    def __init__(self, schedule: cfg.Schedule, *, jitter: bool = True, offset: float = 0.0) -> None:
        self.inner = schedule.trigger(jitter=False)
        self.zone = ZoneInfo(schedule.timezone)
        self.jitter = schedule.jitter_seconds if jitter else 0
        self.offset = timedelta(seconds=max(0.0, offset))

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = now.astimezone(UTC) - self.offset  # fire times are cron times + offset
        floor = previous_fire_time.astimezone(UTC) if previous_fire_time is not None else None
        if floor is not None:
            floor -= self.offset
        if floor is not None:
            start = max(start, floor + timedelta(microseconds=1))
        for _ in range(200):  # each step moves on a minute; DST needs at most 60
            fire = self.inner.get_next_fire_time(None, start.astimezone(self.zone))
            if fire is None:
                return None
            fire = fire.astimezone(UTC)
            if fire >= start and (floor is None or fire > floor):
                fire += self.offset
                if self.jitter:
                    fire += timedelta(seconds=random.uniform(0, self.jitter))
                return fire
            start += timedelta(minutes=1)
        raise RuntimeError(f"cron trigger {self.inner} does not move past {start}")

    def __str__(self) -> str:
        return f"{self.inner} (DST-safe)"


def post_trigger(schedule: cfg.Schedule, *, jitter: bool = True, offset: float = 0.0) -> Any:
    """The post job's trigger: `GridTrigger` for intervals, `WallClockCronTrigger` for cron;
    each fire time is the slot's start + `offset` (+ jitter)."""
    seconds = interval_seconds(schedule)
    if seconds is not None:
        return GridTrigger(seconds, schedule.jitter_seconds if jitter else 0.0, offset)
    return WallClockCronTrigger(schedule, jitter=jitter, offset=offset)


def period_seconds(schedule: cfg.Schedule, now: datetime) -> float:
    """The schedule's interval, or for cron the gap between its next two fire times."""
    seconds = interval_seconds(schedule)
    if seconds is not None:
        return seconds
    trigger = WallClockCronTrigger(schedule, jitter=False)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first) if first is not None else None
    if first is None or second is None:
        return 0.0
    return (second - first).total_seconds()


def wake_offsets(
    schedules: Mapping[str, cfg.Schedule], spacing: float, now: datetime
) -> dict[str, float]:
    """Seconds after its slot's start each persona wakes: personas on the same schedule
    wake `spacing` seconds apart (in name order) instead of all at once. The spread stays
    in the first half of the slot (less the jitter), so every wake keeps its own slot; a
    thousand hourly personas 2 s apart would need 2,000 s, so they get 1.8 s each."""
    groups: dict[tuple[object, ...], list[str]] = defaultdict(list)
    for name, s in schedules.items():
        groups[(s.interval_minutes, s.cron, s.timezone, s.jitter_seconds)].append(name)
    offsets: dict[str, float] = {}
    for names in groups.values():
        schedule = schedules[names[0]]
        window = max(0.0, period_seconds(schedule, now) / 2 - schedule.jitter_seconds)
        step = min(spacing, window / len(names))
        for i, name in enumerate(sorted(names)):
            offsets[name] = i * step
    return offsets


def next_run_times(
    schedule: cfg.Schedule,
    now: datetime,
    count: int = 3,
    *,
    first_run: bool = True,
    offset: float = 0.0,
) -> list[datetime]:
    """When a daemon started at `now` would post (the first run included unless
    `first_run` is False: its slot already has its post), without jitter; `offset` is the
    persona's place in its slot (`wake_offsets`)."""
    zone = ZoneInfo(schedule.timezone)
    times: list[datetime] = []
    if schedule.first_run_seconds is not None and first_run:
        times.append(now + timedelta(seconds=schedule.first_run_seconds + offset))
    trigger = post_trigger(schedule, jitter=False, offset=offset)
    previous: datetime | None = None
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous = fire
    return sorted(t.astimezone(zone) for t in times)


FINISHED_SLOT = ("posted", "skipped", "unknown")  # no claim reopens these (bot/store.py)


def finished_first_slot(
    schedule: cfg.Schedule,
    now: datetime,
    lookup: Callable[[str], SlotRow | None],
    offset: float = 0.0,
) -> SlotRow | None:
    """The finished slot that a first run `first_run_seconds` (+ `offset`) after `now` falls
    in, or None when the first run would post. A second `bot run` inside one slot (the same
    hour, on the shipped schedule) posts nothing then: one post per slot. `lookup(slot_key)`
    reads it."""
    if schedule.first_run_seconds is None:
        return None
    key = slot_key(schedule, now + timedelta(seconds=schedule.first_run_seconds + offset))
    row = lookup(key)
    return row if row is not None and row.status in FINISHED_SLOT else None
