"""What every publisher takes and returns: a Post in, a Receipt out.

The outbox (embedded default) and Mastodon publishers implement `Publisher`; the persona
pipeline never knows which one it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Visibility = Literal["public", "unlisted", "private", "direct"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "unlisted", "private", "direct")


@dataclass(frozen=True)
class Post:
    """One status to publish. `idempotency_key` is derived from persona + slot key."""

    persona: str
    text: str
    idempotency_key: str
    visibility: Visibility = "unlisted"
    spoiler_text: str = ""
    language: str | None = None
    sensitive: bool = False
    in_reply_to_id: str | None = None


@dataclass(frozen=True)
class Receipt:
    """Where a post landed: the publisher's name, the remote id and a URL if it has one."""

    publisher: str
    remote_id: str
    url: str | None = None


class Publisher(Protocol):
    name: str

    def publish(self, post: Post) -> Receipt:
        """Publish once; a retry with the same idempotency key must not post twice."""
        ...

    def max_chars(self) -> int:
        """The target's post length limit, in characters as the target counts them."""
        ...
