"""Reading config.yaml's YAML strictly: typed getters that fail in one line naming the file,
the key path, the bad value and the fix (`Node`); duplicate keys refused; literal tokens
refused; `defaults:` values remembered as inherited so errors can say where they came from.
Used by bot/config/loader.py."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core.errors import ConfigError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME_EXAMPLE = "MASTODON_ACCESS_TOKEN"  # in the hint for a bad *_env value
# Mastodon access tokens are 43 url-safe base64 characters; anything long and random-looking
# in a token-ish key is treated as one.
TOKEN_LIKE = re.compile(r"^[A-Za-z0-9_\-]{20,}$")
SECRET_KEYS = ("access_token", "client_secret", "password", "token", "secret")
LITERAL_TOKEN_HINT = "put it in an environment variable and name it with access_token_env"


class Inherited(dict[str, Any]):
    """A persona's block merged over `defaults:` (a plain dict to the parser); `inherited`
    names the keys taken from the defaults block at `origin`, so that an error about one
    of them says where it was written."""

    def __init__(self, data: Mapping[str, Any], inherited: Iterable[str], origin: str) -> None:
        super().__init__(data)
        self.inherited = frozenset(inherited)
        self.origin = origin


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
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata folder (America)
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
