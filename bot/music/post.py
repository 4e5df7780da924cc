"""A chosen tune as a post: the words people read, and the sound and score they get.

    text = post_text(tune, limit=500, length=len)  # "The Foggy Dew\n\nX:1\nT:The Foggy..."
    media = render_media(tune, folder, stem)       # (audio/ogg, image/png), with alt texts

The post carries the tune's ABC where the publisher's limit allows it (people who read
ABC can play it, and the persona's duplicate filter reads it back from its history);
otherwise the title and a plain description, the notation being in the score image.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from bot.config import registry
from bot.core.log import event
from bot.core.post import Media
from bot.music.filters import describe, with_x
from bot.music.render import render

log = logging.getLogger(__name__)

_media_roots: dict[str, Path] = {}  # temp dir -> this process's own folder in it
_media_lock = threading.Lock()


def media_folder(persona: str) -> Path:
    """Where a persona's sound and score wait until they are uploaded: under a folder of
    this process's own in the temp dir, made by mkdtemp (mode 0700, a name no one can
    guess), so another local user can neither plant a link there nor swap the files
    before the upload. One that is gone (a temp cleaner) or is no longer a private
    folder of this user (a link, another owner, open to others) is never used again:
    a new one is made. The process removes its folder when it exits."""
    with _media_lock:
        base = tempfile.gettempdir()
        root = _media_roots.get(base)
        if root is None or not _private(root):
            root = _media_roots[base] = Path(tempfile.mkdtemp(prefix="revenant-media-"))
            atexit.register(_remove, root)
    return root / persona


def _remove(folder: Path) -> None:
    """Remove this process's media folder at exit, unless it is no longer ours."""
    if _private(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _private(folder: Path) -> bool:
    """A real folder (not a link) of this user that nobody else may enter."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


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


def media_taken(
    media: tuple[Media, ...], publisher: str, persona: str, slot_key: str
) -> tuple[Media, ...]:
    """The media the publisher's network takes (Bluesky: images, no audio); what it does
    not take is left out of the post, and the log says so."""
    kind = registry.kinds().get(publisher)
    if kind is None or not media:
        return media
    taken = tuple(m for m in media if m.mime_type.startswith(kind.media_types))
    if len(taken) < len(media):
        left = ",".join(m.mime_type for m in media if m not in taken)
        event(log, "media_skipped", persona=persona, slot=slot_key,
              why="not_taken_by_publisher", publisher=publisher, types=left)  # fmt: skip
    return taken
