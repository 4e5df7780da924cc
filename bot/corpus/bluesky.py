"""Scrape one Bluesky account's posts into Documents, through the `atproto` SDK.

`scrape_account(client, actor, ...)` reads the public AppView without a login
(`app.bsky.actor.getProfile`, then `app.bsky.feed.getAuthorFeed` newest first, 100 a
page, with cursor paging). It refuses an account whose owner opted out unless the caller
has consent: an opt-out tag (#nobot, #noscrape, #noai) in its description or display
name, or the `!no-unauthenticated` label (its owner asked that logged-out viewers not see
the posts, and a scraper is such a viewer; the AppView still serves them, so the check is
ours to make). Reposts are never taken (other people's words); replies to others only when
asked; self-labelled posts (`sexual`, `nudity`, `porn`, `graphic-media`), the nearest thing
Bluesky has to a content warning, only when asked. A quote post keeps its own text only.

Text comes from the record, not from HTML: mention and link facets are cut out by their
UTF-8 byte ranges (a kept link is written as the facet's full `uri`, since Bluesky
shortens link text), then `clean.py` does what it does for every importer.

The feed is always asked for `posts_with_replies` and replies are sorted out here:
`posts_no_replies` would drop every post of the account's own threads after the first,
and `posts_and_author_threads` drops a thread reply whose parent falls on another page.

Resumable like `mastodon.py`: the cursor value is JSON `{"cursor", "top", "stop"}` (the
AppView's page cursor, the first item of this walk, the newest item of the last complete
walk; items as `{"uri", "at"}`), saved after every page handed out. A complete walk makes
the next one stop at the newest post it saw.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atproto import Client, Request
from atproto.exceptions import (
    AtProtocolError,
    BadRequestError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.models.utils import get_model_as_dict

from bot import __version__
from bot.core.errors import CorpusError
from bot.corpus import Document, iso_utc, parse_iso
from bot.corpus.clean import CleanOptions, looks_like_url
from bot.corpus.mastodon import OPT_OUT_TAGS, CursorStore, Progress, require_consent

DEFAULT_APPVIEW = "https://public.api.bsky.app"  # Bluesky's public, unauthenticated AppView
PAGE_SIZE = 100  # getAuthorFeed's maximum
MAX_RATELIMIT_WAIT_S = 900.0  # the AppView's windows are minutes; anything longer is odd
RATELIMIT_RETRIES = 3
NO_UNAUTHENTICATED = "!no-unauthenticated"
# Self-labels a poster puts on their own post: Bluesky's content warnings. "gore" is the
# old name of graphic-media, still on older posts.
CW_LABELS = frozenset({"sexual", "nudity", "porn", "graphic-media", "gore"})
MENTION = "app.bsky.richtext.facet#mention"
LINK = "app.bsky.richtext.facet#link"
TAG = "app.bsky.richtext.facet#tag"
_PROFILE_URL = re.compile(r"^https?://(?:www\.)?bsky\.app/profile/(?P<actor>[^/?#]+)/?$")
_HANDLE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*$")
_DID = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]+$")


def appview_client(appview: str) -> Client:
    """An unauthenticated client of the AppView at `appview` (public reads only)."""
    request = Request(timeout=30)
    request.add_additional_header("User-Agent", f"revenant/{__version__} (bot scrape)")
    return Client(base_url=appview.rstrip("/"), request=request)


def parse_actor(text: str) -> str:
    """Accept `@alice.bsky.social`, `alice.bsky.social`, `did:plc:…` or a profile URL
    `https://bsky.app/profile/<handle-or-did>`; return the handle (lowercase) or DID."""
    text = text.strip()
    match = _PROFILE_URL.match(text)
    actor = match["actor"] if match else text
    if _DID.match(actor):
        return actor
    handle = actor.removeprefix("@").lower()
    if not _HANDLE.match(handle):
        hint = f"@{handle}.bsky.social" if re.fullmatch(r"[a-z0-9-]+", handle) else None
        raise CorpusError(
            f"{text!r} is not a Bluesky handle",
            f"did you mean {hint}?" if hint else "write it as @alice.bsky.social or did:plc:…",
        )
    return handle


def opt_out_reason(profile: Mapping[str, Any]) -> str | None:
    """Why the account's owner said no (None if they did not): the `!no-unauthenticated`
    label, or an opt-out tag (#nobot, #noscrape, #noai) in the description or name."""
    if any(label.get("val") == NO_UNAUTHENTICATED and not label.get("neg")
           for label in profile.get("labels") or []):  # fmt: skip
        return f"it asks that logged-out viewers not see its posts ({NO_UNAUTHENTICATED})"
    for text in (profile.get("description"), profile.get("displayName")):
        match = OPT_OUT_TAGS.search(str(text or ""))
        if match:
            return f"its profile says {match.group(0)}"
    return None


def facets_to_text(text: str, facets: list[Any] | None, options: CleanOptions) -> str:
    """The post's text with its facets applied (mentions out, links out or as their full
    URI, tags per `options.hashtags`), then cleaned like every importer's text. Facet
    ranges are UTF-8 byte offsets; overlapping or out-of-range facets are ignored."""
    raw = text.encode("utf-8")
    parts: list[str] = []
    end = 0
    spans = sorted(
        (f for f in facets or [] if isinstance(f, dict) and isinstance(f.get("index"), dict)),
        key=lambda f: int(f["index"].get("byteStart", -1)),
    )
    for facet in spans:
        start, stop = (
            int(facet["index"].get("byteStart", -1)),
            int(facet["index"].get("byteEnd", -1)),
        )
        if start < end or stop <= start or stop > len(raw):
            continue
        shown = raw[start:stop].decode("utf-8", errors="ignore")
        parts.append(raw[end:start].decode("utf-8", errors="ignore"))
        parts.append(_render_facet(shown, facet.get("features") or [], options))
        end = stop
    parts.append(raw[end:].decode("utf-8", errors="ignore"))
    return options.plain("".join(parts))


def _render_facet(shown: str, features: list[Any], options: CleanOptions) -> str:
    kinds = {str(f.get("$type")): f for f in features if isinstance(f, dict)}
    if MENTION in kinds:
        return ""
    if LINK in kinds:
        uri = str(kinds[LINK].get("uri") or "")
        # Bluesky shows "example.com/some-lo..." for https://example.com/some-long-path.
        as_shown = shown.strip().removesuffix("...").removesuffix("…")
        if not (looks_like_url(shown) or (as_shown and as_shown in uri)):
            return shown  # words that link somewhere: the words stay
        return f" {uri} " if options.keep_links and uri else " "
    if TAG in kinds:
        return shown if options.hashtags == "keep" else ""
    return shown


def scrape_account(
    client: Client,
    actor: str,
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

    `actor` is a handle, DID or profile URL (see `parse_actor`). The account is looked up
    and its consent checked now, so a refusal raises here, before anything is iterated (or
    written); the walk itself is lazy. `since` (aware datetime) stops the walk at older
    posts. The cursor is saved under `cursor_name` (default `scrape:bluesky:<actor>`) after
    each page has been consumed.
    """
    options = options or CleanOptions()
    skipped = skipped if skipped is not None else Counter()
    actor = parse_actor(actor)
    call = _Caller(client, actor, sleep)
    profile = get_model_as_dict(call(client.get_profile, actor))
    handle = str(profile.get("handle") or actor)
    if handle == "handle.invalid":
        handle = str(profile["did"])
    require_consent(f"@{handle}", opt_out_reason(profile), consent)
    if progress is not None:
        progress.start(profile.get("postsCount"))
    walk = _Walk(
        call=call,
        client=client,
        did=str(profile["did"]),
        source=f"bluesky:{handle}",
        options=options,
        since=since,
        store=store,
        name=cursor_name or f"scrape:bluesky:{actor}",
        progress=progress,
        skipped=skipped,
        page_size=page_size,
    )
    return walk.documents()


@dataclass(frozen=True)
class _Walk:
    """One walk down an account's author feed (what `scrape_account` set up)."""

    call: _Caller
    client: Client
    did: str
    source: str
    options: CleanOptions
    since: datetime | None
    store: CursorStore | None
    name: str
    progress: Progress | None
    skipped: Counter[str]
    page_size: int

    def documents(self) -> Iterator[Document]:
        """Page through the author feed from the saved cursor (see the module docstring)."""
        state = _load_cursor(self.store, self.name)
        stop = _mark(state["stop"])
        while True:
            page = get_model_as_dict(
                self.call(
                    self.client.get_author_feed,
                    self.did,
                    cursor=state["cursor"],
                    filter="posts_with_replies",
                    limit=self.page_size,
                )
            )
            feed = [item for item in page.get("feed") or [] if not _is_pin(item)]
            if self.progress is not None and feed:  # postsCount counts own posts only
                self.progress.advance(sum(_author(item) == self.did for item in feed))
            if feed and state["top"] is None:
                state["top"] = _item_mark(feed[0])
            finished = False
            for item in feed:
                moment = _parse(_item_mark(item)["at"])
                if stop is not None and (item["post"]["uri"] == stop[0] or _older(moment, stop[1])):
                    finished = True  # the last complete walk began here
                    break
                if self.since is not None and _older(moment, self.since):
                    finished = True
                    break
                doc = self.document(item)
                if doc is not None:
                    yield doc
            cursor = page.get("cursor")
            if finished or not page.get("feed") or not cursor or cursor == state["cursor"]:
                break
            state["cursor"] = str(cursor)
            _save_cursor(self.store, self.name, state)
        # Complete: next time, stop at the newest post this walk saw.
        final = {"cursor": None, "top": None, "stop": state["top"] or state["stop"]}
        _save_cursor(self.store, self.name, final)

    def document(self, item: Mapping[str, Any]) -> Document | None:
        """The item as a Document, or None (counted in `skipped` by reason)."""
        reason = _skip_reason(item, self.did, self.options)
        record = item["post"].get("record") or {}
        text = str(record.get("text") or "")
        text = "" if reason else facets_to_text(text, record.get("facets"), self.options)
        if not text:
            self.skipped[reason or "empty"] += 1
            return None
        return Document(
            text=text,
            created_at=_iso(record.get("createdAt")),
            source=self.source,
            id=str(item["post"]["uri"]),
            language=(record.get("langs") or [None])[0],
        )


def _author(item: Mapping[str, Any]) -> str | None:
    return item["post"].get("author", {}).get("did")


def _skip_reason(item: Mapping[str, Any], did: str, options: CleanOptions) -> str | None:
    post = item["post"]
    reason = item.get("reason") or {}
    if "repost" in str(reason.get("$type", "")) or _author(item) != did:
        return "repost"
    record = post.get("record") or {}
    reply = record.get("reply")
    if reply and not options.include_replies:
        own = f"at://{did}/"
        parent, root = reply.get("parent") or {}, reply.get("root") or {}
        if not (str(parent.get("uri", "")).startswith(own) and
                str(root.get("uri", "")).startswith(own)):  # fmt: skip
            return "reply"
    if not options.include_cw and _labels(post) & CW_LABELS:
        return "cw"
    return None


def _labels(post: Mapping[str, Any]) -> set[str]:
    """The post's label values: its self-labels and any that labelers put on it."""
    record = post.get("record") or {}
    own = (record.get("labels") or {}).get("values") or []
    given = [label for label in post.get("labels") or [] if not label.get("neg")]
    return {str(label.get("val")) for label in [*own, *given]}


def _is_pin(item: Mapping[str, Any]) -> bool:
    """A pinned post shown at the top, out of order (only asked for with includePins)."""
    return "reasonPin" in str((item.get("reason") or {}).get("$type", ""))


def _item_mark(item: Mapping[str, Any]) -> dict[str, str]:
    """Where an item sits in the feed: its post's uri and the AppView's sort time (a
    repost's time, else the earlier of the post's createdAt and indexedAt)."""
    post = item["post"]
    reason = item.get("reason") or {}
    times = [reason.get("indexedAt")] if reason.get("indexedAt") else [
        (post.get("record") or {}).get("createdAt"), post.get("indexedAt")]  # fmt: skip
    moments = [m for m in (_parse(t) for t in times) if m is not None]
    return {"uri": str(post["uri"]), "at": min(moments).isoformat() if moments else ""}


def _mark(saved: Any) -> tuple[str, datetime | None] | None:
    if not isinstance(saved, dict) or not saved.get("uri"):
        return None
    return (str(saved["uri"]), _parse(saved.get("at")))


def _older(moment: datetime | None, than: datetime | None) -> bool:
    """Strictly older; an unknown time is never older (it is kept, and the walk goes on)."""
    return moment is not None and than is not None and moment < than


def _parse(value: Any) -> datetime | None:
    try:
        return parse_iso(str(value)) if value else None
    except ValueError:
        return None


def _iso(value: Any) -> str | None:
    moment = _parse(value)
    return iso_utc(moment) if moment is not None else None


def _load_cursor(store: CursorStore | None, name: str) -> dict[str, Any]:
    state: dict[str, Any] = {"cursor": None, "top": None, "stop": None}
    raw = store.get_cursor(name) if store is not None else None
    if raw:
        try:
            saved = json.loads(raw)
        except json.JSONDecodeError:
            saved = {}
        if isinstance(saved, dict):
            state.update({key: saved.get(key) for key in state if saved.get(key)})
    return state


def _save_cursor(store: CursorStore | None, name: str, state: dict[str, Any]) -> None:
    if store is not None:
        store.set_cursor(name, json.dumps(state, sort_keys=True))


def appview_of(client: Client) -> str:
    """The AppView URL a client asks, as a user wrote it (no `/xrpc`)."""
    base = str(getattr(client, "_base_url", "") or DEFAULT_APPVIEW)  # the SDK keeps it private
    return base.removesuffix("/xrpc")


class _Caller:
    """Calls the AppView, waits out 429s, and turns SDK errors into CorpusErrors."""

    def __init__(self, client: Client, actor: str, sleep: Callable[[float], None]) -> None:
        self.actor = actor
        self.sleep = sleep
        self.appview = appview_of(client)

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        appview, actor = self.appview, self.actor
        for attempt in range(RATELIMIT_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except RateLimitExceededError as err:
                if attempt == RATELIMIT_RETRIES:
                    raise CorpusError(
                        f"{appview} keeps rate-limiting us",
                        "wait a few minutes and rerun: it resumes",
                    ) from err
                self.sleep(min(max(_wait_s(err), 1.0), MAX_RATELIMIT_WAIT_S))
            except BadRequestError as err:
                if "not found" in _detail(err).lower():
                    raise CorpusError(
                        f"no such Bluesky account: {actor} (asked {appview})",
                        "check the handle, written as @alice.bsky.social, or use its DID",
                    ) from err
                raise CorpusError(
                    f"{appview} refused the request: {_detail(err)}",
                    "check the handle and --appview URL",
                ) from err
            except UnauthorizedError as err:
                raise CorpusError(
                    f"{appview} refuses to show {actor}'s posts without a login",
                    f"ask the public AppView: --appview {DEFAULT_APPVIEW}",
                ) from err
            except NetworkError as err:  # transport failures and timeouts (and 409/413/502)
                raise CorpusError(
                    f"cannot reach the Bluesky AppView at {appview}",
                    "check --appview URL and the network; rerun to resume",
                ) from err
            except AtProtocolError as err:  # 5xx, or an answer that is not an AppView's
                raise CorpusError(
                    f"{appview} answered an error: {_detail(err)}",
                    "rerun later; the scrape resumes where it stopped",
                ) from err
        raise AssertionError("unreachable")


def _wait_s(err: RateLimitExceededError) -> float:
    """Seconds the AppView asked us to wait: Retry-After, else until RateLimit-Reset."""
    if err.retry_after is not None:
        return float(err.retry_after)
    if err.reset_at is not None:
        return (err.reset_at - datetime.now(UTC)).total_seconds()
    return 60.0


def _detail(err: AtProtocolError) -> str:
    """The server's words (`InvalidRequest: Profile not found`), on one line."""
    if isinstance(err, RequestErrorBase) and err.response is not None:
        content = err.response.content
        message = getattr(content, "message", None) or getattr(content, "error", None)
        if message:
            return " ".join(str(message).split())
    return " ".join(str(err).split()) or err.__class__.__name__
