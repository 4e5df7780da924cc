"""What a wake composes and how it ends, and the text around a sample: the prompt filled
in, the continuation joined to it. Used by persona.py and replies.py; no model, no I/O."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from bot.core.post import Receipt
from bot.engine.candidate import Candidate, Verdict


@dataclass
class Composition:
    """What one compose() did: the first post's prompt, every verdict, and the picks in
    order (each `Candidate` carries its own prompt)."""

    prompt: str
    unknown_chars: list[str]
    verdicts: list[Verdict] = field(default_factory=list)
    chosen: list[Candidate] = field(default_factory=list)
    rounds: int = 0

    @property
    def rejected(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(v.reason for v in self.rejected if v.reason))


@dataclass(frozen=True)
class WakeResult:
    slot_key: str
    # posted | already_claimed | no_candidate | failed | unknown | late | gave_up
    outcome: str
    text: str | None = None
    receipt: Receipt | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # one line, without the hint
    hint: str | None = None


def fill_prompt(template: str, now: datetime) -> str:
    """Placeholders a prompt may carry: {date} {weekday} {month} {year} {time}, read
    from `now` as given (the persona passes its schedule's local time)."""
    values = {
        "date": now.strftime("%B %-d"),
        "weekday": now.strftime("%A"),
        "month": now.strftime("%B"),
        "year": str(now.year),
        "time": now.strftime("%H:%M"),
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


ITALICS = re.compile(r"(?<!\w)_+(?=\w)|(?<=\w)_+(?!\w)")  # Gutenberg's _emphasis_ markup


def join_post(prompt: str, continuation: str, include_prompt: bool) -> str:
    """The post text: the prompt plus what followed it, or only what followed, made to read
    as a beginning (a word cut by the prompt's end is dropped, the first letter capitalised).
    Plain-text emphasis markers (`_word_`, as in Gutenberg texts) are dropped."""
    if include_prompt:
        return ITALICS.sub("", prompt + continuation).strip()
    text = ITALICS.sub("", continuation)
    if prompt and prompt[-1].isalnum() and text[:1].isalnum():
        text = text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else ""
    text = text.lstrip(" \t\n,;:-")
    return text[:1].upper() + text[1:]
