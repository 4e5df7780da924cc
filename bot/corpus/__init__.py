"""Corpus: the one format every importer writes and the trainer reads.

A corpus is a JSONL file, one post per line: {"text", "created_at", "source", "id"}.
The trainer only needs "text"; the other keys say where a post came from, so a corpus
can be audited, deduplicated and resumed. Importers live in `archive.py` (Mastodon and
Twitter/X exports), `text.py` (plain text, Project Gutenberg) and `mastodon.py` (a live
account); `clean.py` turns HTML into text; `hygiene.py` takes a book's contents, headings,
section numbers, footnotes and notes out of the text the trainer reads. This package never imports TensorFlow and
never touches the network itself (only `mastodon.py`, through the client it is given).

`hygiene.py` keeps a book's prose (no contents, headings, numbers, notes) and `pipeline.py`
filters, dedupes and writes what every `bot scrape` gathers.

Offline: read by `bot.commands` and `bot.train`; the daemon uses only `clean.py` (a
mention's HTML as text). May import: `bot.config`, `bot.core`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bot.core.errors import CorpusError


@dataclass(frozen=True)
class Document:
    """One post. `created_at` is ISO-8601 UTC (`2024-05-01T12:00:00Z`) or None if unknown.

    `language` is what the source declared (Mastodon `language`, Twitter `lang`), used by
    the language filter; it is not written to the JSONL.
    """

    text: str
    created_at: str | None
    source: str
    id: str
    language: str | None = field(default=None, compare=False)

    def to_json(self) -> str:
        record = {
            "text": self.text,
            "created_at": self.created_at,
            "source": self.source,
            "id": self.id,
        }
        return json.dumps(record, ensure_ascii=False)


def iso_utc(moment: datetime) -> str:
    """Format an aware (or naive = UTC) datetime as `YYYY-MM-DDTHH:MM:SSZ`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (a trailing Z included); naive means UTC."""
    moment = datetime.fromisoformat(value)  # 3.11+ reads a trailing Z
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def write_jsonl(docs: Iterable[Document], out: IO[str]) -> int:
    """Write one JSON object per line; return how many were written. Flushes per line,
    so an interrupted scrape leaves only whole lines behind."""
    count = 0
    for doc in docs:
        out.write(doc.to_json() + "\n")
        out.flush()
        count += 1
    return count


def read_jsonl(path: Path) -> Iterator[Document]:
    """Read a corpus JSONL back (records need "text"; other keys are optional)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text = record["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise CorpusError(
                        f"{path}:{lineno} is not a corpus record ({err.__class__.__name__})",
                        'each line must be a JSON object with a "text" field',
                    ) from err
                yield Document(
                    text=str(text),
                    created_at=record.get("created_at"),
                    source=str(record.get("source", path.name)),
                    id=str(record.get("id", lineno)),
                )
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path} is not UTF-8", "re-save the file as UTF-8") from err
