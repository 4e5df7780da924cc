"""Where the state lives: config.yaml's `store:` is a path (SQLite) or a PostgreSQL URL.

    store: var/revenant.db                                   # SQLite, relative to config.yaml
    store: postgresql://revenant@db.internal:5432/revenant   # password from PGPASSWORD / ~/.pgpass
    store: postgresql://revenant:${REVENANT_DB_PASSWORD}@db.internal/revenant
    store: ${DATABASE_URL}                                   # the whole URL from the environment

The password never sits in config.yaml: a literal one is refused, like a literal token.
It comes from libpq's own environment (PGPASSWORD, PGPASSFILE, PGHOST, ...), read by
libpq itself, or from a `${VAR}` reference. `PostgresLocation` (below) keeps it out of its
`str`/`repr` (shown as `***`) and registers it with bot.core.log, so it is masked in every
log line and CLI error. Every other secret libpq takes in a URL (`SECRET_KEYS`:
`?sslpassword=`, `?oauth_client_secret=`) is held the same way: a `${VAR}` reference only,
kept out of the URL, handed to libpq as its own parameter and shown as `***`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from bot.core.errors import ConfigError
from bot.core.log import MASK, register_secret

__all__ = ["PostgresLocation", "StoreLocation", "is_url", "parse_store_setting"]
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PASSWORD_HINT = "put the password in PGPASSWORD (or ~/.pgpass), or write ${VAR} and set VAR"


SCHEMES = ("postgresql", "postgres")
# libpq's connection parameters that hold a secret (the password, the SSL key's passphrase,
# the OAuth client secret): never literal in config.yaml, never shown.
SECRET_KEYS = ("password", "sslpassword", "oauth_client_secret")


@dataclass(frozen=True)
class PostgresLocation:
    """A `postgresql://` URL without its secrets, and the secrets on the side."""

    url: str  # the URL with the password and every other secret taken out: safe to show
    password: str | None = field(default=None, repr=False, compare=False)
    # the other SECRET_KEYS found in the query, as (key, value), in their order there
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        for value in (self.password, *(value for _key, value in self.secrets)):
            if value:
                register_secret(value)  # masked in every log line and CLI error

    def connect_options(self) -> dict[str, str]:
        """The secrets as libpq keyword parameters (psycopg.connect's **kwargs)."""
        options = dict(self.secrets)
        if self.password:
            options["password"] = self.password
        return options

    @classmethod
    def parse(cls, text: str) -> PostgresLocation:
        """Split a postgresql:// URL (password in the user part or as `?password=`; the
        other SECRET_KEYS from the query)."""
        parts = urlsplit(text.strip())
        if parts.scheme not in SCHEMES:
            raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme or 'missing'!r})")
        user_info, at, hosts = parts.netloc.rpartition("@")
        user, colon, password = user_info.partition(":")
        netloc = f"{user}@{hosts}" if at else hosts
        query = parse_qsl(parts.query, keep_blank_values=True)
        secret = unquote(password) if colon else None
        kept, others = [], []
        for key, value in query:
            if key == "password":
                secret = secret or value
                if value:
                    register_secret(value)
            elif key in SECRET_KEYS:
                others.append((key, value))
            else:
                kept.append((key, value))
        if colon and password:
            register_secret(password)  # as written (percent-encoded) too
        if secret:
            register_secret(secret)
        url = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
        return cls(url=url, password=secret or None, secrets=tuple(others))

    def __str__(self) -> str:
        shown = self.url
        if self.password:
            scheme, rest = self.url.split("://", 1)
            user, at, hosts = rest.rpartition("@")
            shown = f"{scheme}://{user}:{MASK}@{hosts}" if at else f"{scheme}://:{MASK}@{rest}"
        for key, _value in self.secrets:
            shown += f"{'&' if '?' in shown else '?'}{key}={MASK}"
        return shown


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
        location = replace(location, password=password or None)
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
    """A ConfigError for a password, or any other of SECRET_KEYS, written out in the URL
    rather than as a `${VAR}` reference."""
    query = text.split("?", 1)[1] if "?" in text else ""
    secrets = [("password", _password_part(text))]
    secrets += [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k in SECRET_KEYS]
    for key, candidate in secrets:
        if candidate and not REFERENCE.fullmatch(candidate):
            raise ConfigError(f"{where} holds a literal {key}", _secret_hint(key))


def _secret_hint(key: str) -> str:
    if key == "password":
        return PASSWORD_HINT
    return f"write {key}=${{VAR}} in the URL and set VAR in the environment"


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
