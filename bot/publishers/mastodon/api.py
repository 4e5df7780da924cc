"""The Mastodon API's rules, apart from the client: length as the server counts it, the
token's scopes, rate-limit headers (Mastodon's ISO reset, epoch seconds, HTTP dates), the
instance's limits, and reading an error's status and message. Used by
bot/publishers/mastodon/client.py; never logs or shows a token.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from mastodon import Mastodon, MastodonError, MastodonNetworkError

_TOO_LONG = re.compile(r"character limit|too long|exceed|length", re.IGNORECASE)
_NOT_SENT = ("refused", "newconnectionerror", "connecttimeout", "nameresolution",
             "name or service not known", "failed to resolve")  # fmt: skip
DEFAULT_TOKEN_ENV = "MASTODON_ACCESS_TOKEN"
# The scopes to give the bot's access token: the one list that the README, config.yaml and
# every hint show (tests/test_readme.py keeps them in step). write:statuses posts;
# read:statuses reads the account's own posts (where a send whose answer was lost is looked
# for) and the thread above a mention; read:accounts checks the token and the account;
# read:notifications reads mentions; write:accounts lets `bot setup` set the bot flag and note.
TOKEN_SCOPES = ("write:statuses", "read:statuses", "read:accounts", "read:notifications",
                "write:accounts")  # fmt: skip
SCOPES_TEXT = " ".join(TOKEN_SCOPES)


class SupportsReveal(Protocol):
    """A secret wrapper (config's `Secret`) that hands out its value on purpose only."""

    def reveal(self) -> str: ...


def _reveal(token: str | SupportsReveal) -> str:
    if isinstance(token, str):
        return token
    reveal = getattr(token, "reveal", None) or getattr(token, "get_secret_value", None)
    if reveal is None:
        raise TypeError("token must be a str or a secret wrapper with reveal()")
    value = reveal()
    if not isinstance(value, str):
        raise TypeError("token wrapper must reveal a str")
    return value


def status_length(text: str, spoiler_text: str = "") -> int:
    """Length as Mastodon counts it: any URL is 23 chars, `@user@domain` counts as `@user`."""
    return int(Mastodon.get_status_length(text, spoiler_text))


# --- rate-limit headers ------------------------------------------------------------------


def _parse_instant(value: str) -> datetime | None:
    """An ISO-8601 timestamp (Mastodon) or an HTTP date, as an aware datetime."""
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until a rate limit resets, from a response's headers; None if they don't say.

    Reads `Retry-After` (seconds or HTTP date) first, then `X-RateLimit-Reset`, which real
    Mastodon sends as an ISO-8601 timestamp (`2020-09-08T13:25:00.019685Z`) and GoToSocial
    and mastodon-mock as epoch seconds. A `Date` header, when present, is the reference for
    an absolute reset, so a skewed local clock does not stretch or cut the wait.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    reference = now
    if "date" in lower:
        server_date = _parse_instant(lower["date"])
        if server_date is not None:
            reference = server_date.timestamp()

    retry_after = lower.get("retry-after", "").strip()
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            when = _parse_instant(retry_after)
            if when is not None:
                return max(0.0, when.timestamp() - reference)

    reset = lower.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            reset_epoch = float(reset)
        except ValueError:
            when = _parse_instant(reset)
            if when is None:
                return None
            reset_epoch = when.timestamp()
        return max(0.0, reset_epoch - reference)
    return None


class _LastResponse(threading.local):
    """The headers of the last HTTP response this thread received (a requests hook).

    Mastodon.py's `MastodonRatelimitError` carries no headers; this is how we still read
    the reset time. It is our own `requests.Session`, handed to the documented
    `session=` argument, not a patch of the client.
    """

    headers: Mapping[str, str] | None = None

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.headers = response.headers


def _media_limits(instance: Mapping[str, Any]) -> dict[str, int]:
    """Upload size limits in bytes by media type, from configuration.media_attachments:
    images by `image_size_limit`, audio and video by `video_size_limit` (Mastodon
    applies the video limit to audio)."""
    media = (instance.get("configuration") or {}).get("media_attachments") or {}
    limits = {}
    for kind, key in (("image", "image_size_limit"), ("audio", "video_size_limit"),
                      ("video", "video_size_limit")):  # fmt: skip
        value = media.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[kind] = value
    return limits


def _limit_from_instance(instance: Mapping[str, Any]) -> int | None:
    """configuration.statuses.max_characters (v2, and v1 since 3.4), or Pleroma's key."""
    configuration = instance.get("configuration") or {}
    statuses = configuration.get("statuses") or {}
    for value in (statuses.get("max_characters"), instance.get("max_toot_chars")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return None
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _same_id(a: Any, b: Any) -> bool:
    return (None if a is None else str(a)) == (None if b is None else str(b))


def _api_error_details(err: MastodonError) -> tuple[int | None, str | None]:
    """(HTTP status, the server's `error` text) from a MastodonAPIError's args.

    Mastodon.py raises `ex_type('Mastodon API returned error', status, reason, error)`.
    """
    args = err.args
    if len(args) >= 4 and isinstance(args[1], int):
        message = args[3] if args[3] else args[2]
        return args[1], str(message) if message else None
    return None, None


def _network_reason(err: MastodonNetworkError) -> str:
    text = str(err)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    return text.removeprefix("Could not complete request: ")[:200]


# --- bounded retries ---------------------------------------------------------------------
