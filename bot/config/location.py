"""Where the state lives: config.yaml's `store:` is a path (SQLite) or a PostgreSQL URL.

    store: var/revenant.db                                   # SQLite, relative to config.yaml
    store: postgresql://revenant@db.internal:5432/revenant   # password from PGPASSWORD / ~/.pgpass
    store: postgresql://revenant:${REVENANT_DB_PASSWORD}@db.internal/revenant
    store: ${DATABASE_URL}                                   # the whole URL from the environment

The password never sits in config.yaml: a literal one is refused, like a literal token.
It comes from libpq's own environment (PGPASSWORD, PGPASSFILE, PGHOST, ...), read by
libpq itself, or from a `${VAR}` reference. `PostgresLocation` (below) keeps it out of its
`str`/`repr` (shown as `***`) and registers it with bot.core.log, so it is masked in every
log line and CLI error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from bot.core.errors import ConfigError
from bot.core.log import MASK, register_secret

__all__ = ["PostgresLocation", "StoreLocation", "is_url", "parse_store_setting"]
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PASSWORD_HINT = "put the password in PGPASSWORD (or ~/.pgpass), or write ${VAR} and set VAR"


SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class PostgresLocation:
    """A `postgresql://` URL without its password, and the password on the side."""

    url: str  # the URL with the password taken out: safe to show
    password: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.password:
            register_secret(self.password)  # masked in every log line and CLI error

    @classmethod
    def parse(cls, text: str) -> PostgresLocation:
        """Split a postgresql:// URL (password in the user part or as `?password=`)."""
        parts = urlsplit(text.strip())
        if parts.scheme not in SCHEMES:
            raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme or 'missing'!r})")
        user_info, at, hosts = parts.netloc.rpartition("@")
        user, colon, password = user_info.partition(":")
        netloc = f"{user}@{hosts}" if at else hosts
        query = parse_qsl(parts.query, keep_blank_values=True)
        secret = unquote(password) if colon else None
        kept = []
        for key, value in query:
            if key == "password":
                secret = secret or value
                if value:
                    register_secret(value)
            else:
                kept.append((key, value))
        if colon and password:
            register_secret(password)  # as written (percent-encoded) too
        if secret:
            register_secret(secret)
        url = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
        return cls(url=url, password=secret or None)

    def __str__(self) -> str:
        if not self.password:
            return self.url
        scheme, rest = self.url.split("://", 1)
        user, at, hosts = rest.rpartition("@")
        return f"{scheme}://{user}:{MASK}@{hosts}" if at else f"{scheme}://:{MASK}@{rest}"


StoreLocation = Path | PostgresLocation


def is_url(text: str) -> bool:
    return "://" in text


def parse_store_setting(
    text: str, env: Mapping[str, str], where: str = "store"
) -> str | PostgresLocation:
    """config.yaml's `store:` value: the path text as written (the caller resolves it),
    or a PostgresLocation with `${VAR}` references filled in from `env`. A ConfigError
    names `where` for a literal password, an unset variable or an unknown URL scheme."""
    whole = REFERENCE.fullmatch(text.strip())
    if not whole and is_url(text):
        _refuse_literal_password(text, where)
    password_ref = _password_reference(text)
    expanded = _expand(text, env, where)
    if not is_url(expanded):
        return expanded
    try:
        location = PostgresLocation.parse(expanded)
    except ValueError as err:
        raise ConfigError(
            f"{where}: {_scheme_only(expanded)} is {err}",
            "use a file path (SQLite) or a postgresql:// URL",
        ) from None
    if password_ref is not None:  # kept apart, so no character of it needs URL quoting
        password = env.get(password_ref, "")
        register_secret(password)
        location = PostgresLocation(location.url, password or None)
    return location


def _password_reference(text: str) -> str | None:
    """VAR when the URL's password is exactly `${VAR}`; its expansion then stays apart."""
    if REFERENCE.fullmatch(text.strip()) or not is_url(text):
        return None
    password = _password_part(text)
    match = REFERENCE.fullmatch(password or "")
    return match.group(1) if match else None


def _password_part(text: str) -> str | None:
    netloc = text.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    user_info, at, _hosts = netloc.rpartition("@")
    _user, colon, password = user_info.partition(":")
    return password if at and colon else None


def _refuse_literal_password(text: str, where: str) -> None:
    password = _password_part(text)
    query = text.split("?", 1)[1] if "?" in text else ""
    from_query = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "password"]
    for candidate in [password, *from_query]:
        if candidate and not REFERENCE.fullmatch(candidate):
            raise ConfigError(f"{where} holds a literal password", PASSWORD_HINT)


def _expand(text: str, env: Mapping[str, str], where: str) -> str:
    """Fill `${VAR}` from `env`; the password's reference (if any) becomes empty here and
    is handled by the caller."""
    password_ref = _password_reference(text)
    if password_ref is not None:
        text = text.replace(f":${{{password_ref}}}@", ":@", 1)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name, "").strip()
        if not found:
            raise ConfigError(f"{where}: ${{{name}}} is not set", f"set {name} in the environment")
        return found

    expanded = REFERENCE.sub(value, text)
    if password_ref is not None and not env.get(password_ref, "").strip():
        raise ConfigError(
            f"{where}: ${{{password_ref}}} is not set", f"set {password_ref} in the environment"
        )
    return expanded


def _scheme_only(url: str) -> str:
    """The URL's scheme, for a message that must not repeat a whole (secret-bearing) URL."""
    return url.split("://", 1)[0] + "://..."
