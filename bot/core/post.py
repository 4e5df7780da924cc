"""What every publisher takes and returns: a Post in, a Receipt out.

The outbox (embedded default) and Mastodon publishers implement `Publisher`; the persona
pipeline never knows which one it talks to.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal, Protocol

Visibility = Literal["public", "unlisted", "private", "direct"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "unlisted", "private", "direct")


@dataclass(frozen=True)
class Media:
    """A file attached to a post (a tune's audio or score), with its alt text. `identity`
    names what the file holds (a tune's digest: every render of one tune has it; "" =
    the file's bytes): a retried post reuses an upload only of the same identity."""

    path: Path
    description: str  # alt text: what a screen reader says instead of the file
    mime_type: str  # e.g. "audio/ogg", "image/png"
    identity: str = ""


@dataclass(frozen=True)
class Post:
    """One status to publish. `idempotency_key` is derived from persona + slot key.
    `media` are attached in order; a publisher without media support refuses a post
    that has any (a `PublishError`), never drops them silently."""

    persona: str
    text: str
    idempotency_key: str
    visibility: Visibility = "unlisted"
    spoiler_text: str = ""
    language: str | None = None
    sensitive: bool = False
    in_reply_to_id: str | None = None
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class Receipt:
    """Where a post landed: the publisher's name, the remote id and a URL if it has one."""

    publisher: str
    remote_id: str
    url: str | None = None


class Publisher(Protocol):
    """What the persona pipeline needs from a target. Besides publishing, each publisher
    owns its length rule, how long it remembers an idempotency key (`key_lifetime`, None
    = forever), how long after a send it may still apply it (`settle_seconds`), and how
    to look for a post among the account's own (`find`)."""

    name: str
    key_lifetime: timedelta | None
    settle_seconds: float

    def publish(self, post: Post) -> Receipt:
        """Publish once, sending `post.idempotency_key` where the target takes one. A
        target may forget or ignore the key, so callers never re-send on it alone: an
        error with `maybe_sent` is followed by `find` (bot/posting/delivery.py)."""
        ...

    def max_chars(self) -> int:
        """The target's post length limit, in characters as the target counts them."""
        ...

    def length(self, text: str, spoiler_text: str = "") -> int:
        """A post's length as the target counts it, content warning included."""
        ...

    def find(self, post: Post, since: datetime) -> Receipt | None:
        """The account's own post matching `post` (its text as the target renders it,
        content warning and reply target) created at or after `since`, or None when
        there is none. Raises PublishError when it cannot tell."""
        ...


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_REMOTE_MENTION = re.compile(r"(?<![\w@])@([\w.-]+)@[\w.-]+\w")


def normalise_text(text: str, *, is_html: bool = False) -> str:
    """Text as a comparison key: HTML (as servers render statuses) to plain text, Unicode
    NFC, whitespace collapsed, `@user@domain` as `@user` (how servers show mentions)."""
    if is_html:
        parser = _PlainText()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    text = unicodedata.normalize("NFC", text)
    text = _REMOTE_MENTION.sub(r"@\1", text)
    return " ".join(text.split())
