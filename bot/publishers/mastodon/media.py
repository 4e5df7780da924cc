"""Media for a Mastodon post: each file uploaded once per idempotency key and content (a
retried publish reuses its uploads, so each is attached once; a post composed again
under the same key, after a refusal for length, gets uploads of its own media), checked
against the instance's size limits first, and waited for while the server processes it
(202, then ready). A mixin of `MastodonPublisher` (bot/publishers/mastodon/client.py)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mastodon import Mastodon, MastodonError, MastodonIllegalArgumentError

from bot.core.errors import PublishError
from bot.core.post import Media, Post

MEDIA_POLL_SECONDS = 1.0  # between looks at an upload that is processing

UploadKey = tuple[str, str, str, str]  # idempotency key, file, identity, alt text


def upload_key(post: Post, media: Media) -> UploadKey:
    """What an upload may be reused for: the same post (key), file, content (the media's
    identity, else a digest of the file) and alt text."""
    identity = media.identity or hashlib.sha256(media.path.read_bytes()).hexdigest()
    return (post.idempotency_key, str(media.path), identity, media.description)


class MediaUploads:
    """`_upload_media`: the attachment ids of a post's media."""

    if TYPE_CHECKING:  # provided by MastodonPublisher
        base_url: str
        media_wait_seconds: float
        _client: Mastodon
        _lock: threading.Lock
        _uploaded: dict[UploadKey, str]
        _media_limits: dict[str, int]
        _limit_unavailable: bool
        _sleep: Callable[[float], Any]

        def max_chars(self) -> int: ...

        def _translate(self, err: MastodonError, action: str) -> PublishError: ...

    def _upload_media(self, post: Post) -> list[str]:
        """The attachment ids for the post's media, uploading each file at most once per
        idempotency key and content in this process (`upload_key`), then waiting until the server has processed it
        (Mastodon answers an upload 202 with `url: null` while it transcodes). A failed
        upload is a PublishError that is never `maybe_sent`: no status was sent."""
        self.max_chars()  # reads the instance once: its media limits come with it
        host = urlsplit(self.base_url).netloc or self.base_url
        if self._limit_unavailable:  # media_post would read it again, and again (below)
            raise self._version_unreadable(host)
        for media in post.media:
            kind = media.mime_type.split("/", 1)[0]
            limit = self._media_limits.get(kind)
            size = media.path.stat().st_size
            if limit is not None and size > limit:
                raise PublishError(
                    f"{host} takes {kind} files up to {limit:,} bytes; {media.path.name} "
                    f"has {size:,}",
                    "shorter tunes make smaller files: lower the persona's filters.max_chars",
                )
        ids = []
        for media in post.media:
            slot = upload_key(post, media)
            try:
                with self._lock:
                    media_id = self._uploaded.get(slot)
                if media_id is None:
                    attachment = self._client.media_post(
                        str(media.path), mime_type=media.mime_type, description=media.description
                    )
                    media_id = str(attachment["id"])
                    with self._lock:
                        self._uploaded[slot] = media_id
                    ready = attachment.get("url") is not None
                else:
                    ready = False
                if not ready:
                    self._wait_processed(media_id)
            except MastodonIllegalArgumentError:
                raise
            except MastodonError as err:
                failure = self._translate(err, "upload media")
                failure.maybe_sent = False  # the status itself was not sent
                raise failure from None
            except RecursionError:
                raise self._version_unreadable(host) from None
            ids.append(media_id)
        return ids

    @staticmethod
    def _version_unreadable(host: str) -> PublishError:
        """`media_post` asks the instance for its version first (v1 or v2 upload), and
        when that read fails Mastodon.py asks again from inside its own check until the
        stack runs out (mastodon.py 2.x): a failing instance endpoint, so retry later."""
        return PublishError(
            f"could not read {host}'s version before uploading media (its instance "
            "endpoint failed)",
            "the slot is kept and retried; no status was sent",
            transient=True,
        )

    def _wait_processed(self, media_id: str) -> None:
        deadline = time.monotonic() + self.media_wait_seconds
        while True:
            attachment = self._client.media(media_id)
            if attachment.get("url") is not None:
                return
            if time.monotonic() >= deadline:
                raise PublishError(
                    f"{self.base_url} still processing media {media_id} after "
                    f"{self.media_wait_seconds:.0f} s",
                    "the slot is kept and retried; the upload is reused",
                    transient=True,
                )
            self._sleep(MEDIA_POLL_SECONDS)
