"""What Bluesky's rules are, without the SDK (imported by the kind at every start, so it
stays light: bot/publishers/bluesky/client.py, which loads the `atproto` SDK, is imported only
when a Bluesky persona posts or reads).

    post_length("a 👍🏽 b")                  # 5: graphemes, as Bluesky counts them
    record_key("revenant:ada:2026-11-26T14:00Z")   # "3n37thzva22xu": a TID of the slot
    session_file(home, pds, handle)         # where the session is kept (mode 0600)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grapheme

DEFAULT_PDS = "https://bsky.social"
DEFAULT_PASSWORD_ENV = "BLUESKY_APP_PASSWORD"
MAX_GRAPHEMES = 300  # app.bsky.feed.post#text maxGraphemes
MAX_BYTES = 3000  # app.bsky.feed.post#text maxLength (UTF-8 bytes)
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000  # the AppView's image blob limit
SELF_LABELS = ("graphic-media", "sexual", "nudity", "porn")  # app.bsky's self-label values
POST_COLLECTION = "app.bsky.feed.post"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_KEY_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)Z")


# --- length, record keys -----------------------------------------------------------


def post_length(text: str, spoiler_text: str = "") -> int:
    """A post's length as Bluesky counts it: graphemes, or more than MAX_GRAPHEMES when
    the text is over MAX_BYTES UTF-8 bytes. Bluesky has no content warning to count."""
    count = grapheme.length(text)
    if len(text.encode("utf-8")) > MAX_BYTES:
        return max(count, MAX_GRAPHEMES + 1)
    return count


def tid(moment: datetime, clock_id: int) -> str:
    """The AT Protocol timestamp identifier for `moment` (microseconds since the epoch,
    53 bits) and `clock_id` (10 bits): 13 characters of base32-sortable."""
    micros = (moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    if not 0 <= micros < 2**53:
        raise ValueError(f"{moment} cannot be a TID")
    value = (micros << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def key_time(idempotency_key: str) -> datetime:
    """The moment an idempotency key stands for: its slot's start (`...:2026-11-26T14:00Z`,
    `...:manual:2026-...Z`) or, for a reply, the mention's time. A ValueError when the
    key carries none (every key Revenant makes does)."""
    match = _KEY_TIME.search(idempotency_key)
    if match is None:
        raise ValueError(f"idempotency key {idempotency_key!r} carries no time")
    text = match.group(1)
    if len(text) == 16:
        text += ":00"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record_key(idempotency_key: str) -> str:
    """The record key a post is written under: a TID of the key's time, with a clock id
    from a hash of the whole key (two keys of the same moment differ)."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return tid(key_time(idempotency_key), int.from_bytes(digest[:2], "big"))


def created_at(idempotency_key: str) -> str:
    """The record's `createdAt`: the key's time, so every retry writes the same record."""
    return key_time(idempotency_key).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def web_url(handle: str, uri: str) -> str:
    """The bsky.app address of a post (`at://did/app.bsky.feed.post/rkey`)."""
    return f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}"


def session_file(home: Path, pds_url: str, identifier: str) -> Path:
    """Where the session of `identifier` at `pds_url` is kept across restarts."""
    digest = hashlib.sha256(f"{pds_url}\n{identifier.lower()}".encode()).hexdigest()[:16]
    return home / "sessions" / f"bluesky-{digest}.session"


@dataclass(frozen=True)
class AccountInfo:
    """The account a publisher posts as, read from the AppView."""

    did: str
    handle: str
    display_name: str
    description: str
    labels: tuple[str, ...]
