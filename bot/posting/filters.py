"""Candidate filters and ranking: what turns raw samples into posts an owner is proud of.

Each filter looks at one candidate and returns a stable snake_case reason when it rejects
(stored in the store, counted by `bot status`, asserted in tests), or None. `apply` runs
them cheapest first and stops at the first rejection. NumPy and the standard library only.

Reasons: has_mention, has_url, too_short, too_long, garbage, unbalanced, unfinished,
blocklisted, duplicate, not_novel.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from importlib import resources
from typing import Literal

import numpy as np

from bot.engine.candidate import Candidate, Verdict
from bot.engine.novelty import longest_shared_run

REASONS = (
    "has_mention",
    "has_url",
    "too_short",
    "too_long",
    "garbage",
    "unbalanced",
    "unfinished",
    "blocklisted",
    "duplicate",
    "not_novel",
)

MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?")
URL = re.compile(
    r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|social|"
    r"de|uk|fr|info|co|me|ly|gl|gd|app|dev|xyz)(?:/\S*)?\b"
)
LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s",
                      "$": "s", "7": "t", "+": "t", "|": "l"})  # fmt: skip
PAIRS = {"(": ")", "[": "]", "{": "}"}
FINISHED = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")  # a post ends like a sentence
MAX_COMPRESSION = 0.30  # zlib ratio below this reads as a loop ("the the the ...")
MIN_LETTER_FRACTION = 0.60  # letters among non-space characters
SHINGLE = 5  # characters per shingle for near-duplicate detection


def default_blocklist() -> list[str]:
    """better-profanity's maintained word list (MIT), one entry per line."""
    text = (resources.files("better_profanity") / "profanity_wordlist.txt").read_text("utf-8")
    return [w.strip() for w in text.splitlines() if w.strip()]


@dataclass
class Rules:
    """Everything the filters need, built once per persona (and per wake for history)."""

    min_chars: int = 20
    max_chars: int = 500
    length: Callable[[str], int] = len  # the target's own count (Mastodon: URLs count 23)
    blocklist: Sequence[str] = ()
    novelty_index: np.ndarray | None = None
    novelty_n: int = 8  # words per indexed n-gram
    novelty_words: int = 8  # a shared run this long is a quotation, not a new post
    history: Sequence[str] = ()  # the persona's recent posts, newest first
    duplicate_jaccard: float = 0.6
    mentions: Literal["reject", "strip"] = "reject"
    urls: Literal["reject", "strip"] = "reject"
    _seen: list[set[str]] | None = field(default=None, init=False, repr=False)

    @cached_property
    def blocked(self) -> re.Pattern[str] | None:
        # Once per Rules; the compiled pattern itself is shared across Rules by the cache.
        return _blocklist_pattern(tuple(self.blocklist))

    @property
    def history_shingles(self) -> list[set[str]]:
        """Shingles of the history, computed once, plus everything `remember`ed since."""
        if self._seen is None:
            self._seen = [shingles(t) for t in self.history]
        return self._seen

    def remember(self, text: str) -> None:
        """Count a freshly chosen post as history, so later rounds never repeat it."""
        self.history_shingles.append(shingles(text))


@lru_cache(maxsize=16)
def _blocklist_pattern(blocklist: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for the whole list, compiled once per distinct list (~900 words)."""
    words = sorted({w.lower().translate(LEET) for w in blocklist if w.strip()}, key=len)
    if not words:
        return None
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in reversed(words))
    return re.compile(rf"(?<![a-z])(?:{alternatives})(?![a-z])")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def shingles(text: str) -> set[str]:
    t = _normal(text)
    return {t[i : i + SHINGLE] for i in range(max(1, len(t) - SHINGLE + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def is_balanced(text: str) -> bool:
    """Brackets nest and close; double quotes pair up (straight or curly)."""
    stack: list[str] = []
    for ch in text:
        if ch in PAIRS:
            stack.append(PAIRS[ch])
        elif ch in PAIRS.values() and (not stack or stack.pop() != ch):
            return False
    if stack:
        return False
    return text.count('"') % 2 == 0 and text.count("\u201c") == text.count("\u201d")


def is_garbage(text: str) -> bool:
    """Loops (text that compresses too well) or too few letters to read as prose."""
    dense = re.sub(r"\s", "", text)
    if not dense:
        return True
    if sum(ch.isalpha() for ch in dense) / len(dense) < MIN_LETTER_FRACTION:
        return True
    raw = text.encode("utf-8")
    return len(raw) >= 80 and len(zlib.compress(raw, 9)) / len(raw) < MAX_COMPRESSION


def strip_unwanted(text: str, rules: Rules) -> str:
    if rules.mentions == "strip":
        text = MENTION.sub("", text)
    if rules.urls == "strip":
        text = URL.sub("", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def judge(candidate: Candidate, rules: Rules) -> Verdict:
    """One candidate -> Verdict; cheap checks first, the first failing one names the reason."""
    text = strip_unwanted(candidate.text, rules)
    candidate = replace(candidate, text=text)

    def reject(reason: str) -> Verdict:
        return Verdict(candidate, reason)

    if MENTION.search(text):
        return reject("has_mention")
    if URL.search(text):
        return reject("has_url")
    if len(text) < rules.min_chars:
        return reject("too_short")
    if rules.length(text) > rules.max_chars:
        return reject("too_long")
    if is_garbage(text):
        return reject("garbage")
    if not is_balanced(text):
        return reject("unbalanced")
    if not FINISHED.search(text):
        return reject("unfinished")
    if rules.blocked is not None and rules.blocked.search(_normal(text).translate(LEET)):
        return reject("blocklisted")
    if rules.history_shingles:  # the past posts plus picks remembered this compose
        mine = shingles(text)
        if any(jaccard(mine, old) >= rules.duplicate_jaccard for old in rules.history_shingles):
            return reject("duplicate")
    if rules.novelty_index is not None and (
        longest_shared_run(text, rules.novelty_index, rules.novelty_n) >= rules.novelty_words
    ):
        return reject("not_novel")
    return Verdict(candidate, None)


def apply(candidates: Iterable[Candidate], rules: Rules) -> list[Verdict]:
    """Judge every candidate; survivors are also checked against each other for duplicates."""
    verdicts: list[Verdict] = []
    kept: list[set[str]] = []
    for cand in candidates:
        verdict = judge(cand, rules)
        if verdict.ok:
            mine = shingles(verdict.candidate.text)
            if any(jaccard(mine, other) >= rules.duplicate_jaccard for other in kept):
                verdict = Verdict(verdict.candidate, "duplicate")
            else:
                kept.append(mine)
        verdicts.append(verdict)
    return verdicts


def rank(
    survivors: Sequence[Candidate],
    policy: Literal["best", "weighted"],
    rng: np.random.Generator,
    *,
    band: float = 0.25,
    temperature: float = 0.1,
) -> list[Candidate]:
    """Order survivors for picking by `Candidate.score` (the critic's log-odds, or the mean
    log-probability in nats/char without a critic): "best" takes the top; "weighted" draws
    from the band within `band` of the best, weighted by exp(score / temperature), so posts
    are good but not all alike. The first element is the pick."""
    ordered = sorted(survivors, key=lambda c: c.score, reverse=True)
    if policy == "best" or len(ordered) < 2:
        return ordered
    top = ordered[0].score
    pool = [c for c in ordered if c.score >= top - band]
    weights = np.array([math.exp((c.score - top) / temperature) for c in pool])
    first = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
    return [first, *(c for c in ordered if c is not first)]
