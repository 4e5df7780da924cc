"""The persona's Mastodon account: verify the token (`bot check --online`) and set the
account up as a bot (`bot setup`).

    facts = online_check(config, persona)        # dict: acct, bot flag, instance limit, ...
    info = setup_account(config, persona, note="Generated text; not a real person.")

The only networked checks; both go through `MastodonPublisher`, so a bad token, a wrong
instance or a timeout end in one `BotError` line that names the environment variable and
the fix. Nothing here posts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mastodon import MastodonError, MastodonIllegalArgumentError

from bot.config import Config, Persona, resolve_base_url, resolve_token
from bot.errors import ConfigError, PublishError
from bot.publishers.base import normalise_text
from bot.publishers.mastodon import REQUIRED_SCOPES, MastodonPublisher

SETUP_SCOPES = ("write:accounts",)  # what `bot setup` needs on top of REQUIRED_SCOPES
REPLY_SCOPES = ("read:statuses",)  # replies read threads (followers-only ones need it)


def publisher_for(config: Config, persona: Persona) -> MastodonPublisher:
    """The persona's Mastodon publisher, whatever `publisher:` says (the account may be
    set up before posts go to it); a ConfigError when no instance is configured."""
    settings = persona.mastodon
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


def online_check(config: Config, persona: Persona) -> dict[str, Any]:
    """Verify the token with the instance; what `bot check --online` shows.

    Keys: persona, instance, token_env, acct, url, bot, instance_limit, scopes (the
    token's app scopes when the server shows them, Mastodon 4.3+, else None) and
    missing_scopes (of REQUIRED_SCOPES, plus REPLY_SCOPES when replies are on; None when
    the scopes are unknown). A rejected
    token raises a PublishError naming the environment variable.
    """
    publisher = publisher_for(config, persona)
    info = publisher.account_info()
    scopes = _app_scopes(publisher)
    needed = REQUIRED_SCOPES + (REPLY_SCOPES if persona.replies.enabled else ())
    return {
        "persona": persona.name,
        "instance": publisher.base_url,
        "token_env": persona.mastodon.access_token_env,
        "acct": info.acct,
        "url": info.url,
        "bot": info.bot,
        "instance_limit": info.instance_limit,
        "scopes": scopes,
        "missing_scopes": None if scopes is None else missing_scopes(scopes, needed),
    }


@dataclass(frozen=True)
class SetupResult:
    """What the server holds after `bot setup`, read back (not what it answered)."""

    acct: str
    bot: bool  # the account is flagged as a bot now
    note_kept: bool | None  # the note reads as asked; None when no note was asked for


def setup_account(config: Config, persona: Persona, note: str | None = None) -> SetupResult:
    """Flag the account as a bot and, when `note` is given, set it as the profile note
    (the persona's disclaimer), then read the account back: a server may answer 200 and
    ignore a field. Idempotent: running it twice changes nothing more."""
    publisher = publisher_for(config, persona)
    try:
        publisher.mark_bot(note)
        after = publisher.account_info()
    except PublishError as err:
        if err.status_code == 403:
            env = persona.mastodon.access_token_env
            raise PublishError(
                err.message,
                f"`bot setup` needs the {', '.join(SETUP_SCOPES)} scope: create a token with "
                f"it, set {env} to it, or tick 'bot account' in the profile settings by hand",
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
