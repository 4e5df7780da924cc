"""config.yaml -> a validated, frozen `Config`; secrets come only from the environment.

    config = load_config()                        # $REVENANT_CONFIG or ./config.yaml
    ada = config.persona("ada")
    ada = with_overrides(ada, temperature=0.7)    # a CLI flag beats the file
    kind = registry.of(ada)                       # its publisher kind (bot/config/registry.py)

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
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from bot.config import registry
from bot.config.location import StoreLocation, parse_store_setting
from bot.config.node import (
    Inherited,
    Node,
    _DuplicateKeyError,
    _refuse_literal_tokens,
    _show,
    _UniqueKeyLoader,
    _yaml_error,
)
from bot.config.sections import parse_filters, parse_replies, parse_schedule
from bot.config.settings import (
    DEFAULT_PUBLISHER,
    Config,
    Filters,
    LoggingSettings,
    PersonaSettings,
    Ranking,
    Replies,
    Schedule,
    Vocabulary,
)
from bot.core.errors import ConfigError
from bot.core.log import register_secret
from bot.core.post import VISIBILITIES, Visibility

# ---------------------------------------------------------------------------------------
# defaults, in one place
CONFIG_ENV = "REVENANT_CONFIG"
HOME_ENV = "REVENANT_HOME"
DEFAULT_CONFIG = Path("config.yaml")
DEFAULT_HOME = Path("var")  # state dir: SQLite store and outbox live here
STORE_FILE = "revenant.db"
OUTBOX_DIR = "outbox"
RANKINGS = ("best", "weighted")
VOCABULARIES = ("known", "any")
MEDIA_FALLBACKS = ("skip", "notation")  # a music persona whose tune cannot be rendered
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_TOP_K = 1000  # more than any char vocabulary
# ---------------------------------------------------------------------------------------

PERSONA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # used in file names


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
    persona = PersonaSettings(
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
        schedule=parse_schedule(
            p.node("schedule", tuple(f.name for f in dataclasses.fields(Schedule))), timezone
        ),
        filters=parse_filters(
            p.node("filters", tuple(f.name for f in dataclasses.fields(Filters)))
        ),
        publisher=publisher,
        publisher_settings=publisher_settings,
        visibility=cast(Visibility, p.choice("visibility", "unlisted", VISIBILITIES)),
        spoiler_text=p.text("spoiler_text", None) or "",
        language=p.text("language", None),
        sensitive=p.flag("sensitive", False),
        replies=parse_replies(
            p.node("replies", tuple(f.name for f in dataclasses.fields(Replies)))
        ),
        media_fallback=p.choice("media_fallback", "skip", MEDIA_FALLBACKS),
    )
    kind = registry.get(publisher)
    if not path and kind.ready is not None:
        kind.ready(persona)  # what the network cannot take (e.g. Bluesky: a content warning)
    return persona


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


def _field_names(settings: type | None) -> tuple[str, ...]:
    """A settings dataclass's field names: the keys its block may hold."""
    if settings is None or not dataclasses.is_dataclass(settings):
        return ()
    return tuple(f.name for f in dataclasses.fields(settings))


def _parse_store(top: Node, base: Path, home: Path, env: Mapping[str, str]) -> StoreLocation:
    """`store:` is a path (SQLite) or a postgresql:// URL whose password comes from the
    environment (PGPASSWORD, or a `${VAR}` in the URL); see bot/config/location.py."""
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
