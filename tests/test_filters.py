"""Every filter, table-driven: what it rejects, with which reason, and what it lets through."""

from __future__ import annotations

import numpy as np
import pytest

from bot.engine.novelty import build_index
from bot.posting.filters import Candidate, Rules, apply, default_blocklist, judge, rank

CORPUS = [
    (
        "Supposing that Truth is a woman, what then? Is there not ground for suspecting "
        "that all philosophers, in so far as they have been dogmatists, have failed?"
    )
]
GOOD = "The free spirit laughs at the mountain, and the mountain does not answer him."


@pytest.fixture
def rules() -> Rules:
    return Rules(
        min_chars=20,
        max_chars=120,
        blocklist=["Wagner", "bad word", *default_blocklist()],
        novelty_index=build_index(CORPUS, 8),
        history=["Every philosopher hides a garden behind his system of thought."],
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GOOD, None),
        ("Thank you @alice for the mountain air and the long walk.", "has_mention"),
        ("Read this: @bob@mastodon.social is wrong about the mountain.", "has_mention"),
        ("The whole truth is at https://example.com/truth and nowhere else.", "has_url"),
        ("The whole truth is at example.org/truth and nowhere else, friends.", "has_url"),
        ("Too brief.", "too_short"),
        ("word " * 20, "garbage"),
        ("So what then? " * 8, "garbage"),
        ("12 34 56 78 90 12 34 56 78 90 -- ;; :: !! ??", "garbage"),
        ("He said (and he meant it, the mountain was his) nothing at all.", None),
        ("He said (and he meant it, the mountain was his nothing at all.", "unbalanced"),
        ('He said "the mountain was his, and nothing at all.', "unbalanced"),
        ("The free spirit laughs at the mountain, and the mountain does not", "unfinished"),
        ('He asked: "And the mountain?"', None),
        ("Nobody understood Wagner, and least of all the Germans themselves.", "blocklisted"),
        ("Nobody understood WAGNER, and least of all the Germans themselves.", "blocklisted"),
        ("Nobody understood W4gn3r, and least of all the Germans themselves.", "blocklisted"),
        ("Then he spoke a bad   word and the whole valley went quiet.", "blocklisted"),
        ("The Wagnerians would not hear of it, said the old man gently.", None),
        ("Nobody understood this shit, and least of all the Germans then.", "blocklisted"),
        ("Every philosopher hides a garden behind his system of thought!", "duplicate"),
        (
            "Yes: all philosophers, in so far as they have been dogmatists, have failed us.",
            "not_novel",
        ),
        ("All philosophers, in so far as they were children, loved the sea.", None),
    ],
)
def test_filter_reasons(rules: Rules, text: str, reason: str | None) -> None:
    assert judge(Candidate(text, -1.0), rules).reason == reason


def test_too_long_counts_as_the_target_counts(rules: Rules) -> None:
    text = "A long walk by the lake, a short talk with the dog, then bread and olives. " * 2
    assert judge(Candidate(text.strip(), -1.0), rules).reason == "too_long"
    rules.length = lambda t: 100  # e.g. Mastodon counting a URL as 23
    assert judge(Candidate(text.strip(), -1.0), rules).reason is None


def test_strip_mode_removes_mentions_and_urls_instead_of_rejecting(rules: Rules) -> None:
    rules.mentions, rules.urls = "strip", "strip"
    verdict = judge(Candidate(f"@alice {GOOD} https://example.com/x", -1.0), rules)
    assert verdict.ok
    assert verdict.candidate.text == GOOD


def test_a_longer_novelty_threshold_allows_shorter_quotations(rules: Rules) -> None:
    quote = "Indeed, philosophers, in so far as they have been dogmatists, ate bread."
    assert judge(Candidate(quote, -1.0), rules).reason == "not_novel"  # shares 9 words
    rules.novelty_words = 10
    assert judge(Candidate(quote, -1.0), rules).ok


def test_near_duplicates_within_one_batch(rules: Rules) -> None:
    verdicts = apply([Candidate(GOOD, -1.0), Candidate(GOOD + " Yes.", -1.1)], rules)
    assert [v.reason for v in verdicts] == [None, "duplicate"]


def test_rank_best_picks_highest_mean_logprob() -> None:
    cands = [Candidate("a", -1.5), Candidate("b", -0.9), Candidate("c", -1.2)]
    assert rank(cands, "best", np.random.default_rng(0))[0].text == "b"


def test_rank_weighted_varies_within_the_band_and_never_leaves_it() -> None:
    cands = [Candidate("a", -1.00), Candidate("b", -1.02), Candidate("far", -3.0)]
    picks = {rank(cands, "weighted", np.random.default_rng(s))[0].text for s in range(40)}
    assert picks == {"a", "b"}


def test_picks_of_earlier_rounds_count_without_any_history() -> None:
    """A new persona has no history: a pick remembered in round 1 still rejects its twin in
    round 2 (the check used to run only when the stored history was non-empty)."""
    rules = Rules(min_chars=5, max_chars=500, history=[])
    text = "Every philosopher hides a garden behind his system of thought."
    [first] = apply([Candidate(text, -1.0, "end")], rules)
    assert first.ok
    rules.remember(text)
    [again] = apply([Candidate(text + " Truly.", -1.0, "end")], rules)
    assert again.reason == "duplicate"
