"""A persona's blocks that stand alone: `schedule:`, `filters:` and `replies:`, each
parsed from its Node into its settings dataclass with one-line errors naming the key; and
the environment, where secrets and some settings come from. Used by loader.py."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import cast

from bot.config.node import Node
from bot.config.settings import Filters, OnLink, Replies, Schedule, Secret
from bot.core.errors import ConfigError
from bot.core.log import register_secret

ON_LINK = ("reject", "strip")  # what the filters do with @mentions and URLs


# Upper bounds for numbers: generous for any real use, small enough that a typo (1e20,
# .inf, an extra zero or three) is refused in one line instead of hanging or eating memory.
MAX_INTERVAL_MINUTES = 525_600.0  # a year; 1 is the least (the fleet work needs 1-minute slots)


DAY_SECONDS = 86_400


MAX_POST_CHARS = 100_000  # the sampler sizes buffers by it; the largest instances allow less


def parse_schedule(s: Node, timezone: str) -> Schedule:
    cron = s.text("cron", None)
    has_interval = s.data.get("interval_minutes") is not None
    if cron is not None and has_interval:
        s.fail("cron", "and interval_minutes are both set", "keep one of them")
    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron)
        except ValueError:
            s.fail(
                "cron",
                f"is not a 5-field crontab line (got {cron!r})",
                "write minute hour day month weekday, e.g. '0 9 * * *'",
            )
    interval = (
        None
        if cron is not None
        else s.number("interval_minutes", 60.0, lo=1.0, hi=MAX_INTERVAL_MINUTES)
    )
    first = s.data.get("first_run_seconds", 5)
    return Schedule(
        interval_minutes=interval,
        cron=cron,
        jitter_seconds=s.whole("jitter_seconds", 0, lo=0, hi=DAY_SECONDS),
        timezone=s.zone("timezone", timezone),
        first_run_seconds=None
        if first is None
        else s.whole("first_run_seconds", 5, lo=0, hi=DAY_SECONDS),
        coalesce=s.flag("coalesce", True),
        misfire_grace_seconds=s.whole("misfire_grace_seconds", 300, lo=1, hi=DAY_SECONDS),
    )


def parse_filters(f: Node) -> Filters:
    min_chars = f.whole("min_chars", 20, lo=1, hi=MAX_POST_CHARS)
    max_chars = f.whole("max_chars", 500, lo=1, hi=MAX_POST_CHARS)
    if max_chars < min_chars:
        f.fail("max_chars", f"must be at least min_chars ({min_chars}) (got {max_chars})")
    return Filters(
        min_chars=min_chars,
        max_chars=max_chars,
        blocklist=f.texts("blocklist"),
        default_blocklist=f.flag("default_blocklist", True),
        novelty_words=f.whole("novelty_words", 8, lo=8, hi=1000),
        duplicate_jaccard=f.number("duplicate_jaccard", 0.6, lo=0.0, hi=1.0),
        history=f.whole("history", 200, lo=0, hi=100_000),
        mentions=cast(OnLink, f.choice("mentions", "reject", ON_LINK)),
        urls=cast(OnLink, f.choice("urls", "reject", ON_LINK)),
    )


def parse_replies(r: Node) -> Replies:
    return Replies(
        enabled=r.flag("enabled", False),
        interval_minutes=r.number("interval_minutes", 5.0, lo=1.0, hi=1440.0),
        max_age_minutes=r.number("max_age_minutes", 60.0, lo=1.0, hi=10_080.0),
        per_account_per_hour=r.whole("per_account_per_hour", 3, lo=0, hi=1000),
        max_thread_depth=r.whole("max_thread_depth", 4, lo=0, hi=1000),
        bot_allowlist=r.texts("bot_allowlist"),
    )


def secret_from_env(
    name: str, problem: str, hint: str, env: Mapping[str, str] | None = None
) -> Secret:
    """The secret in environment variable `name`, registered for redaction; a ConfigError
    (`problem`, `hint`) when it is unset or blank. Publisher kinds read tokens through this."""
    value = env_value(name, env)
    if not value:
        raise ConfigError(problem, hint)
    register_secret(value)
    return Secret(value)


def env_value(name: str, env: Mapping[str, str] | None = None) -> str:
    """Environment variable `name`, stripped ("" when unset): settings that a kind lets
    the environment give (e.g. an instance URL)."""
    env = os.environ if env is None else env
    return env.get(name, "").strip()
