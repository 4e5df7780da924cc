"""The `mastodon` publisher kind (bot/config/registry.py): the persona's
`mastodon:` settings block, its token and instance URL from the environment, the
publisher (bot/publishers/mastodon/client.py), the inbox that bot/posting/replies.py reads mentions
through, and the account checks: verify the token (`bot check --online`) and set the
account up as a bot (`bot setup`).

    settings = mastodon_settings(persona)        # the block, defaults when absent
    token = resolve_token(persona)               # Secret, from $MASTODON_ACCESS_TOKEN
    facts = online_check(config, persona)        # dict: acct, bot flag, instance limit, ...
    info = setup_account(config, persona, note="Generated text; not a real person.")

The only networked checks; both go through `MastodonPublisher`, so a bad token, a wrong
instance or a timeout end in one `BotError` line that names the environment variable and
the fix. Nothing here posts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mastodon import MastodonError, MastodonIllegalArgumentError

from bot import config as cfg
from bot.config import Config, PersonaSettings, registry
from bot.core.errors import ConfigError, PublishError
from bot.core.post import Publisher, normalise_text
from bot.publishers.mastodon.client import (
    DEFAULT_TOKEN_ENV,
    KEY_LIFETIME,
    SCOPES_TEXT,
    SETTLE_SECONDS,
    TOKEN_SCOPES,
    MastodonPublisher,
    status_length,
)

# --- settings, token, publisher ----------------------------------------------------


@dataclass(frozen=True)
class MastodonSettings:
    """`personas.NAME.mastodon`: the account a persona posts as."""

    base_url: str | None = None  # e.g. https://mastodon.example (not a secret)
    base_url_env: str | None = None  # or the environment variable holding it
    access_token_env: str = DEFAULT_TOKEN_ENV
    request_timeout_seconds: float = 10.0
    settle_seconds: float = SETTLE_SECONDS  # a send may still be applied this long after


_URL = re.compile(r"^https?://[^\s/]+")


def parse_settings(m: cfg.Node, used: bool) -> MastodonSettings:
    """Validate the block; `used`: the persona publishes to Mastodon, so it needs a URL."""
    base_url = m.text("base_url", None)
    if base_url is not None and not _URL.match(base_url):
        m.fail(
            "base_url",
            f"must be an http(s) URL (got {base_url!r})",
            "write it like https://mastodon.example",
        )
    base_url_env = m.env_name("base_url_env", None)
    if base_url is not None and base_url_env is not None:
        m.fail("base_url", "and base_url_env are both set", "keep one of them")
    if used and base_url is None and base_url_env is None:
        raise ConfigError(
            f"{m.label}: {m.path}.base_url is missing for the mastodon publisher",
            "set mastodon.base_url to your instance, e.g. https://mastodon.example",
        )
    return MastodonSettings(
        base_url=base_url.rstrip("/") if base_url else None,
        base_url_env=base_url_env,
        access_token_env=m.env_name("access_token_env", DEFAULT_TOKEN_ENV) or DEFAULT_TOKEN_ENV,
        request_timeout_seconds=m.number("request_timeout_seconds", 10.0, lo=1.0, hi=300.0),
        settle_seconds=m.number("settle_seconds", SETTLE_SECONDS, lo=0.0, hi=3600.0),
    )


def mastodon_settings(persona: cfg.PersonaSettings) -> MastodonSettings:
    """The persona's `mastodon:` block (the defaults when it has none)."""
    settings = persona.publisher_settings.get("mastodon")
    return settings if isinstance(settings, MastodonSettings) else MastodonSettings()


def ready(persona: cfg.PersonaSettings) -> None:
    """A ConfigError when the persona has no instance to post to (`--publisher mastodon`)."""
    settings = mastodon_settings(persona)
    if not (settings.base_url or settings.base_url_env):
        raise ConfigError(
            f"persona {persona.name} has no mastodon.base_url",
            "set personas.NAME.mastodon.base_url in config.yaml",
        )


