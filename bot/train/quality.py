"""How believable a persona's posts are, measured: the figures behind `bot eval`.

    real_runs(paragraphs, lengths, rng)   runs of whole sentences of the author's own text,
                                          one per post, each as long as its post
    judge_auc(fake, real, judge)          a classifier asked to tell them apart: ROC AUC,
                                          5-fold cross-validated; 0.5 = indistinguishable
    invented_rate(texts, known)           share of words neither in the corpus nor English
    bigram_diversity(texts)               distinct word bigrams / all word bigrams
    markov_posts(paragraphs, lengths)     the baseline every "ebooks" bot posts

Two judges of different families report, so that a selector which learnt one of them
cannot pass unseen: "ngram" (TF-IDF character 2-5-grams and word 1-2-grams, logistic
regression: the family of the persona's critic) and "style" (46 stylometric rates,
gradient-boosted trees). Their spec is fixed (BENCHMARKS.md) and must not change between a
before and an after.

The judges are scikit-learn, an offline dependency (requirements-train.txt): this module is
imported by `bot eval` and the benches, never by the daemon.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from bot.core.errors import BotError
from bot.engine.card import NORMALISE
from bot.engine.vocab import words  # a word, as the vocabulary constraint counts words
from bot.posting.compose import ITALICS

Judge = Literal["ngram", "style"]
JUDGES: tuple[Judge, ...] = ("ngram", "style")
FOLDS = 5
JUDGE_SEED = 0
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
# The words whose rates tell authors apart in classic stylometry (Mosteller and Wallace's
# kind): frequent, topic-free.
FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "it",
    "he",
    "i",
    "as",
    "for",
    "his",
    "not",
    "with",
    "be",
    "but",
    "by",
    "which",
    "this",
    "you",
    "all",
    "they",
    "we",
    "have",
    "are",
    "one",
    "so",
    "what",
    "was",
    "from",
    "or",
    "an",
    "him",
    "my",
    "who",
    "there",
    "their",
    "them",
    "if",
    "me",
    "will",
    "no",
    "its",
    "at",
    "on",
    "more",
    "only",
    "thou",
    "ye",
    "us",
    "our",
    "must",
    "even",
    "thus",
]
PUNCTUATION = ",;:!?\"'-()"


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError as err:
        raise BotError(
            "scikit-learn is not installed (bot eval's judges need it)",
            "pip install -r requirements-train.txt",
        ) from err
    return sklearn


def clean(text: str) -> str:
    """The author's text as a post would show it: typography normalised, no _emphasis_."""
    return " ".join(ITALICS.sub("", text.translate(NORMALISE)).split())


