"""What every `bot scrape` runs its documents through: the `--since` cut, the language
filter, exact and near deduplication, and the JSONL file written atomically (or appended
to, its posts seeding the deduper), with counts of what each stage removed."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from bot.core.errors import CorpusError
from bot.corpus import Document, read_jsonl, write_jsonl
from bot.corpus.clean import filter_language
from bot.corpus.stats import CorpusStats, compute_stats


class PipelineStats:
    """What the pipeline removed, and the stats of the corpus it wrote."""

    def __init__(self) -> None:
        self.removed: Counter[str] = Counter()
        self.written = 0
        self.corpus: CorpusStats | None = None


def run_pipeline(
    docs: Iterable[Document],
    out: Path,
    *,
    limit: int | None = None,
    language: str | None = None,
    since: datetime | None = None,
    append: bool = False,
    near_dedupe: bool = True,
) -> PipelineStats:
    """Filter, dedupe and write `docs` to `out` ('-' = stdout). `append` keeps what `out`
    holds (its posts seed the deduper); otherwise `out` is replaced atomically at the end.
    Raises CorpusError when a fresh corpus would be empty."""
    from bot.corpus.dedupe import Deduper, dedupe

    result = PipelineStats()
    deduper = Deduper(near=near_dedupe)  # tunes: exact only (bot/corpus/abc.py dedupes bodies)
    to_stdout = out == Path("-")
    existing = list(read_jsonl(out)) if append and not to_stdout and out.exists() else []
    for doc in existing:
        deduper.check(doc.text)
    seen: Counter[str] = Counter()  # posts reaching each stage, to report what each dropped
    stream = _counted(iter(docs), seen, "in")
    if since is not None:
        cutoff = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        stream = (d for d in stream if d.created_at is None or d.created_at >= cutoff)
    stream = _counted(filter_language(_counted(stream, seen, "since"), language), seen, "lang")
    stream = dedupe(stream, deduper)
    written: list[Document] = []
    if to_stdout:
        _write_limited(stream, sys.stdout, limit, written)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        target = out if append else out.with_name(out.name + ".tmp")
        with target.open("a" if append else "w", encoding="utf-8") as handle:
            _write_limited(stream, handle, limit, written)
        if not append:
            if not written:
                target.unlink()
                raise CorpusError(
                    "no posts left to write", "check the filters (--language, --since, --include-*)"
                )
            target.replace(out)
    result.written = len(written)
    result.removed.update(
        {
            "before_since": seen["in"] - seen["since"],
            "other_language": seen["since"] - seen["lang"],
            **{f"{kind}_duplicate": count for kind, count in deduper.removed.items()},
        }
    )
    result.removed = +result.removed  # drop the zero counts
    result.corpus = compute_stats(existing + written)
    return result


def _write_limited(
    stream: Iterator[Document], handle: IO[str], limit: int | None, written: list[Document]
) -> None:
    def take() -> Iterator[Document]:
        for doc in stream:
            written.append(doc)
            yield doc
            if limit is not None and len(written) >= limit:
                return

    write_jsonl(take(), handle)


def _counted(stream: Iterator[Document], counter: Counter[str], key: str) -> Iterator[Document]:
    for doc in stream:
        counter[key] += 1
        yield doc
