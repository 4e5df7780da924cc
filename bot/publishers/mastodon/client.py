"""Publish to a Mastodon account through Mastodon.py, exactly once, with clear failures.

`MastodonPublisher` implements `Publisher`. Every post carries the Post's
`idempotency_key` (persona + slot key), so a retried or re-run slot gets the status it
already created back instead of a second one, from a server that honours the key. The key
alone cannot carry exactly-once: Mastodon keeps it for one hour (`key_lifetime`, a Redis
key with a 3600 s TTL), and some servers of the Mastodon API ignore it. So a send whose
outcome is unknown (timeout, 5xx) raises a `PublishError` with `maybe_sent`, and the
caller looks among the account's own statuses (`find`) before re-sending anything, once
`settle_seconds` have passed since the send (how long a slow server may still apply a
request after the client gave up).

Media (a music persona's audio and score) are uploaded before the status through
Mastodon.py's media API, with their alt text, and attached once the server has processed
them (a 202 upload is looked at until it has a URL). A retried publish reuses the
attachments it already uploaded for that idempotency key and media (file, identity, alt
text; a post composed again gets its own); an upload whose answer was
lost is uploaded again, and the orphan is never attached (the server deletes it).

Length is counted as the server counts it (`length`: URLs 23, `@user@domain` as `@user`,
the content warning included). The limit comes from the instance (`max_chars`: v2, then
v1 with and without the trailing slash, then 500); a refusal for length (Mastodon's 422,
Takahē's 400, whichever says the status is too long) lowers it for the publisher's life
(`PublishError.too_long`), so the next compose fits.

The client is built offline (`version_check_mode="none"`), with a short request timeout
and `ratelimit_method="throw"`, so no job thread ever sleeps inside Mastodon.py. Every
Mastodon.py error is translated here, at the boundary, into a `PublishError`:

    429 rate limit                 transient, `retry_after` = seconds until the reset
    5xx, timeout, network error    transient: keep the slot, retry with the same key
    401, 403                       permanent: names the token's env var and the scopes
    422 and other 4xx              permanent: carries the server's own message
    timeouts, 5xx, bad answers     also `maybe_sent`: the status may exist all the same

`MastodonIllegalArgumentError` is a bug in our call and is not translated.
`bot.posting.delivery.publish_with_retries` is the bounded retry loop around `publish`. The
token is never logged, repr'd or put in an error message.

The `mastodon` publisher kind (settings block, token, inbox, account checks) is
registered by bot/publishers/mastodon/kind.py.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
)

from bot import __version__
from bot.core.errors import PublishError
from bot.core.post import Post, Receipt, normalise_text
from bot.publishers.mastodon.api import (
    _TOO_LONG,
    DEFAULT_TOKEN_ENV,
    SCOPES_TEXT,
    TOKEN_SCOPES,
    SupportsReveal,
    _api_error_details,
    _aware,
    _LastResponse,
    _limit_from_instance,
    _media_limits,
    _reveal,
    _same_id,
    retry_after_seconds,
    status_length,
)
from bot.publishers.mastodon.errors import ACCOUNT_HINTS, SLOT_HINTS, translate_error
from bot.publishers.mastodon.media import MediaUploads, UploadKey

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_TOKEN_ENV",
    "KEY_LIFETIME",
    "SCOPES_TEXT",
    "SETTLE_SECONDS",
    "TOKEN_SCOPES",
    "AccountInfo",
    "MastodonPublisher",
    "SupportsReveal",
    "retry_after_seconds",
    "status_length",
]

DEFAULT_MAX_CHARS = 500  # Mastodon's stock limit, used when the instance does not say
KEY_LIFETIME = timedelta(hours=1)  # Mastodon keeps an Idempotency-Key for 3600 s
SETTLE_SECONDS = 60.0  # a send may still be applied this long after it started
MEDIA_WAIT_SECONDS = 120.0  # an upload still processing after this: retry the slot later
FIND_PAGE = 40  # statuses per page when looking for a post (Mastodon's maximum)
FIND_PAGES = 5  # pages looked at; a claim older than these is "cannot tell"
CLOCK_SKEW = timedelta(minutes=5)  # the server's created_at against our claim time
LENGTH_REFUSALS = (422, 400)  # Mastodon refuses an over-length status 422, Takahē 400


# --- the publisher -----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountInfo:
    """What `bot check --online` shows: who the token posts as, and the instance limit."""

    acct: str
    bot: bool
    url: str | None
    instance_limit: int
    note: str = ""  # the profile note as plain text


class MastodonPublisher(MediaUploads):
    """A `Publisher` for one Mastodon account. Construction makes no request."""

    name = "mastodon"
    key_lifetime: timedelta | None = KEY_LIFETIME

    def __init__(
        self,
        base_url: str,
        token: str | SupportsReveal,
        *,
        request_timeout_seconds: float = 10.0,
        token_env: str = DEFAULT_TOKEN_ENV,
        settle_seconds: float = SETTLE_SECONDS,
        media_wait_seconds: float = MEDIA_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_env = token_env
        self.request_timeout_seconds = request_timeout_seconds
        self.settle_seconds = settle_seconds
        self._last = _LastResponse()
        session = requests.Session()
        session.hooks["response"].append(self._last.hook)
        self._client = Mastodon(
            access_token=_reveal(token),
            api_base_url=self.base_url,
            request_timeout=request_timeout_seconds,
            ratelimit_method="throw",  # never sleep in a job thread; we decide when to retry
            version_check_mode="none",  # no request at construction
            session=session,
            user_agent=f"revenant/{__version__}",
        )
        self._session = session
        self._max_chars: int | None = None
        self._learnt: int | None = None  # a lower limit learnt from a refusal for length
        self._limit_unavailable = False  # the last read of the limit could not reach it
        self._me: str | None = None
        self._lock = threading.Lock()
        self._uploaded: dict[UploadKey, str] = {}  # -> media id (bot/publishers/mastodon/media.py)
        self._media_limits: dict[str, int] = {}  # bytes by media type, from the instance
        self.media_wait_seconds = media_wait_seconds
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"MastodonPublisher(base_url={self.base_url!r}, token=***)"

    @property
    def client(self) -> Mastodon:
        """The configured Mastodon.py client, for readers (replies, account checks)."""
        return self._client

    def translate(self, err: MastodonError, action: str) -> PublishError:
        """A Mastodon.py error as a PublishError, the same mapping `publish` uses."""
        return self._translate(err, action)

    # -- Publisher --

    def publish(self, post: Post) -> Receipt:
        """Post once; the same `post.idempotency_key` always yields the same status.
        Media are uploaded first (once per post and file: a retry reuses the attachments
        already uploaded) and attached when the server has processed them."""
        media_ids = self._upload_media(post) if post.media else None
        try:
            status = self._client.status_post(
                post.text,
                in_reply_to_id=post.in_reply_to_id,
                sensitive=post.sensitive,
                visibility=post.visibility,
                spoiler_text=post.spoiler_text or None,
                language=post.language,
                idempotency_key=post.idempotency_key,
                media_ids=media_ids,
            )
        except MastodonIllegalArgumentError:
            raise  # our bug, not the server's
        except MastodonError as err:
            failure = self._translate(err, "publish")
            server_message = _api_error_details(err)[1] or ""
            if failure.status_code in LENGTH_REFUSALS and _TOO_LONG.search(server_message):
                self._learn_limit(server_message, self.length(post.text, post.spoiler_text))
                failure.too_long = True
            raise failure from None
        receipt = self._receipt(status)
        with self._lock:  # posted: its uploads are attached (or orphans), no retry wants them
            for key in [k for k in self._uploaded if k[0] == post.idempotency_key]:
                del self._uploaded[key]
        log.info(
            "event=published persona=%s remote_id=%s url=%s",
            post.persona,
            receipt.remote_id,
            receipt.url,
        )
        return receipt

    def max_chars(self) -> int:
        """The instance's character limit: v2 instance, then v1 (`/api/v1/instance/` as
        Mastodon.py asks, then `/api/v1/instance`, which some servers answer only without
        the slash), then 500. Read once; a lower limit learnt from a refusal wins.

        A limit the server stated (or a 4xx saying it has no such endpoint) is cached
        for the publisher's life; a network error or 5xx gives 500 for now and is asked
        again next time.
        """
        with self._lock:
            if self._max_chars is None:
                limit, definitive = self._read_max_chars()
                if definitive:
                    self._max_chars = limit
            else:
                limit = self._max_chars
            return min(limit, self._learnt) if self._learnt is not None else limit

    def length(self, text: str, spoiler_text: str = "") -> int:
        """As the server counts it, the content warning included."""
        return status_length(text, spoiler_text)

    def find(self, post: Post, since: datetime) -> Receipt | None:
        """Our own status with `post`'s text (compared as normalised plain text, since the
        server returns HTML), content warning and reply target, created since `since`
        (less CLOCK_SKEW); None when the account's statuses since then hold none. A reply
        is first looked for in its thread's descendants, which show it at any visibility
        (the account's list may leave out direct statuses).

        Reads up to FIND_PAGES pages of the account's statuses, newest first. Raises a
        transient PublishError when the server cannot be read or the pages end before
        `since` (too many statuses to tell)."""
        want = normalise_text(post.text)
        want_cw = normalise_text(post.spoiler_text)
        floor = since - CLOCK_SKEW

        def ours(status: Mapping[str, Any]) -> bool:
            return (
                normalise_text(str(status.get("content") or ""), is_html=True) == want
                and normalise_text(str(status.get("spoiler_text") or "")) == want_cw
                and _same_id(status.get("in_reply_to_id"), post.in_reply_to_id)
            )

        try:
            me = self._account_id()
            if post.in_reply_to_id is not None:  # a reply: the thread shows it at any visibility
                context = self._client.status_context(post.in_reply_to_id)
                for status in context.get("descendants") or ():
                    if _same_id((status.get("account") or {}).get("id"), me) and ours(status):
                        return self._receipt(status)
            page = self._client.account_statuses(me, limit=FIND_PAGE, exclude_reblogs=True)
            for _ in range(FIND_PAGES):
                if not page:
                    return None
                for status in page:
                    created = _aware(status.get("created_at"))
                    if created is not None and created < floor:
                        return None
                    if ours(status):
                        return self._receipt(status)
                page = self._client.fetch_next(page)
        except MastodonIllegalArgumentError:
            raise
        except MastodonError as err:
            failure = self._translate(err, "look for the post among the account's statuses")
            failure.transient = True
            raise failure from None
        raise PublishError(
            f"{self.base_url}: more than {FIND_PAGES * FIND_PAGE} statuses since the claim; "
            "cannot tell whether the post was made",
            "the slot is recorded as unknown once the bound passes; see `bot status`",
            transient=True,
        )

    # -- bot check / bot setup --

    def account_info(self) -> AccountInfo:
        """Verify the token: the account it posts as, its bot flag and the length limit."""
        try:
            account = self._client.account_verify_credentials()
        except MastodonError as err:
            raise self._translate(err, "verify the token", for_slot=False) from None
        return self._account_info(account)

    def mark_bot(self, note: str | None = None) -> AccountInfo:
        """Flag the account as a bot and, if given, set its profile note (the disclaimer)."""
        try:
            account = self._client.account_update_credentials(bot=True, note=note)
        except MastodonError as err:
            raise self._translate(err, "update the profile", for_slot=False) from None
        return self._account_info(account)

    # -- internals --

    def _receipt(self, status: Mapping[str, Any]) -> Receipt:
        return Receipt(
            publisher=self.name,
            remote_id=str(status["id"]),
            url=status.get("url") or status.get("uri"),
        )

    def _account_id(self) -> str:
        if self._me is None:
            self._me = str(self._client.account_verify_credentials()["id"])
        return self._me

    def _learn_limit(self, message: str, refused_length: int) -> None:
        """After a refusal for length: the limit the server named, or one below what it
        refused; never learnt upward."""
        numbers = [int(n) for n in re.findall(r"\b(\d{2,6})\b", message)]
        named = [n for n in numbers if n < refused_length]
        limit = max(named) if named else max(1, refused_length - 1)
        with self._lock:
            self._learnt = min(limit, self._learnt) if self._learnt is not None else limit
        log.warning("event=length_limit_learnt limit=%d refused_length=%d", self._learnt,
                    refused_length)  # fmt: skip

    def _instance_v1_unslashed(self) -> Any:
        """GET /api/v1/instance without the trailing slash (through Mastodon.py's own
        session, so the same timeout and headers apply)."""
        response = self._session.get(
            self.base_url + "/api/v1/instance",
            timeout=self.request_timeout_seconds,
            headers={"User-Agent": f"revenant/{__version__}"},
        )
        if response.status_code >= 500:
            raise MastodonServerError("Mastodon API returned error", response.status_code,
                                      response.reason, None)  # fmt: skip
        if response.status_code >= 400:
            raise MastodonAPIError("Mastodon API returned error", response.status_code,
                                   response.reason, None)  # fmt: skip
        try:
            return response.json()
        except ValueError as err:
            raise MastodonAPIError("Mastodon API returned error", response.status_code,
                                   "not JSON", None) from err  # fmt: skip

    def _account_info(self, account: Mapping[str, Any]) -> AccountInfo:
        return AccountInfo(
            acct=str(account["acct"]),
            bot=bool(account.get("bot")),
            url=account.get("url"),
            instance_limit=self.max_chars(),
            note=normalise_text(str(account.get("note") or ""), is_html=True),
        )

    def _read_max_chars(self) -> tuple[int, bool]:
        """(limit, definitive): definitive unless the server could not be reached or
        failed. A server that cannot be reached is not asked for its other pages, and
        the fallback is one warning per outage (later reads in it log at debug)."""
        failed: str | None = None  # the error of a read that could not be answered
        fetches = (self._client.instance_v2, self._client.instance_v1, self._instance_v1_unslashed)
        for fetch in fetches:
            try:
                instance = fetch()
            except (requests.RequestException, MastodonNetworkError) as err:
                failed = type(err).__name__
                break  # unreachable: its other pages are on the same server
            except (MastodonServerError, MastodonRatelimitError) as err:
                failed = type(err).__name__
                continue
            except MastodonError as err:  # 404 and friends: this instance has no such page
                log.info("event=instance_limit_missing error=%s", type(err).__name__)
                continue
            limit = _limit_from_instance(instance) if isinstance(instance, Mapping) else None
            if limit is not None:
                self._media_limits = _media_limits(instance)
                self._limit_unavailable = False
                return limit, True
        if failed is None:
            self._limit_unavailable = False
            return DEFAULT_MAX_CHARS, True
        level = logging.DEBUG if self._limit_unavailable else logging.WARNING
        log.log(level, "event=instance_limit_unavailable error=%s fallback=%d", failed,
                DEFAULT_MAX_CHARS)  # fmt: skip
        self._limit_unavailable = True
        return DEFAULT_MAX_CHARS, False

    def _translate(self, err: MastodonError, action: str, *, for_slot: bool = True) -> PublishError:
        """One Mastodon.py error -> one PublishError that says retry, fix, or give up;
        `for_slot` False for the account checks, which have no slot to keep."""
        hints = SLOT_HINTS if for_slot else ACCOUNT_HINTS
        return translate_error(err, action, self.base_url, self.token_env, self._retry_after, hints)

    def _retry_after(self) -> float | None:
        headers = self._last.headers
        seconds = retry_after_seconds(headers) if headers is not None else None
        if seconds is None and self._client.ratelimit_reset is not None:
            # Mastodon.py parsed the reset too (both formats, clock-corrected).
            seconds = max(0.0, float(self._client.ratelimit_reset) - time.time())
        return seconds