def resolve_token(persona: cfg.PersonaSettings, env: Mapping[str, str] | None = None) -> cfg.Secret:
    """The persona's access token from the environment, registered for redaction."""
    name = mastodon_settings(persona).access_token_env
    return cfg.secret_from_env(
        name,
        f"environment variable {name} is not set; persona {persona.name} posts to Mastodon",
        f"export {name}=<the bot account's access token>",
        env,
    )


def resolve_base_url(persona: cfg.PersonaSettings, env: Mapping[str, str] | None = None) -> str:
    """The instance URL: `base_url` from the file, or the variable `base_url_env` names."""
    settings = mastodon_settings(persona)
    if settings.base_url:
        return settings.base_url
    name = settings.base_url_env
    value = cfg.env_value(name, env) if name else ""
    if not name or not value:
        raise ConfigError(
            f"persona {persona.name}: no Mastodon instance URL"
            + (f" (environment variable {name} is not set)" if name else ""),
            f"export {name}=https://your.instance"
            if name
            else "set mastodon.base_url in config.yaml",
        )
    if not _URL.match(value):
        raise ConfigError(
            f"environment variable {name} must be an http(s) URL",
            "write it like https://mastodon.example",
        )
    return value.rstrip("/")


def build(config: cfg.Config, persona: cfg.PersonaSettings) -> MastodonPublisher:
    """The persona's publisher; the token is read from the environment here."""
    settings = mastodon_settings(persona)
    return MastodonPublisher(
        resolve_base_url(persona),
        resolve_token(persona),
        request_timeout_seconds=settings.request_timeout_seconds,
        token_env=settings.access_token_env,
        settle_seconds=settings.settle_seconds,
    )


def describe(config: cfg.Config, persona: cfg.PersonaSettings) -> str:
    """`bot check`'s publisher line; the token must be present, and is never printed."""
    url = resolve_base_url(persona)
    resolve_token(persona)
    return f"mastodon {url} (token from ${mastodon_settings(persona).access_token_env})"


class MastodonInbox:
    """`registry.Inbox` over a `MastodonPublisher`'s client: Mastodon.py errors are
    translated into PublishErrors the way `publish` translates them (an illegal
    argument is a bug in our call and is raised as it is)."""

    addresses_author = True
    capped = False  # min_id reads forward from the cursor: no mention is ever passed over

    def __init__(self, publisher: MastodonPublisher) -> None:
        self.publisher = publisher
        self.host = urlsplit(publisher.base_url).netloc.lower()

    def account_id(self) -> str:
        me = self._read(self.publisher.client.account_verify_credentials, "verify the token")
        return str(me["id"])

    def mentions(self, cursor: str | None, limit: int) -> list[Mapping[str, Any]]:
        page = self._read(
            lambda: self.publisher.client.notifications(
                types=["mention"], min_id=cursor, limit=limit
            ),
            "read notifications",
        )
        return list(page or [])

    def thread_depth(self, status_id: str) -> int:
        context = self._read(
            lambda: self.publisher.client.status_context(status_id), "read the thread"
        )
        return len(context.get("ancestors") or ())

    def _read(self, call: Callable[[], Any], action: str) -> Any:
        try:
            return call()
        except MastodonIllegalArgumentError:
            raise
        except MastodonError as err:
            raise self.publisher.translate(err, action) from None


def _inbox(publisher: Publisher) -> MastodonInbox:
    if not isinstance(publisher, MastodonPublisher):
        raise TypeError(f"not a Mastodon publisher: {publisher!r}")  # a bug, not a user error
    return MastodonInbox(publisher)


# --- account checks ----------------------------------------------------------------


def publisher_for(config: Config, persona: PersonaSettings) -> MastodonPublisher:
    """The persona's Mastodon publisher, whatever `publisher:` says (the account may be
    set up before posts go to it); a ConfigError when no instance is configured."""
    settings = mastodon_settings(persona)
    if not (settings.base_url or settings.base_url_env):
        raise ConfigError(
            f"{config.label}: personas.{persona.name} has no Mastodon account configured",
            f"set personas.{persona.name}.mastodon.base_url (and publisher: mastodon)",
        )
    return MastodonPublisher(
        resolve_base_url(persona),
        resolve_token(persona),
        request_timeout_seconds=settings.request_timeout_seconds,
        token_env=settings.access_token_env,
    )


