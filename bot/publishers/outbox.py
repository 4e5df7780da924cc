"""The local outbox, the embedded default publisher: one JSON line per post, no account.

    <outbox>/<persona>.jsonl   {"id": "ada-1", "text": ..., "idempotency_key": ..., ...}
    <outbox>/<persona>.media/  a post's media files, copied: ada-1.1.ogg, ada-1.2.png
                               (its entry lists them: "media": [{"file", "description",
                               "mime_type"}], each file relative to the outbox folder)

Same contract as the Mastodon publisher: a Post in, a Receipt out, and a second publish
with the same idempotency key returns the first Receipt without writing again (also from
another process: the file is locked while it is read and appended to). Never touches the
network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bot import config as cfg
from bot.config import registry
from bot.core.errors import PublishError
from bot.core.post import Post, Receipt

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; one daemon per outbox is still safe
    fcntl = None  # type: ignore[assignment]

MAX_CHARS = 500  # what Mastodon allows by default; the outbox mirrors it
KEY_LIFETIME: timedelta | None = None  # the outbox never forgets a key
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class Outbox:
    """Publisher that appends to <directory>/<persona>.jsonl."""

    name = "outbox"
    key_lifetime: timedelta | None = KEY_LIFETIME
    settle_seconds = 0.0  # a write is complete (fsync'd) when publish returns

    def __init__(self, directory: Path | str, *, now: Callable[[], datetime] | None = None):
        self.directory = Path(directory)
        self._now = now or (lambda: datetime.now(UTC))

    def max_chars(self) -> int:
        return MAX_CHARS

    def length(self, text: str, spoiler_text: str = "") -> int:
        """Plain characters, the content warning included (as Mastodon counts it)."""
        return plain_length(text, spoiler_text)

    def find(self, post: Post, since: datetime) -> Receipt | None:
        """The entry written with `post`'s idempotency key (the outbox keeps every key)."""
        path = self.path_for(post.persona)
        try:
            entries = self.read(post.persona)
        except OSError as err:
            raise PublishError(
                f"outbox {path}: {err.strerror or err}",
                "check that the outbox is readable",
                transient=True,
            ) from err
        for entry in entries:
            if entry.get("idempotency_key") == post.idempotency_key:
                return self._receipt(path, str(entry["id"]))
        return None

    def path_for(self, persona: str) -> Path:
        if not SAFE_NAME.match(persona):
            raise PublishError(
                f"outbox: persona name {persona!r} cannot name a file",
                "use letters, digits, '-' and '_' in persona names",
            )
        return self.directory / f"{persona}.jsonl"

    def publish(self, post: Post) -> Receipt:
        path = self.path_for(post.persona)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with _locked(path) as handle:
                content = handle.read()
                entries = _parse_entries(content)
                for entry in entries:
                    if entry.get("idempotency_key") == post.idempotency_key:
                        return self._receipt(path, str(entry["id"]))
                entry_id = f"{post.persona}-{len(entries) + 1}"
                data = {
                    "id": entry_id,
                    **{k: v for k, v in asdict(post).items() if k not in ("persona", "media")},
                    **self._store_media(post, entry_id),
                    "created_at_utc": self._now()
                    .astimezone(UTC)
                    .isoformat(timespec="seconds")
                    .replace("+00:00", "Z"),
                }
                line = json.dumps(data, ensure_ascii=False) + "\n"
                if content and not content.endswith("\n"):
                    line = "\n" + line  # a torn last line from a crash stays on its own line
                handle.write(line)  # "a+" mode: always appended
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise PublishError(
                f"outbox {path}: {err.strerror or err}",
                "check that REVENANT_HOME, or `outbox:` in config.yaml, is a writable folder",
            ) from err
        return self._receipt(path, entry_id)

    def _store_media(self, post: Post, entry_id: str) -> dict[str, Any]:
        """Copy the post's media next to the JSONL (before the line that names them is
        written, so an entry never points at a missing file); the entry's "media"."""
        if not post.media:
            return {}
        folder = self.directory / f"{post.persona}.media"
        folder.mkdir(parents=True, exist_ok=True)
        listed = []
        for number, media in enumerate(post.media, 1):
            target = folder / f"{entry_id}.{number}{media.path.suffix}"
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(media.path, tmp)
            tmp.replace(target)
            listed.append({"file": target.relative_to(self.directory).as_posix(),
                           "description": media.description,
                           "mime_type": media.mime_type})  # fmt: skip
        return {"media": listed}

    def read(self, persona: str) -> list[dict[str, Any]]:
        """Every entry in the persona's outbox, oldest first."""
        path = self.path_for(persona)
        if not path.exists():
            return []
        return _parse_entries(path.read_text(encoding="utf-8"))

    def _receipt(self, path: Path, entry_id: str) -> Receipt:
        return Receipt(
            publisher=self.name, remote_id=entry_id, url=f"{path.resolve().as_uri()}#{entry_id}"
        )


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    with path.open("a+", encoding="utf-8") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.seek(0)
            yield handle
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _parse_entries(content: str) -> list[dict[str, Any]]:
    entries = []
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash mid-write: not a post
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def plain_length(text: str, spoiler_text: str = "") -> int:
    """Plain characters, the content warning included (as Mastodon counts it)."""
    return len(text) + len(spoiler_text)


def _describe(config: cfg.Config, persona: cfg.PersonaSettings) -> str:
    return f"outbox {config.outbox / (persona.name + '.jsonl')}"


KIND = registry.register(
    registry.PublisherKind(
        name="outbox",
        build=lambda config, persona: Outbox(config.outbox),
        length=plain_length,
        key_lifetime=KEY_LIFETIME,
        describe=_describe,
        media_types=("",),  # the files are copied, whatever they are
    )
)
