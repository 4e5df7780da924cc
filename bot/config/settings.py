"""The settings `load_config` builds (bot/config/loader.py): frozen dataclasses, defaults inline.

    config.persona("ada").schedule.interval_minutes     # 60.0 unless config.yaml says

`Config` is the whole file; `PersonaSettings` one persona's block (its runner is
bot.posting.persona.Persona). Secrets never live here as text: a `Secret` masks itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from bot.config.location import StoreLocation
from bot.config.node import _suggest
from bot.core.errors import ConfigError
from bot.core.post import Visibility

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

DEFAULT_PUBLISHER = "outbox"
GLOB_CHARS = frozenset("*?[")  # a `-p` value with one of these is a glob (`poet-*`)
Ranking = Literal["best", "weighted"]
Vocabulary = Literal["known", "any"]
OnLink = Literal["reject", "strip"]


class Secret:
    """A value that must never be printed: repr and str are masked, `reveal()` is explicit."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Schedule:
    """When a persona posts: every `interval_minutes` or on a 5-field `cron`, plus jitter."""

    interval_minutes: float | None = 60.0  # None when `cron` is set
    cron: str | None = None
    jitter_seconds: int = 0  # each run moves by a random 0..jitter_seconds
    timezone: str = "UTC"
    first_run_seconds: int | None = 5  # post this long after start; None = wait for the schedule
    coalesce: bool = True  # after downtime, missed runs collapse into one
    misfire_grace_seconds: int = 300  # a run later than this is skipped

    def trigger(self, *, start: datetime | None = None, jitter: bool = True) -> BaseTrigger:
        """The APScheduler 3.x trigger; interval runs count from `start` (default: now)."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        zone = ZoneInfo(self.timezone)
        spread = (self.jitter_seconds or None) if jitter else None
        if self.cron is not None:
            trigger = CronTrigger.from_crontab(self.cron, timezone=zone)
            if spread:
                trigger.jitter = spread
            return trigger
        assert self.interval_minutes is not None
        return IntervalTrigger(
            minutes=self.interval_minutes, start_date=start, timezone=zone, jitter=spread
        )

    def describe(self) -> str:
        every = f"cron '{self.cron}'" if self.cron else f"every {self.interval_minutes:g} min"
        jitter = f" +0..{self.jitter_seconds} s jitter" if self.jitter_seconds else ""
        return f"{every}{jitter} ({self.timezone})"


@dataclass(frozen=True)
class Filters:
    """What a candidate must pass; each rejection is stored with a stable reason string."""

    min_chars: int = 20
    max_chars: int = 500
    blocklist: tuple[str, ...] = ()
    default_blocklist: bool = True  # better-profanity's word list on top of `blocklist`
    novelty_words: int = 8  # reject a run of this many words copied from the corpus
    duplicate_jaccard: float = 0.6  # word-set overlap with a past post that counts as a repeat
    history: int = 200  # past posts compared against
    mentions: OnLink = "reject"
    urls: OnLink = "reject"


@dataclass(frozen=True)
class Replies:
    enabled: bool = False
    interval_minutes: float = 5.0  # how often notifications are polled
    max_age_minutes: float = 60.0  # older mentions are left unanswered
    per_account_per_hour: int = 3
    max_thread_depth: int = 4  # stop answering deeper than this (bot loops)
    bot_allowlist: tuple[str, ...] = ()  # bot accounts that may be answered at all


@dataclass(frozen=True)
class PersonaSettings:
    """One persona's settings as config.yaml gives them (the runner is bot.posting.persona.Persona)."""

    name: str
    model: Path  # models/<name>/ with model.keras + card.json
    enabled: bool = True
    prompts: tuple[str, ...] = ()  # primes; {date} {weekday} {time} are filled in
    include_prompt: bool = False  # the post starts with the prompt
    temperature: float = 0.8  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    candidates: int = 16  # sampled per round, in one batch
    max_rounds: int = 3  # rounds of sampling before giving up on a slot
    ranking: Ranking = "weighted"
    vocabulary: Vocabulary = "known"  # only words of the corpus (words.npz); "any": off
    critic: bool = True  # rank by the persona's critic (critic.npz) where it has one
    schedule: Schedule = field(default_factory=Schedule)
    filters: Filters = field(default_factory=Filters)
    publisher: str = DEFAULT_PUBLISHER  # a registered kind (bot/config/registry.py)
    # each kind's settings block by kind name (e.g. mastodon); a kind reads its own with
    # `registry.get(name).settings_of(persona)`, which gives the defaults when absent
    publisher_settings: Mapping[str, Any] = field(default_factory=dict)
    visibility: Visibility = "unlisted"
    spoiler_text: str = ""
    language: str | None = None  # ISO 639-1, e.g. "de"
    sensitive: bool = False
    replies: Replies = field(default_factory=Replies)
    # a music persona (abc_lstm) whose tune cannot be rendered (tools missing or failing):
    # "skip" the slot, or post the "notation" alone
    media_fallback: str = "skip"


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class Config:
    path: Path  # the file this came from
    home: Path  # REVENANT_HOME
    store: StoreLocation  # a Path (SQLite) or a PostgresLocation (bot/config/location.py)
    outbox: Path
    timezone: str = "UTC"
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    personas: Mapping[str, PersonaSettings] = field(default_factory=dict)
    lease_seconds: float = 60.0  # a slot claim's lease, renewed every quarter of it
    models_in_memory: int = 32  # loaded models kept; the least recently used is dropped
    wake_spacing_seconds: float = 2.0  # personas on one schedule wake this far apart

    @property
    def label(self) -> str:
        return str(self.path)

    def persona(self, name: str) -> PersonaSettings:
        """The persona called `name`, or a ConfigError that suggests the nearest name."""
        if name in self.personas:
            return self.personas[name]
        raise ConfigError(
            f"{self.label}: no persona named {name!r}", _suggest(name, self.personas, "persona")
        )

    def select(self, names: Sequence[str] = ()) -> list[PersonaSettings]:
        """The personas `-p` selects: each name or glob (`poet-*`) in the order given, a
        glob's matches in config order, each persona once; every persona when none is
        given. An unknown name or a glob that matches nothing is a ConfigError."""
        if not names:
            return list(self.personas.values())
        chosen: dict[str, PersonaSettings] = {}
        for name in names:
            if not GLOB_CHARS & set(name):
                chosen.setdefault(name, self.persona(name))  # suggests the nearest name
                continue
            matched = fnmatch.filter(self.personas, name)
            if not matched:
                raise ConfigError(
                    f"{self.label}: no persona matches {name!r}",
                    f"{len(self.personas)} personas are configured; `bot status` lists them",
                )
            for found in matched:
                chosen.setdefault(found, self.personas[found])
        return list(chosen.values())
