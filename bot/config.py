"""config.yaml -> a validated, frozen `Config`; secrets come only from the environment.

    config = load_config()                        # $REVENANT_CONFIG or ./config.yaml
    ada = config.persona("ada")
    ada = with_overrides(ada, temperature=0.7)    # a CLI flag beats the file
    kind = registry.of(ada)                       # its publisher kind (bot/publishers/registry.py)

Precedence: CLI flag > environment > the persona's block > the file's `defaults:` block >
the defaults below. `defaults:` holds any persona key; it is validated on its own (errors
name `defaults.KEY`) and merged under each persona, nested blocks key by key (`merge_defaults`). Only this module
reads `os.environ` (through `load_config(env=...)`), and only `load_config` reads the
file; everything else gets the `Config` passed down. Every user error is one
`ConfigError` line naming the file, the key path, the bad value and the fix. Relative
paths in the file are relative to the file's folder; REVENANT_HOME to the working folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.errors import ConfigError
from bot.log import register_secret
from bot.publishers import registry
from bot.publishers.base import VISIBILITIES, Visibility
from bot.store.location import StoreLocation, parse_store_setting

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

# ---------------------------------------------------------------------------------------
# defaults, in one place
CONFIG_ENV = "REVENANT_CONFIG"
HOME_ENV = "REVENANT_HOME"
DEFAULT_CONFIG = Path("config.yaml")
DEFAULT_HOME = Path("var")  # state dir: SQLite store and outbox live here
STORE_FILE = "revenant.db"
OUTBOX_DIR = "outbox"
ENV_NAME_EXAMPLE = "MASTODON_ACCESS_TOKEN"  # in the hint for a bad *_env value
DEFAULT_PUBLISHER = "outbox"
RANKINGS = ("best", "weighted")
VOCABULARIES = ("known", "any")
MEDIA_FALLBACKS = ("skip", "notation")  # a music persona whose tune cannot be rendered
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ON_LINK = ("reject", "strip")  # what the filters do with @mentions and URLs
Ranking = Literal["best", "weighted"]
Vocabulary = Literal["known", "any"]
OnLink = Literal["reject", "strip"]
# Upper bounds for numbers: generous for any real use, small enough that a typo (1e20,
# .inf, an extra zero or three) is refused in one line instead of hanging or eating memory.
MAX_INTERVAL_MINUTES = 525_600.0  # a year; 1 is the least (the fleet work needs 1-minute slots)
DAY_SECONDS = 86_400
MAX_POST_CHARS = 100_000  # the sampler sizes buffers by it; the largest instances allow less
MAX_TOP_K = 1000  # more than any char vocabulary
# ---------------------------------------------------------------------------------------

PERSONA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # used in file names
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Mastodon access tokens are 43 url-safe base64 characters; anything long and random-looking
# in a token-ish key is treated as one.
TOKEN_LIKE = re.compile(r"^[A-Za-z0-9_\-]{20,}$")
SECRET_KEYS = ("access_token", "client_secret", "password", "token", "secret")
LITERAL_TOKEN_HINT = "put it in an environment variable and name it with access_token_env"


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
    """One persona's settings as config.yaml gives them (the runner is bot.persona.Persona)."""

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
    publisher: str = DEFAULT_PUBLISHER  # a registered kind (bot/publishers/registry.py)
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
    store: StoreLocation  # a Path (SQLite) or a PostgresLocation (bot/store/location.py)
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
        """The named personas in the given order, or every persona when none is named."""
        return [self.persona(n) for n in names] if names else list(self.personas.values())


# --- loading --------------------------------------------------------------------------


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    check_models: bool = True,
) -> Config:
    """Read and validate the config; `check_models=False` skips the model-dir check (train)."""
    env = os.environ if env is None else env
    path = Path(path if path is not None else env.get(CONFIG_ENV) or DEFAULT_CONFIG)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: config file not found",
            f"create it from the example in README.md, or point -c/--config or {CONFIG_ENV} at it",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{label}: cannot read the config file ({err})",
            "check the path and that it is UTF-8 text",
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except _DuplicateKeyError as err:
        raise ConfigError(f"{label}: {err}", "keep one of them") from None
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_error(label, err), "fix the YAML syntax there") from None
    home = Path(env.get(HOME_ENV) or DEFAULT_HOME)
    return parse_config(raw, path=path, home=home, check_models=check_models, env=env)


