"""A chosen tune as a post: the words people read, and the sound and score they get.

    text = post_text(tune, limit=500, length=len)  # "The Foggy Dew\n\nX:1\nT:The Foggy..."
    media = render_media(tune, folder, stem)       # (audio/ogg, image/png), with alt texts

The post carries the tune's ABC where the publisher's limit allows it (people who read
ABC can play it, and the persona's duplicate filter reads it back from its history);
otherwise the title and a plain description, the notation being in the score image.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.core.post import Media
from bot.music.filters import describe, with_x
from bot.music.render import render

MEDIA_ROOT = Path(tempfile.gettempdir()) / "revenant-media"  # rendered until uploaded


def post_text(tune: str, limit: int, length: Callable[[str], int] = len) -> str:
    """The post's text: the title over the ABC when it fits within `limit` (as the
    publisher counts), else the title and a description of the tune."""
    title = describe(tune).split(": a tune", 1)[0]
    full = f"{title}\n\n{with_x(tune.strip())}"
    if length(full) <= limit:
        return full
    short = describe(tune) + ". Sound and score attached."
    return short if length(short) <= limit else title[: max(1, limit)]


def carries_notation(text: str) -> bool:
    """Whether a post text made by `post_text` holds the ABC itself."""
    return "\nX:1\n" in text


def render_media(tune: str, folder: Path, stem: str) -> tuple[Media, Media]:
    """The tune's audio and score in `folder`, as a post's media with alt texts. Their
    identity is the tune's digest: a re-render of the same (written-ahead) tune is the
    same media, another tune in the same files is not."""
    done = render(tune, folder, stem=stem)
    identity = hashlib.sha256(tune.strip().encode("utf-8")).hexdigest()[:16]
    return (Media(done.audio, done.alt_audio, "audio/ogg", identity),
            Media(done.image, done.alt_image, "image/png", identity))  # fmt: skip
