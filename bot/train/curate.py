"""Curation artifacts of a persona, written after its language model: the word list that
bounds sampling (words.npz) and the critic that ranks candidates (critic.npz).

    bot train -p NAME --corpus ...                 the model, then these two
    bot train -p NAME --corpus ... --critic-only   these two for the model already there

The critic learns the author's own sentences (runs of whole sentences, one paragraph half
of the corpus: `quality.halves`) against the persona's own candidates, sampled and filtered
exactly as the daemon samples and filters them (prompts, temperature, word list, filters of
the persona's config when it has one). `bot eval`'s judges draw their real text from the
other half, so the critic that selects never sees what the judge that reports sees.

NumPy and scikit-learn; no TensorFlow (so `--critic-only` runs where Keras is missing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bot import config as cfg
from bot.core.errors import BotError
from bot.engine.card import CARD_FILE, WORDS_FILE, PersonaCard, read_card
from bot.engine.critic import CRITIC_FILE, DEFAULT_BITS, Critic, features
from bot.engine.vocab import WordTrie, words
from bot.train.quality import halves, real_runs

CRITIC_FAKES = 1500  # the persona's surviving candidates the critic learns from
CRITIC_TEMPERATURE = 0.8  # a fresh model's critic: samples at the shipped default
MAX_TRIES_PER_FAKE = 10  # candidates sampled per surviving one before giving up
MIN_FAKES = 20  # fewer survivors than this: no critic (the model's score ranks)


def default_settings(name: str, directory: Path) -> cfg.PersonaSettings:
    """How a persona that is not in config.yaml yet samples: from the start of a post, at
    the shipped persona's settings (posts of 100 to 280 characters)."""
    return cfg.PersonaSettings(name=name, model=directory, temperature=CRITIC_TEMPERATURE,
                       candidates=64, filters=cfg.Filters(min_chars=100, max_chars=280))  # fmt: skip


def write_words(directory: Path, docs: list[str], card: PersonaCard) -> int:
    """The corpus' words, as a trie the sampler cannot leave; returns how many."""
    vocabulary = sorted({w for doc in docs for w in words(doc)})
    trie = WordTrie.build(vocabulary, card.itos)
    _replace(directory / WORDS_FILE, trie.save)
    return len(vocabulary)


def persona_samples(settings: cfg.PersonaSettings, want: int, seed: int) -> tuple[list[str], float]:
    """Up to `want` candidates that pass the persona's filters, sampled as the daemon samples
    them (no critic: it is what is being trained); returns them and the seconds it took.
    Gives up after as many candidates as a 10% pass rate would need (a model too young to
    write much that passes)."""
    from bot.posting.persona import Persona

    runner = Persona(replace(settings, critic=False), rng=np.random.default_rng(seed))
    texts: list[str] = []
    sampled = 0
    t0 = time.perf_counter()
    while len(texts) < want and sampled < want * MAX_TRIES_PER_FAKE:
        comp = runner.compose(history=[], candidates=settings.candidates)
        sampled += len(comp.verdicts)
        texts += [v.candidate.text for v in comp.verdicts if v.ok]
    return texts[:want], time.perf_counter() - t0


def write_critic(
    settings: cfg.PersonaSettings,
    paragraphs: list[str],
    *,
    seed: int,
    fakes: int = CRITIC_FAKES,
    say: Callable[..., Any] = print,
) -> dict[str, Any]:
    """Fit the critic on the persona's own candidates against the author's sentences and
    write critic.npz; returns what the card records of it ({} when too few candidates pass
    the filters to learn from: then there is no critic.npz)."""
    fake, seconds = persona_samples(settings, fakes, seed)
    say(f"critic: {len(fake)} candidates sampled in {seconds:.0f} s")
    if len(fake) < MIN_FAKES:
        (settings.model / CRITIC_FILE).unlink(missing_ok=True)
        say(f"critic: skipped, only {len(fake)} candidates passed the filters; the model's own "
            "score ranks (train longer, or check `bot preview --all`)")  # fmt: skip
        return {}
    own, _ = halves(paragraphs)
    real = real_runs(own, [len(t) for t in fake], np.random.default_rng(seed))
    critic, auc = fit_critic(real, fake)
    _replace(settings.model / CRITIC_FILE, critic.save)
    say(f"critic: tells the author from the model at ROC AUC {auc:.3f} (5-fold, its own data)")
    return {"file": CRITIC_FILE, "bits": critic.bits, "real": len(real), "fake": len(fake),
            "cv_auc": round(auc, 4), "temperature": settings.temperature}  # fmt: skip


def curate(
    directory: Path,
    paragraphs: list[str],
    train_docs: list[str],
    *,
    settings: cfg.PersonaSettings | None = None,
    seed: int = 1337,
    fakes: int = CRITIC_FAKES,
    say: Callable[..., Any] = print,
) -> PersonaCard:
    """Write words.npz and critic.npz into `directory` and record both in its card."""
    card = read_card(directory)
    n_words = write_words(directory, train_docs, card)
    say(f"word list: {n_words:,} words of the training text")
    settings = replace(settings or default_settings(card.name, directory), model=directory)
    critic = write_critic(settings, paragraphs, seed=seed, fakes=fakes, say=say)
    curation: dict[str, Any] = {"words": {"file": WORDS_FILE, "count": n_words}}
    if critic:
        curation["critic"] = critic
    card = replace(card, curation=curation)
    _replace(directory / CARD_FILE, lambda p: p.write_text(card.to_json(), encoding="utf-8"))
    return card


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """Write beside `path`, then rename over it: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


def fit_critic(
    real: Sequence[str], fake: Sequence[str], *, bits: int = DEFAULT_BITS, c: float = 4.0
) -> tuple[Critic, float]:
    """Logistic regression of real (1) against fake (0) on `features`; returns the critic and
    its 5-fold cross-validated ROC AUC on this data (how well it tells them apart)."""
    try:
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
    except ImportError as err:
        raise BotError("scikit-learn is not installed (the critic's training needs it)",
                       "pip install -r requirements-train.txt") from err  # fmt: skip
    texts = [*real, *fake]
    y = np.array([1] * len(real) + [0] * len(fake))
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        idx, val = features(text, bits)
        rows.append(np.full(idx.size, i))
        cols.append(idx)
        vals.append(val)
    x = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(texts), 1 << bits))  # fmt: skip
    model = LogisticRegression(C=c, max_iter=3000)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    oof = cross_val_predict(model, x, y, cv=folds, method="decision_function")
    auc = float(roc_auc_score(y, oof))
    model.fit(x, y)
    critic = Critic(model.coef_[0].astype(np.float16).astype(np.float32),
                    float(model.intercept_[0]), bits)  # fmt: skip
    return critic, auc