def parse_config(
    raw: Any,
    *,
    path: Path,
    home: Path,
    check_models: bool = True,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate already-parsed YAML (`raw`) into a Config; `env` fills `${VAR}` in `store:`."""
    label = str(path)
    base = path.parent
    _refuse_literal_tokens(label, raw, "")
    top_keys = ("personas", "defaults", "store", "outbox", "timezone", "logging",
                "lease_seconds", "models_in_memory", "wake_spacing_seconds")  # fmt: skip
    top = Node(label, "", raw, top_keys)
    timezone = top.zone("timezone", "UTC")
    log_node = top.node("logging", ("level", "json"))
    level = log_node.choice("level", "INFO", LOG_LEVELS, upper=True)
    logging_settings = LoggingSettings(level=level, json=log_node.flag("json", False))
    store = _parse_store(top, base, home, os.environ if env is None else env)
    outbox = _resolve(base, top.text("outbox", None)) or home / OUTBOX_DIR
    lease_seconds = top.number("lease_seconds", 60.0, lo=1.0, hi=3600.0)
    models_in_memory = top.whole("models_in_memory", 32, lo=1, hi=100_000)
    wake_spacing = top.number("wake_spacing_seconds", 2.0, lo=0.0, hi=3600.0)

    personas_raw = top.data.get("personas")
    if personas_raw is None or personas_raw == {}:
        raise ConfigError(f"{label}: personas is empty", "add at least one persona; see README.md")
    if not isinstance(personas_raw, dict):
        top.fail("personas", f"must be a mapping of name -> settings (got {_show(personas_raw)})")
    defaults = top.data.get("defaults")
    if defaults is not None:  # checked alone first: its errors name defaults.KEY
        _parse_persona(label, "defaults", defaults, base, timezone, False, path="defaults")
    personas: dict[str, PersonaSettings] = {}
    for name, settings in personas_raw.items():
        if not isinstance(name, str) or not PERSONA_NAME.match(name):
            raise ConfigError(
                f"{label}: personas.{name} is not a valid persona name",
                "use letters, digits, '-' and '_'; it names files",
            )
        merged = merge_defaults(defaults, settings, "defaults", _exclusive_keys())
        personas[name] = _parse_persona(label, name, merged, base, timezone, check_models)
    return Config(
        path=path,
        home=home,
        store=store,
        outbox=outbox,
        timezone=timezone,
        logging=logging_settings,
        personas=personas,
        lease_seconds=lease_seconds,
        models_in_memory=models_in_memory,
        wake_spacing_seconds=wake_spacing,
    )


PERSONA_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(PersonaSettings)
    if f.name not in ("name", "publisher_settings")
)


def persona_keys() -> tuple[str, ...]:
    """The keys a persona's block may hold: its own fields and each publisher kind's block."""
    blocks = tuple(k.name for k in registry.kinds().values() if k.parse is not None)
    return PERSONA_FIELDS + blocks


class Inherited(dict[str, Any]):
    """A persona's block merged over `defaults:` (a plain dict to the parser); `inherited`
    names the keys taken from the defaults block at `origin`, so that an error about one
    of them says where it was written."""

    def __init__(self, data: Mapping[str, Any], inherited: Iterable[str], origin: str) -> None:
        super().__init__(data)
        self.inherited = frozenset(inherited)
        self.origin = origin


def merge_defaults(
    defaults: Any,
    own: Any,
    origin: str,
    exclusive: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> Any:
    """`own` (a persona's block) over `defaults`: own keys win; a mapping in both is merged
    key by key; lists and other values are replaced whole. `exclusive` names, per nested
    block, groups of alternative keys (cron / interval_minutes): a persona that gives one
    drops the others it would inherit. Anything not a mapping is returned as given (the
    parser reports it)."""
    if not isinstance(defaults, dict) or not defaults:
        return own
    if own is None:
        own = {}
    if not isinstance(own, dict):
        return own
    groups = (exclusive or {}).get("", ())
    dropped = {k for g in groups if any(key in own for key in g) for k in g if k not in own}
    merged: dict[str, Any] = {}
    inherited: list[str] = []
    for key, value in defaults.items():
        if key in own or key in dropped:
            continue
        if isinstance(value, dict):  # a whole block from defaults: all of it inherited
            value = merge_defaults(value, {}, f"{origin}.{key}")
        merged[key] = value
        inherited.append(key)
    for key, value in own.items():
        default = defaults.get(key)
        if isinstance(default, dict) and (value is None or isinstance(value, dict)):
            inner = {"": (exclusive or {}).get(key, ())}
            merged[key] = merge_defaults(default, value, f"{origin}.{key}", inner)
        else:
            merged[key] = value
    return Inherited(merged, inherited, origin)


def _exclusive_keys() -> dict[str, Sequence[Sequence[str]]]:
    """Per persona block, the keys of which a persona gives one (see merge_defaults)."""
    groups: dict[str, Sequence[Sequence[str]]] = {"schedule": (("cron", "interval_minutes"),)}
    for kind in registry.kinds().values():
        if kind.exclusive_keys:
            groups[kind.name] = kind.exclusive_keys
    return groups


def _parse_persona(
    label: str,
    name: str,
    raw: Any,
    base: Path,
    timezone: str,
    check_models: bool,
    *,
    path: str | None = None,
) -> PersonaSettings:
    """One persona's block; with `path` ("defaults") a partial block, checked alone: no
    model folder, no publisher settings required."""
    p = Node(label, path or f"personas.{name}", raw, persona_keys())
    model_text = p.text("model", None)
    model = _resolve(base, model_text) or base / "models" / name
    enabled = p.flag("enabled", True)
    if check_models and enabled and not model.is_dir():
        where = p.at("model") if model_text is not None else f"{p.path}.model (default)"
        raise ConfigError(
            f"{label}: {where}: model folder {model} does not exist",
            f"run `bot train -p {name}` or fix the path",
        )
    publisher = p.choice("publisher", DEFAULT_PUBLISHER, registry.names())
    publisher_settings = {
        kind.name: kind.parse(
            p.node(kind.name, _field_names(kind.settings)), publisher == kind.name and not path
        )
        for kind in registry.kinds().values()
        if kind.parse is not None
    }
    return PersonaSettings(
        name=name,
        model=model,
        enabled=enabled,
        prompts=p.texts("prompts"),
        include_prompt=p.flag("include_prompt", False),
        temperature=p.number("temperature", 0.8, lo=0.0, hi=2.0),
        top_k=p.whole("top_k", 0, lo=0, hi=MAX_TOP_K),
        top_p=p.number("top_p", 1.0, lo=0.0, hi=1.0, lo_open=True),
        candidates=p.whole("candidates", 16, lo=1, hi=256),
        max_rounds=p.whole("max_rounds", 3, lo=1, hi=100),
        ranking=cast(Ranking, p.choice("ranking", "weighted", RANKINGS)),
        vocabulary=cast(Vocabulary, p.choice("vocabulary", "known", VOCABULARIES)),
        critic=p.flag("critic", True),
        schedule=_parse_schedule(
            p.node("schedule", tuple(f.name for f in dataclasses.fields(Schedule))), timezone
        ),
        filters=_parse_filters(
            p.node("filters", tuple(f.name for f in dataclasses.fields(Filters)))
        ),
        publisher=publisher,
        publisher_settings=publisher_settings,
        visibility=cast(Visibility, p.choice("visibility", "unlisted", VISIBILITIES)),
        spoiler_text=p.text("spoiler_text", None) or "",
        language=p.text("language", None),
        sensitive=p.flag("sensitive", False),
        replies=_parse_replies(
            p.node("replies", tuple(f.name for f in dataclasses.fields(Replies)))
        ),
        media_fallback=p.choice("media_fallback", "skip", MEDIA_FALLBACKS),
    )


def _parse_schedule(s: Node, timezone: str) -> Schedule:
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


def _parse_filters(f: Node) -> Filters:
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


def _parse_replies(r: Node) -> Replies:
    return Replies(
        enabled=r.flag("enabled", False),
        interval_minutes=r.number("interval_minutes", 5.0, lo=1.0, hi=1440.0),
        max_age_minutes=r.number("max_age_minutes", 60.0, lo=1.0, hi=10_080.0),
        per_account_per_hour=r.whole("per_account_per_hour", 3, lo=0, hi=1000),
        max_thread_depth=r.whole("max_thread_depth", 4, lo=0, hi=1000),
        bot_allowlist=r.texts("bot_allowlist"),
    )


# --- overrides and secrets ------------------------------------------------------------

OVERRIDABLE = ("temperature", "top_k", "top_p", "candidates", "publisher", "prompts", "enabled")


def with_overrides(persona: PersonaSettings, **changes: Any) -> PersonaSettings:
    """A copy with command-line values applied (None = not given), validated like the file."""
    given = {k: v for k, v in changes.items() if v is not None}
    for key in given:
        if key not in OVERRIDABLE:
            raise TypeError(f"{key} cannot be overridden")  # a bug, not a user error
    node = Node("command line", "", given, OVERRIDABLE, flags=True)
    checked: dict[str, Any] = {}
    if "temperature" in given:
        checked["temperature"] = node.number("temperature", 0.8, lo=0.0, hi=2.0)
    if "top_k" in given:
        checked["top_k"] = node.whole("top_k", 0, lo=0, hi=MAX_TOP_K)
    if "top_p" in given:
        checked["top_p"] = node.number("top_p", 1.0, lo=0.0, hi=1.0, lo_open=True)
    if "candidates" in given:
        checked["candidates"] = node.whole("candidates", 16, lo=1, hi=256)
    if "publisher" in given:
        checked["publisher"] = node.choice("publisher", DEFAULT_PUBLISHER, registry.names())
        kind = registry.get(checked["publisher"])
        if kind.ready is not None:
            kind.ready(dataclasses.replace(persona, publisher=kind.name))
    if "prompts" in given:
        checked["prompts"] = node.texts("prompts")
    if "enabled" in given:
        checked["enabled"] = node.flag("enabled", True)
    return dataclasses.replace(persona, **checked)


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


# --- validation helpers ---------------------------------------------------------------


class Node:
    """One mapping in the YAML, with its key path, and typed getters that fail in one line."""

    def __init__(
        self, label: str, path: str, raw: Any, keys: Iterable[str], *, flags: bool = False
    ) -> None:
        self.label, self.path, self.keys, self.flags = label, path, tuple(keys), flags
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{label}: {path or 'the top level'} must be a mapping of "
                f"key: value (got {_show(raw)})"
            )
        self.data: dict[str, Any] = raw
        for key in raw:
            if key not in self.keys:
                raise ConfigError(
                    f"{label}: unknown key {self.at(str(key))}",
                    _suggest(str(key), self.keys, "key"),
                )

    def _key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def at(self, key: str) -> str:
        """The key as an error names it; one inherited from `defaults:` says so."""
        if self.flags:
            return "--" + key.replace("_", "-")
        if isinstance(self.data, Inherited) and key in self.data.inherited:
            return f"{self._key_path(key)} (from {self.data.origin}.{key})"
        return self._key_path(key)

    def fail(self, key: str, problem: str, hint: str = "") -> None:
        raise ConfigError(f"{self.label}: {self.at(key)} {problem}", hint)

    def node(self, key: str, keys: Iterable[str]) -> Node:
        return Node(self.label, self._key_path(key), self.data.get(key), keys)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false (got {_show(value)})")
        return bool(value)

    def whole(self, key: str, default: int, *, lo: int | None = None, hi: int | None = None) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a whole number (got {_show(value)})")
        if isinstance(value, float):
            if not value.is_integer():
                self.fail(key, f"must be a whole number (got {_show(value)})")
            value = int(value)
        self._check_range(key, value, lo, hi, lo_open=False)
        return int(value)

    def number(
        self,
        key: str,
        default: float,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number (got {_show(value)})")
        if math.isnan(value):
            self.fail(key, f"must be a number (got {_show(value)})")
        self._check_range(key, value, lo, hi, lo_open=lo_open)
        return float(value)

    def _check_range(
        self, key: str, value: float, lo: float | None, hi: float | None, *, lo_open: bool
    ) -> None:
        low_bad = lo is not None and (value <= lo if lo_open else value < lo)
        high_bad = hi is not None and value > hi
        if not (low_bad or high_bad):
            return
        if lo is not None and hi is not None:
            rule = (
                f"must be greater than {lo:g} and at most {hi:g}"
                if lo_open
                else f"must be between {lo:g} and {hi:g}"
            )
        elif lo is not None:
            rule = f"must be greater than {lo:g}" if lo_open else f"must be at least {lo:g}"
        else:
            rule = f"must be at most {hi:g}"
        self.fail(key, f"{rule} (got {_show(value)})")

    def text(self, key: str, default: str | None) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(
                key,
                f"must be text (got {_show(value)})",
                "put it in quotes" if isinstance(value, bool | int | float) else "",
            )
        return str(value)

    def choice(self, key: str, default: str, choices: Sequence[str], *, upper: bool = False) -> str:
        value = self.data.get(key, default)
        normal = value.upper() if upper and isinstance(value, str) else value
        if normal not in choices:
            self.fail(key, f"must be one of {', '.join(choices)} (got {_show(value)})")
        return str(normal)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(
                key, f"must be a list of text (got {_show(value)})", "write one '- item' per line"
            )
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"must be text (got {_show(item)})", "put it in quotes")
        return tuple(value)

    def zone(self, key: str, default: str) -> str:
        value = self.text(key, default) or default
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(
                key,
                f"is not a known time zone (got {value!r})",
                "use an IANA name such as UTC or Europe/Berlin",
            )
        return value

    def env_name(self, key: str, default: str | None) -> str | None:
        value = self.text(key, default)
        if value is not None and (_looks_like_token(value) or not ENV_NAME.match(value)):
            if _looks_like_token(value):
                raise ConfigError(
                    f"{self.label}: {self.at(key)} looks like a literal token",
                    LITERAL_TOKEN_HINT,
                )
            self.fail(
                key,
                f"must name an environment variable (got {value!r})",
                f"e.g. {ENV_NAME_EXAMPLE}",
            )
        return value


class _DuplicateKeyError(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error: YAML would keep
    the last one silently (two personas named alike, one lost)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if duplicate:
                line = key_node.start_mark.line + 1
                raise _DuplicateKeyError(f"duplicate key {key!r} at line {line}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _refuse_literal_tokens(label: str, raw: Any, path: str) -> None:
    """Walk the whole file: a secret written into it is refused before anything else."""
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_literal_tokens(label, item, f"{path}[{i}]")
        return
    if not isinstance(raw, dict):
        return
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        lowered = str(key).lower()
        if lowered.endswith("_env"):
            continue
        named_secret = lowered in SECRET_KEYS
        tokenish = any(word in lowered for word in ("token", "secret", "password"))
        if (named_secret and value not in (None, "")) or (
            tokenish and isinstance(value, str) and TOKEN_LIKE.match(value)
        ):
            raise ConfigError(
                f"{label}: {key_path} is a literal secret",
                LITERAL_TOKEN_HINT,
            )
        _refuse_literal_tokens(label, value, key_path)


def _looks_like_token(value: str) -> bool:
    """Random-looking: long, mixed case and digits. MASTODON_ACCESS_TOKEN is not; a real token is."""
    return (
        bool(TOKEN_LIKE.match(value))
        and any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() for c in value)
    )


def _field_names(settings: type | None) -> tuple[str, ...]:
    """A settings dataclass's field names: the keys its block may hold."""
    if settings is None or not dataclasses.is_dataclass(settings):
        return ()
    return tuple(f.name for f in dataclasses.fields(settings))


def _parse_store(top: Node, base: Path, home: Path, env: Mapping[str, str]) -> StoreLocation:
    """`store:` is a path (SQLite) or a postgresql:// URL whose password comes from the
    environment (PGPASSWORD, or a `${VAR}` in the URL); see bot/store/location.py."""
    text = top.text("store", None)
    if text is None:
        return home / STORE_FILE
    where = f"{top.label}: {top.at('store')}"
    if "PGPASSWORD" in env:
        register_secret(env["PGPASSWORD"])
    location = parse_store_setting(text, env, where)
    if isinstance(location, str):
        return _resolve(base, location) or home / STORE_FILE
    return location


def _resolve(base: Path, text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, valid: Iterable[str], what: str) -> str:
    options = sorted(valid)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    return f"valid {what}s: {', '.join(options)}"


def _yaml_error(label: str, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return (
            f"{label}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: "
            f"{problem}"
        )
    return f"{label}: YAML syntax error: {problem}"