def halves(paragraphs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Alternate paragraphs: the critic's half (it trains on it) and the judge's half (it
    reports on it). Alternating spreads both over every book and topic of the corpus."""
    return list(paragraphs[0::2]), list(paragraphs[1::2])


def sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(clean(paragraph)) if s]


def real_runs(
    paragraphs: Sequence[str],
    lengths: Sequence[int],
    rng: np.random.Generator,
    *,
    tries: int = 40,
    used: set[tuple[int, int]] | None = None,
) -> list[str]:
    """One run of consecutive whole sentences of one paragraph per wanted length: of `tries`
    random starts, the run whose length is closest. No sentence is in two runs, nor in a run
    of an earlier call that shared `used` (overlapping runs would let a judge match texts
    across its folds)."""
    sents = [sentences(p) for p in paragraphs]
    starts = [(i, j) for i, ss in enumerate(sents) for j in range(len(ss))]
    if not starts:
        raise BotError("no sentences in the corpus", "pass the persona's text with --corpus")
    taken = used if used is not None else set()
    runs: list[str] = []
    for want in lengths:
        best: list[tuple[int, int]] = []
        best_gap = None
        for k in rng.integers(len(starts), size=tries):
            i, j = starts[int(k)]
            run: list[tuple[int, int]] = []
            size = -1
            for jj in range(j, len(sents[i])):
                if (i, jj) in taken:
                    break
                longer = size + 1 + len(sents[i][jj])
                if run and abs(longer - want) > abs(size - want):
                    break
                run.append((i, jj))
                size = longer
            gap = abs(size - want)
            if run and (best_gap is None or gap < best_gap):
                best, best_gap = run, gap
        if best:
            taken.update(best)
            runs.append(" ".join(sents[i][j] for i, j in best))
    return runs


def style_features(texts: Sequence[str]) -> np.ndarray:
    """[n, 46] topic-free rates: function words per word, punctuation per character, word
    and sentence lengths, vocabulary richness and repetition."""
    rows = []
    for text in texts:
        ws = words(text)
        n = max(len(ws), 1)
        counts: dict[str, int] = {}
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
        lengths = np.array([len(w) for w in ws] or [0], dtype=float)
        bigrams = list(pairwise(ws))
        n_sent = max(len(re.findall(r"[.!?]+", text)), 1)
        row = [counts.get(w, 0) / n for w in FUNCTION_WORDS[:28]]
        row += [text.count(p) / max(len(text), 1) for p in PUNCTUATION]
        row += [
            lengths.mean(),
            lengths.std(),
            float((lengths >= 8).mean()),
            len(counts) / n,
            1 - len(set(bigrams)) / max(len(bigrams), 1),
            max(counts.values(), default=0) / n,
        ]
        row += [n / n_sent, sum(w[:1].isupper() for w in text.split()) / n]
        rows.append(row)
    return np.asarray(rows, dtype=float)


def _model(judge: Judge) -> Any:
    _sklearn()
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer

    if judge == "ngram":
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                min_df=2, lowercase=False)  # fmt: skip
        word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                               min_df=2, token_pattern=r"(?u)\b\w+\b")  # fmt: skip
        return make_pipeline(make_union(chars, word), LogisticRegression(C=1.0, max_iter=2000))
    return make_pipeline(
        FunctionTransformer(style_features),
        HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=JUDGE_SEED),
    )


def judge_auc(fake: Sequence[str], real: Sequence[str], judge: Judge = "ngram") -> float:
    """ROC AUC of `judge` separating fake from real, out-of-fold over 5 stratified folds with a
    fixed seed. 0.5: it cannot tell them apart; 1.0: it always can."""
    _sklearn()
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    texts = [*fake, *real]
    y = np.array([1] * len(fake) + [0] * len(real))
    if min(len(fake), len(real)) < FOLDS:
        raise BotError(f"{min(len(fake), len(real))} texts on one side", "ask for more posts")
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=JUDGE_SEED)
    scores = cross_val_predict(_model(judge), np.array(texts, dtype=object), y, cv=folds,
                               method="predict_proba")[:, 1]  # fmt: skip
    return float(roc_auc_score(y, scores))


def invented_rate(texts: Iterable[str], known: set[str]) -> float:
    """Share of the words of `texts` that are not in `known` (the corpus and a word list)."""
    total = invented = 0
    for text in texts:
        for w in words(text):
            total += 1
            invented += w not in known
    return invented / max(total, 1)


def bigram_diversity(texts: Iterable[str]) -> float:
    """Distinct word bigrams / all word bigrams, across all texts (1.0: nothing repeats)."""
    grams = [g for t in texts for g in pairwise(words(t))]
    return len(set(grams)) / max(len(grams), 1)


def english_words() -> set[str]:
    """An English word list (wordfreq's, split as `words` splits), for invented words."""
    try:
        import wordfreq
    except ImportError as err:
        raise BotError(
            "wordfreq is not installed", "pip install -r requirements-train.txt"
        ) from err
    return {w for entry in wordfreq.iter_wordlist("en", "large") for w in words(entry)}


def markov_posts(
    paragraphs: Sequence[str],
    lengths: Sequence[int],
    *,
    seed: int,
    is_novel: Any,
    max_chars: int,
) -> list[str]:
    """A word Markov chain's posts (markovify, state size 2, as "ebooks" bots post), one per
    wanted length: sentences are added until the post is about that long; only posts that
    `is_novel` accepts are kept."""
    try:
        import markovify
    except ImportError as err:
        raise BotError(
            "markovify is not installed", "pip install -r requirements-train.txt"
        ) from err
    import random

    random.seed(seed)  # markovify draws from the random module
    chain = markovify.Text([s for p in paragraphs for s in sentences(p)], state_size=2,
                           well_formed=False, retain_original=True)  # fmt: skip
    posts: list[str] = []
    for want in lengths:
        for _ in range(50):
            post = ""
            while len(post) < 0.8 * want:
                s = chain.make_sentence(tries=50, max_overlap_ratio=1.0, test_output=False)
                if not s:
                    break
                post = f"{post} {s}".strip()
            if post and len(post) <= max_chars and is_novel(post):
                posts.append(post)
                break
    return posts
