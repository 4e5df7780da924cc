"""Scrape one Mastodon account's public posts into Documents, through Mastodon.py.

`scrape_account(client, acct, ...)` looks the account up, refuses it if its owner opted
out (see `opt_out_reason`) unless the caller has consent, then walks its statuses newest
first, 40 a page, with `max_id` paging. Boosts are never taken (other people's words);
replies to others, content-warned and sensitive posts only when asked; followers-only
and direct posts never. Rate limits are respected: a client built with
`ratelimit_method="pace"` spreads its calls, and a 429 (`MastodonRatelimitError`) waits
for the reset and retries.

Resumable: with a cursor store (anything with `get_cursor(name)` / `set_cursor(name,
value)`, such as `bot.store.Store`) the walk saves its place after every page it has
handed out, so an interrupted scrape resumes where it stopped, and a finished one later
fetches only newer posts. The cursor value is JSON: `{"since_id", "max_id", "top"}`.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlparse

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)

from bot.core.errors import CorpusError
from bot.corpus import Document, iso_utc
from bot.corpus.clean import CleanOptions, html_to_text

PAGE_SIZE = 40  # Mastodon's maximum for account statuses
MAX_RATELIMIT_WAIT_S = 900.0  # Mastodon's windows are 5 minutes; anything longer is odd
RATELIMIT_RETRIES = 3
CONSENT_FLAG = "--i-have-consent"
# Profile words that mean "do not take my posts". #nobot is the fediverse convention that
# bots honour (mstdn-ebooks too); #noscrape and #noai say the same about crawlers and
# training, which is exactly what this is.
OPT_OUT_TAGS = re.compile(r"(?<![\w#])#no(?:bot|scrape|ai)\b", re.IGNORECASE)
_PROFILE_URL = re.compile(r"^https?://(?P<host>[^/]+)/@(?P<user>[^/@]+)/?$")


class CursorStore(Protocol):
    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...


class Progress(Protocol):
    """What the scraper reports: `start(total statuses or None)`, then `advance(n)` per page."""

    def start(self, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


@dataclass(frozen=True)
class Handle:
    """`@user@host` split; `host` is None for a bare `user` (local to the client's server)."""

    user: str
    host: str | None

    @property
    def acct(self) -> str:
        return f"{self.user}@{self.host}" if self.host else self.user


def parse_acct(text: str) -> Handle:
    """Accept `@user@host`, `user@host`, `user` or a profile URL `https://host/@user`."""
    text = text.strip()
    match = _PROFILE_URL.match(text)
    if match:
        return Handle(match["user"], match["host"])
    user, _, host = text.lstrip("@").partition("@")
    if not user or not re.fullmatch(r"[\w.-]+", user) or "@" in host or " " in host:
        raise CorpusError(f"{text!r} is not an account address", "write it as @user@instance")
    return Handle(user, host or None)


def opt_out_reason(account: Any) -> str | None:
    """Why the account's owner said no (None if they did not): `noindex` (hide me from
    search engines), `discoverable: false` (keep me out of discovery), or an opt-out
    hashtag (#nobot, #noscrape, #noai) in the bio or a profile field."""
    if account.get("noindex") is True:
        return "noindex is set"
    if account.get("discoverable") is False:
        return "discoverable is off"
    fields = account.get("fields") or []
    profile = [str(account.get("note") or "")]
    profile += [f"{field.get('name', '')} {field.get('value', '')}" for field in fields]
    for html in profile:
        match = OPT_OUT_TAGS.search(html_to_text(html))
        if match:
            return f"its profile says {match.group(0)}"
    return None


def require_consent(who: str, reason: str | None, consent: bool) -> None:
    """The one-line refusal of an account whose owner opted out (`reason`), unless the
    caller has their consent (CONSENT_FLAG). Shared by every live scraper."""
    if reason and not consent:
        raise CorpusError(
            f"{who} opted out of scraping: {reason}",
            f"pass {CONSENT_FLAG} only if its owner agreed to this use of their posts",
        )


def scrape_account(
    client: Mastodon,
    acct: str,
    *,
    options: CleanOptions | None = None,
    consent: bool = False,
    since: datetime | None = None,
    store: CursorStore | None = None,
    cursor_name: str | None = None,
    progress: Progress | None = None,
    skipped: Counter[str] | None = None,
    page_size: int = PAGE_SIZE,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Document]:
    """The account's posts as Documents, newest first (see the module docstring).

    `since` (aware datetime) stops the walk at older posts. The cursor is saved under
    `cursor_name` (default `scrape:mastodon:<acct>`) after each page has been consumed.
    """
    options = options or CleanOptions()
    skipped = skipped if skipped is not None else Counter()
    call = _Caller(client, acct, sleep)
    account = _lookup(client, call, acct)
    require_consent(f"@{account.get('acct', acct)}", opt_out_reason(account), consent)
    if progress is not None:
        progress.start(account.get("statuses_count"))
    name = cursor_name or f"scrape:mastodon:{acct.lower()}"
    state = _load_cursor(store, name)
    source = f"mastodon:{account.get('acct', acct)}"
    while True:
        page = call(
            client.account_statuses,
            account["id"],
            max_id=state["max_id"],
            since_id=state["since_id"],
            limit=page_size,
            exclude_reblogs=True,
            exclude_replies=not options.include_replies,
        )
        if not page:
            break
        if progress is not None:
            progress.advance(len(page))
        state["top"] = state["top"] or str(page[0]["id"])
        reached_since = False
        for status in page:
            if since is not None and status["created_at"] < since:
                reached_since = True
                break
            reason = _skip_reason(status, account["id"], options)
            text = "" if reason else options.html(status.get("content") or "")
            if not text:
                skipped[reason or "empty"] += 1
                continue
            yield Document(
                text=text,
                created_at=iso_utc(status["created_at"]),
                source=source,
                id=str(status.get("uri") or status.get("url") or status["id"]),
                language=status.get("language"),
            )
        if reached_since:
            break  # everything since that date is in: count the walk as complete
        state["max_id"] = str(page[-1]["id"])
        _save_cursor(store, name, state)
    # Complete: next time, fetch only what is newer than the newest post seen.
    _save_cursor(
        store, name, {"since_id": state["top"] or state["since_id"], "max_id": None, "top": None}
    )


def _lookup(client: Mastodon, call: _Caller, acct: str) -> Any:
    """The account by handle. A bare `user` that the server does not resolve (some servers
    only resolve full handles) is asked for again as `user@<the server's domain>`."""
    try:
        return call(client.account_lookup, acct)
    except CorpusError as err:
        if "@" in acct or not isinstance(err.__cause__, MastodonNotFoundError):
            raise
    domain = _instance_domain(client) or call.instance
    return _Caller(client, f"{acct}@{domain}", call.sleep)(client.account_lookup,
                                                            f"{acct}@{domain}")  # fmt: skip


def _instance_domain(client: Mastodon) -> str | None:
    """The server's own domain (v2 `domain`, v1 `uri`), which may differ from its API host."""
    for fetch, key in ((client.instance_v2, "domain"), (client.instance_v1, "uri")):
        try:
            value = fetch().get(key)
        except MastodonError:
            continue
        if isinstance(value, str) and value:
            return value.split("://")[-1].strip("/")
    return None


def _skip_reason(status: Any, account_id: Any, options: CleanOptions) -> str | None:
    if status.get("reblog"):
        return "boost"
    if status.get("visibility") not in ("public", "unlisted"):
        return "private"
    reply_to = status.get("in_reply_to_account_id")
    own_thread = str(reply_to) == str(account_id)
    if status.get("in_reply_to_id") and not own_thread and not options.include_replies:
        return "reply"
    if (status.get("spoiler_text") or status.get("sensitive")) and not options.include_cw:
        return "cw"
    return None


def _load_cursor(store: CursorStore | None, name: str) -> dict[str, str | None]:
    state: dict[str, str | None] = {"since_id": None, "max_id": None, "top": None}
    raw = store.get_cursor(name) if store is not None else None
    if raw:
        try:
            saved = json.loads(raw)
        except json.JSONDecodeError:
            saved = {}
        if isinstance(saved, dict):
            state.update({key: saved.get(key) for key in state if saved.get(key)})
    return state


def _save_cursor(store: CursorStore | None, name: str, state: dict[str, str | None]) -> None:
    if store is not None:
        store.set_cursor(name, json.dumps(state, sort_keys=True))


class _Caller:
    """Calls the API, waits out 429s, and turns Mastodon.py errors into CorpusErrors."""

    def __init__(self, client: Mastodon, acct: str, sleep: Callable[[float], None]) -> None:
        self.client = client
        self.acct = acct
        self.sleep = sleep
        self.instance = urlparse(str(client.api_base_url)).netloc or "the server"

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        instance, acct = self.instance, self.acct
        for attempt in range(RATELIMIT_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except MastodonRatelimitError as err:
                if attempt == RATELIMIT_RETRIES:
                    raise CorpusError(
                        f"{instance} keeps rate-limiting us",
                        "wait a few minutes and rerun: it resumes",
                    ) from err
                reset = getattr(self.client, "ratelimit_reset", None)
                wait = float(reset) - time.time() if reset else 60.0
                self.sleep(min(max(wait, 1.0), MAX_RATELIMIT_WAIT_S))
            except MastodonNotFoundError as err:
                raise CorpusError(
                    f"no account {acct} on {instance}",
                    "check the address, written as @user@instance",
                ) from err
            except MastodonUnauthorizedError as err:
                raise CorpusError(
                    f"{instance} refuses to list {acct}'s posts without a login",
                    "put an access token for that instance in an environment variable and"
                    " name it with --token-env NAME",
                ) from err
            except MastodonNetworkError as err:
                raise CorpusError(
                    f"cannot reach {instance}", "check the address and the network; rerun to resume"
                ) from err
            except MastodonAPIError as err:
                raise CorpusError(
                    f"{instance} answered an error: {err}",
                    "rerun later; the scrape resumes where it stopped",
                ) from err
        raise AssertionError("unreachable")
