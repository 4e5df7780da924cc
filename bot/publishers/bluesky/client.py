"""Publish to a Bluesky account (AT Protocol) exactly once, by construction.

`BlueskyPublisher` implements `Publisher` over the `atproto` SDK. A post is written with
`com.atproto.repo.putRecord` under a record key derived from its slot (`record_key`: a
TID whose time is the slot's, or the mention's for a reply, and whose clock id comes
from the idempotency key) with `swapRecord: null`, which the PDS applies only when no
record has that key: an identical retry answers 200 and writes nothing, so a send whose
answer was lost can be repeated as it is, for ever (`key_lifetime` None, nothing to
settle). The record is a pure function of the Post, `createdAt` included (the key's
time), so every retry is identical. The SDK's typed `put_record` drops the null and
would overwrite, so the raw procedure is sent.

Sessions: one login (`com.atproto.server.createSession`, with the handle or DID and an
app password) per account, then the session is kept: in memory for every publisher of
the process, and in `$REVENANT_HOME/sessions/` (mode 0600) across restarts. The SDK
refreshes the access token before it expires; a token the server calls expired or
invalid is refreshed once, and a refresh the server refuses (revoked, or rotated by
another process) ends in a fresh login. Bluesky rate-limits logins, so `bot run`,
`bot post` and `bot check --online` all reuse the kept session.

Length is counted as Bluesky counts it: 300 graphemes (Unicode extended grapheme
clusters), and at most 3000 UTF-8 bytes (`post_length` reports a text over the byte cap
as over 300). Links, #tags and $cashtags get their facets (byte ranges) so the app shows
them as such. Language tags come from the persona's `language`; self-labels
(`graphic-media`, `sexual`, ...) only from the persona's `bluesky.self_labels`. Bluesky
has no content warning and no unlisted posts: a post with a content warning is refused
(config refuses `spoiler_text` for a Bluesky persona), and every post is public.
Images are attached as an `app.bsky.embed.images` embed (up to 4, 1 MB each, with their
alt text); audio has no place on Bluesky and is refused, never dropped silently.

Every SDK error is translated here into a `PublishError`:

    429                        transient, `retry_after` from the rate limit's reset
    5xx, 502, timeout, network transient, and `maybe_sent` for writes (a retry is safe)
    401/403, bad app password  permanent: names the environment variable and the fix
    400 and other 4xx          permanent: carries the server's own error and message

The app password and the session's tokens are never logged, repr'd or put in an error.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from atproto import Client
from atproto_client.client.session import Session, SessionEvent
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    UnauthorizedError,
)
from atproto_client.request import Request
from atproto_client.utils import facet_detection
from atproto_core.exceptions import AtProtocolError

from bot import __version__
from bot.core.errors import PublishError
from bot.core.post import Post, Receipt, normalise_text
from bot.publishers.bluesky.rules import (
    DEFAULT_PASSWORD_ENV,
    MAX_GRAPHEMES,
    MAX_IMAGE_BYTES,
    MAX_IMAGES,
    POST_COLLECTION,
    AccountInfo,
    created_at,
    post_length,
    record_key,
    web_url,
)
from bot.publishers.bluesky.xrpc import (
    _error_name,
    _is_length_refusal,
    _procedure,
    _query,
    _typed_facets,
    _uploader,
    _write_private,
    translate_error,
)

log = logging.getLogger(__name__)
_AUTH_EXPIRED = ("ExpiredToken", "InvalidToken")

# --- sessions ------------------------------------------------------------------------

_sessions: dict[tuple[str, str], str] = {}  # (pds, identifier) -> session string
_sessions_lock = threading.Lock()


def forget_sessions() -> None:
    """Drop the sessions this process keeps in memory (files stay)."""
    with _sessions_lock:
        _sessions.clear()


class BlueskyPublisher:
    """A `Publisher` for one Bluesky account. Construction makes no request."""

    name = "bluesky"
    key_lifetime: timedelta | None = None  # the record key is the slot's, for ever
    settle_seconds = 0.0  # nothing to wait for: a retry of the same record is a no-op

    def __init__(
        self,
        pds_url: str,
        identifier: str,
        password: Any,  # a bot.config.settings.Secret (or str, in tests)
        *,
        password_env: str = DEFAULT_PASSWORD_ENV,
        request_timeout_seconds: float = 10.0,
        session_path: Path | None = None,
        self_labels: tuple[str, ...] = (),
    ) -> None:
        self.pds_url = pds_url.rstrip("/")
        self.identifier = identifier.lstrip("@")
        self.password_env = password_env
        self.request_timeout_seconds = request_timeout_seconds
        self.session_path = session_path
        self.self_labels = self_labels
        self._password = password
        self._client: Client | None = None
        self._lock = threading.RLock()
        self.logins = 0  # sessions created by this publisher (logins are rate-limited)
        self.refreshes = 0  # sessions refreshed after the server refused the access token

    def __repr__(self) -> str:
        return f"BlueskyPublisher(pds_url={self.pds_url!r}, identifier={self.identifier!r})"

    # -- Publisher --

    def publish(self, post: Post) -> Receipt:
        """Write the post's record under its slot's key, create-only: the same Post always
        yields the same record, however often it is sent."""
        if post.spoiler_text:
            raise PublishError(
                "Bluesky has no content warnings",
                "remove spoiler_text from the persona, or use bluesky.self_labels",
            )
        rkey = record_key(post.idempotency_key)
        record = self._record(post)
        body = {
            "repo": self.did(),
            "collection": POST_COLLECTION,
            "rkey": rkey,
            "record": record,
            "swapRecord": None,  # create only: refused if a record has this key
            "validate": True,
        }
        try:
            answer = self._call(
                lambda c: _procedure(c, "com.atproto.repo.putRecord", body), "publish", write=True
            )
        except PublishError as failure:
            if failure.status_code == 400 and "InvalidSwap" in failure.message:
                found = self._existing(rkey, post)
                if found is not None:
                    return found
                raise PublishError(
                    f"record key {rkey} of slot {post.idempotency_key} holds a different post",
                    "nothing was overwritten; look at the account's posts",
                    status_code=400,
                ) from None
            if failure.status_code == 400 and _is_length_refusal(failure.message):
                failure.too_long = True
            raise
        receipt = Receipt(self.name, str(answer["uri"]), web_url(self.handle(), str(answer["uri"])))
        log.info(
            "event=published persona=%s remote_id=%s url=%s",
            post.persona,
            receipt.remote_id,
            receipt.url,
        )
        return receipt

    def max_chars(self) -> int:
        return MAX_GRAPHEMES

    def length(self, text: str, spoiler_text: str = "") -> int:
        return post_length(text, spoiler_text)

    def find(self, post: Post, since: datetime) -> Receipt | None:
        """The record under the post's key, when it holds the post's text; None when the
        key is free. (`since` is not needed: the key names the one place to look.)"""
        return self._existing(record_key(post.idempotency_key), post)

    # -- the account --

    def did(self) -> str:
        return self._session().did

    def handle(self) -> str:
        return self._session().handle

    def account_info(self) -> AccountInfo:
        """The account's profile, as the AppView shows it."""
        did = self.did()
        profile = self._call(
            lambda c: _query(c, "app.bsky.actor.getProfile", {"actor": did}), "read the profile"
        )
        return AccountInfo(
            did=str(profile.get("did") or did),
            handle=str(profile.get("handle") or self.handle()),
            display_name=str(profile.get("displayName") or ""),
            description=str(profile.get("description") or ""),
            labels=tuple(str(label.get("val")) for label in profile.get("labels") or ()),
        )

    def set_description(self, description: str) -> None:
        """Set the profile's description, keeping every other field of the profile record
        (swapped against the record read, so a concurrent edit is not lost)."""
        did = self.did()
        try:
            current = self._call(
                lambda c: _query(
                    c,
                    "com.atproto.repo.getRecord",
                    {"repo": did, "collection": "app.bsky.actor.profile", "rkey": "self"},
                ),
                "read the profile record",
            )
        except PublishError as failure:
            if failure.status_code != 400 or "RecordNotFound" not in failure.message:
                raise
            current = {}
        record = dict(current.get("value") or {"$type": "app.bsky.actor.profile"})
        record["description"] = description
        body: dict[str, Any] = {
            "repo": did,
            "collection": "app.bsky.actor.profile",
            "rkey": "self",
            "record": record,
            "swapRecord": current.get("cid"),
        }
        self._call(lambda c: _procedure(c, "com.atproto.repo.putRecord", body), "set the profile")

    def query(self, nsid: str, params: dict[str, Any], action: str) -> Any:
        """A read (`app.bsky.*` is served by the AppView through the PDS), with the
        session and errors handled as for posts: for the inbox and account checks."""
        return self._call(lambda c: _query(c, nsid, params), action)

    # -- records --

    def _record(self, post: Post) -> dict[str, Any]:
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": post.text,
            "createdAt": created_at(post.idempotency_key),
        }
        facets = [f.model_dump(by_alias=True, exclude_none=True)
                  for f in facet_detection.detect_facets(post.text)]  # fmt: skip
        if facets:
            record["facets"] = _typed_facets(facets)
        if post.language:
            record["langs"] = [post.language]
        if self.self_labels:
            record["labels"] = {
                "$type": "com.atproto.label.defs#selfLabels",
                "values": [{"val": v} for v in self.self_labels],
            }
        if post.in_reply_to_id:
            record["reply"] = self._reply_refs(post.in_reply_to_id)
        if post.media:
            record["embed"] = self._images(post)
        return record

    def _reply_refs(self, parent_uri: str) -> dict[str, Any]:
        """`reply.root` and `reply.parent` (uri + cid) for an answer to `parent_uri`."""
        answer = self._call(
            lambda c: _query(c, "app.bsky.feed.getPosts", {"uris": [parent_uri]}),
            "read the post replied to",
        )
        posts = answer.get("posts") or []
        if not posts:
            raise PublishError(
                f"the post replied to is gone ({parent_uri})",
                "nothing to answer",
                status_code=404,
            )
        parent = posts[0]
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root = ((parent.get("record") or {}).get("reply") or {}).get("root") or parent_ref
        return {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent_ref}

    def _images(self, post: Post) -> dict[str, Any]:
        images = []
        for media in post.media:
            if not media.mime_type.startswith("image/"):
                raise PublishError(
                    f"Bluesky posts carry images, not {media.mime_type} ({media.path.name})",
                    "post this persona to Mastodon, or set media_fallback: notation",
                )
            data = media.path.read_bytes()
            if len(data) > MAX_IMAGE_BYTES:
                raise PublishError(
                    f"{media.path.name} is {len(data)} bytes; Bluesky takes images up to "
                    f"{MAX_IMAGE_BYTES}",
                    "render a smaller image",
                )
            mime = media.mime_type or mimetypes.guess_type(media.path.name)[0] or "image/png"
            blob = self._call(_uploader(data, mime), "upload an image",
                              write=True)  # fmt: skip
            images.append({"alt": media.description, "image": blob["blob"]})
            if len(images) > MAX_IMAGES:
                raise PublishError(f"Bluesky takes {MAX_IMAGES} images a post", "attach fewer")
        return {"$type": "app.bsky.embed.images", "images": images}

    def _existing(self, rkey: str, post: Post) -> Receipt | None:
        """The record under `rkey` when it holds `post`'s text (None when the key is free)."""
        did = self.did()
        try:
            record = self._call(
                lambda c: _query(
                    c,
                    "com.atproto.repo.getRecord",
                    {"repo": did, "collection": POST_COLLECTION, "rkey": rkey},
                ),
                "look for the post",
            )
        except PublishError as failure:
            if failure.status_code == 400 and "RecordNotFound" in failure.message:
                return None
            raise
        value = record.get("value") or {}
        if normalise_text(str(value.get("text") or "")) != normalise_text(post.text):
            return None
        uri = str(record["uri"])
        return Receipt(self.name, uri, web_url(self.handle(), uri))

    # -- session and calls --

    def _session(self) -> Session:
        with self._lock:
            client = self._ensure_client()
            session = client._session
            assert session is not None  # _ensure_client logged in
            return session

    def _ensure_client(self) -> Client:
        """The client with a session: kept in memory, then from the session file, then a
        login with the app password."""
        if self._client is not None and self._client._session is not None:
            return self._client
        client = Client(base_url=self.pds_url, request=Request(
            timeout=self.request_timeout_seconds,
            headers={"User-Agent": f"revenant/{__version__}"},
        ))  # fmt: skip
        client.on_session_change(self._keep_session)
        kept = self._kept_session()
        if kept is not None:
            try:
                client.login(session_string=kept, fetch_bsky_profile=False)
            except (AtProtocolError, ValueError):
                kept = None
        if kept is None:
            self._login(client)
        self._client = client
        return client

    def _login(self, client: Client) -> None:
        secret = self._password.reveal() if hasattr(self._password, "reveal") else self._password
        try:
            client.login(self.identifier, str(secret), fetch_bsky_profile=False)
        except UnauthorizedError as err:
            raise PublishError(
                f"Bluesky refused the login of {self.identifier} at {self.pds_url} "
                f"({_error_name(err) or 'unauthorized'})",
                f"create an app password in Settings > Privacy and security > App passwords "
                f"and export {self.password_env}=<it>; check the handle",
                status_code=401,
            ) from None
        except AtProtocolError as err:
            raise self._translate(err, "log in", write=False) from None
        self.logins += 1
        log.info("event=bluesky_login account=%s pds=%s", self.identifier, self.pds_url)

    def _kept_session(self) -> str | None:
        key = (self.pds_url, self.identifier.lower())
        with _sessions_lock:
            kept = _sessions.get(key)
        if kept is None and self.session_path is not None:
            try:
                kept = self.session_path.read_text(encoding="utf-8").strip() or None
            except OSError:
                kept = None
        return kept

    def _keep_session(self, event: SessionEvent, session: Session) -> None:
        if event not in (SessionEvent.CREATE, SessionEvent.REFRESH):
            return
        encoded = session.encode()
        with _sessions_lock:
            _sessions[(self.pds_url, self.identifier.lower())] = encoded
        if self.session_path is not None:
            _write_private(self.session_path, encoded)

    def _renew(self, client: Client) -> None:
        """After the server refused the access token: a session another process kept
        since, else a refresh, else a login."""
        kept = self._kept_session()
        current = client._session.encode() if client._session is not None else None
        if kept is not None and kept != current:
            try:
                client.login(session_string=kept, fetch_bsky_profile=False)
                return
            except (AtProtocolError, ValueError):
                pass
        try:
            client._refresh_and_set_session()
            self.refreshes += 1
            log.info("event=bluesky_session_refreshed account=%s", self.identifier)
        except (BadRequestError, UnauthorizedError, LoginRequiredError):
            self._login(client)

    def _call(self, call: Callable[[Client], Any], action: str, *, write: bool = False) -> Any:
        """`call(client)` with a live session; an access token the server refuses is
        renewed once. SDK errors leave as PublishErrors."""
        with self._lock:
            client = self._ensure_client()
        for attempt in (1, 2):
            try:
                return call(client)
            except (BadRequestError, UnauthorizedError) as err:
                if attempt == 1 and _error_name(err) in _AUTH_EXPIRED:
                    with self._lock:
                        self._renew(client)
                    continue
                raise self._translate(err, action, write=write) from None
            except LoginRequiredError:
                with self._lock:
                    self._login(client)
            except AtProtocolError as err:
                raise self._translate(err, action, write=write) from None
        raise PublishError(f"Bluesky keeps asking {self.identifier} to log in ({action})",
                           "kept for the next wake", transient=True)  # fmt: skip

    def _translate(self, err: AtProtocolError, action: str, *, write: bool) -> PublishError:
        return translate_error(err, action, self.pds_url, self.identifier, self.password_env,
                               write=write)  # fmt: skip