def online_check(config: Config, persona: PersonaSettings) -> dict[str, Any]:
    """Verify the token with the instance; what `bot check --online` shows.

    Keys: persona, instance, token_env, acct, url, bot, instance_limit, scopes (the
    token's app scopes when the server shows them, Mastodon 4.3+, else None) and
    missing_scopes (of TOKEN_SCOPES, the one list every message names; None when the
    scopes are unknown) and scopes_wanted (that list, as a line). A rejected
    token raises a PublishError naming the environment variable.
    """
    publisher = publisher_for(config, persona)
    info = publisher.account_info()
    scopes = _app_scopes(publisher)
    return {
        "persona": persona.name,
        "instance": publisher.base_url,
        "token_env": mastodon_settings(persona).access_token_env,
        "acct": info.acct,
        "url": info.url,
        "bot": info.bot,
        "instance_limit": info.instance_limit,
        "scopes": scopes,
        "missing_scopes": None if scopes is None else missing_scopes(scopes, TOKEN_SCOPES),
        "scopes_wanted": SCOPES_TEXT,
    }


@dataclass(frozen=True)
class SetupResult:
    """What the server holds after `bot setup`, read back (not what it answered)."""

    acct: str
    bot: bool  # the account is flagged as a bot now
    note_kept: bool | None  # the note reads as asked; None when no note was asked for


def setup_account(config: Config, persona: PersonaSettings, note: str | None = None) -> SetupResult:
    """Flag the account as a bot and, when `note` is given, set it as the profile note
    (the persona's disclaimer), then read the account back: a server may answer 200 and
    ignore a field. Idempotent: running it twice changes nothing more."""
    publisher = publisher_for(config, persona)
    try:
        publisher.mark_bot(note)
        after = publisher.account_info()
    except PublishError as err:
        if err.status_code == 403:
            env = mastodon_settings(persona).access_token_env
            raise PublishError(
                err.message,
                f"`bot setup` needs the write:accounts scope: create a token with the scopes "
                f"{SCOPES_TEXT}, set {env} to it, or tick 'bot account' in the profile "
                "settings by hand",
                status_code=403,
            ) from None
        raise
    kept = None if note is None else after.note == normalise_text(note)
    return SetupResult(after.acct, after.bot, kept)


def missing_scopes(granted: list[str], needed: tuple[str, ...]) -> list[str]:
    """The `needed` scopes that `granted` does not cover ("write" covers "write:statuses")."""
    have = set(granted)
    return [s for s in needed if s not in have and s.split(":", 1)[0] not in have]


def _app_scopes(publisher: MastodonPublisher) -> list[str] | None:
    """The app's scopes from /api/v1/apps/verify_credentials (Mastodon 4.3+), or None
    when the server does not say; this extra look never fails the check."""
    try:
        app = publisher.client.app_verify_credentials()
    except MastodonIllegalArgumentError:
        raise
    except MastodonError:
        return None
    scopes = app.get("scopes") if hasattr(app, "get") else None
    if not isinstance(scopes, list | tuple):
        return None
    return [str(s) for s in scopes]


KIND = registry.register(
    registry.PublisherKind(
        name="mastodon",
        build=build,
        length=status_length,
        key_lifetime=KEY_LIFETIME,
        settings=MastodonSettings,
        parse=parse_settings,
        ready=ready,
        describe=describe,
        remote=True,
        inbox=_inbox,
        online_check=online_check,
        setup=setup_account,
        exclusive_keys=(("base_url", "base_url_env"),),
        media_types=("audio/", "image/", "video/"),
        token_env=DEFAULT_TOKEN_ENV,
    )
)
