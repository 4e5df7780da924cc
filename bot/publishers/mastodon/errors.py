"""Mastodon.py's errors translated into Revenant's: each PublishError says whether the slot
is retried with the same text and key (transient), whether the post may have reached the
server (maybe_sent), and what the owner should fix. Used by client.py and media.py.
A failure to send a slot's post and a failure of `bot check --online` or `bot setup`
differ only in what is said will happen next (`SLOT_HINTS`, `ACCOUNT_HINTS`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from mastodon import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from bot.core.errors import PublishError
from bot.publishers.mastodon.api import (
    _NOT_SENT,
    SCOPES_TEXT,
    _api_error_details,
    _network_reason,
)

# What happens next, by kind of failure: for a slot's post (the daemon, `bot post`) ...
SLOT_HINTS = {
    "rate_limit": "the slot is kept and retried after the reset",
    "retry": "the slot is kept and retried with the same text and idempotency key",
    "refused": "the server's message is recorded against the slot; it will not be retried",
}
# ... and for the account checks, which have no slot (`bot check --online`, `bot setup`).
ACCOUNT_HINTS = {
    "rate_limit": "wait for the reset, then run it again",
    "retry": "check that the server is up and mastodon.base_url names it, then run it again",
    "refused": "see the server's message",
}


def translate_error(
    err: MastodonError,
    action: str,
    base_url: str,
    token_env: str,
    retry_after_of: Callable[[], float | None],
    hints: Mapping[str, str] = SLOT_HINTS,
) -> PublishError:
    """One Mastodon.py error -> one PublishError that says retry, fix, or give up.
    `retry_after_of` reads the rate limit's reset (asked only for a 429); `hints` say
    what happens next (SLOT_HINTS or ACCOUNT_HINTS)."""
    host = urlsplit(base_url).netloc or base_url
    auth_hint = (
        f"set {token_env} to an access token for this account with the scopes "
        f"{SCOPES_TEXT}, then run `bot check --online`"
    )
    if isinstance(err, MastodonRatelimitError):
        retry_after = retry_after_of()
        when = f"; resets in {retry_after:.0f} s" if retry_after is not None else ""
        return PublishError(
            f"{host} rate-limited the request to {action} (429){when}",
            hints["rate_limit"],
            transient=True,
            status_code=429,
            retry_after=retry_after,
        )
    if isinstance(err, MastodonNetworkError):  # includes timeouts and refused connections
        never_sent = any(word in str(err).lower() for word in _NOT_SENT)
        return PublishError(
            f"could not reach {host} to {action}: {_network_reason(err)}",
            hints["retry"],
            transient=True,
            maybe_sent=not never_sent,
        )
    status_code, server_message = _api_error_details(err)
    if isinstance(err, MastodonUnauthorizedError) or status_code == 401:
        return PublishError(
            f"{host} rejected the access token in {token_env} (401 Unauthorized)",
            auth_hint,
            status_code=401,
        )
    if status_code == 403:
        return PublishError(
            f"{host} refused to {action} with the token in {token_env} "
            f"(403 Forbidden: {server_message or 'not allowed'})",
            auth_hint,
            status_code=403,
        )
    if isinstance(err, MastodonServerError) or status_code is None or status_code == 408:
        # A 5xx, a request timeout, or an unparseable answer (a proxy's HTML page):
        # the post may or may not exist, so retry with the same key.
        return PublishError(
            f"{host} failed to {action} ({status_code or 'bad response'}"
            f"{': ' + server_message if server_message else ''})",
            hints["retry"],
            transient=True,
            status_code=status_code,
            maybe_sent=True,
        )
    if isinstance(err, MastodonAPIError):
        return PublishError(
            f"{host} refused to {action} ({status_code}): {server_message or 'no reason given'}",
            hints["refused"],
            status_code=status_code,
        )
    return PublishError(f"Mastodon.py failed to {action}: {type(err).__name__}")
