"""The corpus report printed at the end of `bot scrape`: size, alphabet, date range.

A char-level model cares about characters, so the report counts them: the vocabulary
size is the number of distinct characters, and the most common ones show at a glance
whether stray markup or a foreign script slipped in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.corpus import Document


@dataclass(frozen=True)
class CorpusStats:
    posts: int
    characters: int
    vocab_size: int  # distinct characters
    top_chars: tuple[tuple[str, int], ...]  # most common first
    first_date: str | None  # ISO-8601 UTC, or None when no post carries a date
    last_date: str | None

    def format(self) -> str:
        """Human lines for the terminal (the wording may change; the fields will not)."""
        shown = " ".join(f"{char!r}:{count}" for char, count in self.top_chars)
        dates = f"{self.first_date} .. {self.last_date}" if self.first_date else "no dates"
        return (
            f"posts: {self.posts}\n"
            f"characters: {self.characters}\n"
            f"vocabulary: {self.vocab_size} distinct characters\n"
            f"most common: {shown}\n"
            f"dates: {dates}"
        )


def compute_stats(docs: Iterable[Document], *, top: int = 10) -> CorpusStats:
    """Stats over documents (ISO-8601 UTC strings compare in time order, so min/max of
    the strings is the date range)."""
    chars: Counter[str] = Counter()
    posts = 0
    dates: list[str] = []
    for doc in docs:
        posts += 1
        chars.update(doc.text)
        if doc.created_at:
            dates.append(doc.created_at)
    return CorpusStats(
        posts=posts,
        characters=sum(chars.values()),
        vocab_size=len(chars),
        top_chars=tuple(chars.most_common(top)),
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
    )
