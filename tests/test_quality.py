"""The measures behind `bot eval` (bot/train/quality.py) and the critic (bot/engine/critic.py): the judge
reads ~0.5 on real against real and ~1 on obvious fakes; the critic round-trips through its
file and prefers the author's kind of sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.core.errors import ModelError
from bot.corpus.text import read_text, split_paragraphs
from bot.engine.critic import Critic
from bot.train import quality
from bot.train.curate import fit_critic

pytest.importorskip("sklearn")

EXCERPT = Path(__file__).parent / "data" / "quality" / "moby_dick_excerpt.txt"


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return split_paragraphs(read_text(EXCERPT))


def word_salad(paragraphs: list[str], n: int, seed: int) -> list[str]:
    """The author's words in random order, their inner letters shuffled: invented words, no
    grammar (what a badly trained character model writes)."""
    rng = np.random.default_rng(seed)
    pool = [w for p in paragraphs for w in p.split()]

    def scramble(word: str) -> str:
        inner = list(word[1:-1])
        rng.shuffle(inner)
        return word[:1] + "".join(inner) + word[-1:] if len(word) > 3 else word

    return [" ".join(scramble(w) for w in rng.choice(pool, size=int(rng.integers(12, 40)))) + "."
            for _ in range(n)]  # fmt: skip


def test_real_runs_match_lengths_and_are_whole_sentences(paragraphs: list[str]) -> None:
    lengths = [60, 120, 200, 280] * 10
    runs = quality.real_runs(paragraphs, lengths, np.random.default_rng(0))
    assert len(runs) == len(lengths) == len(set(runs))
    gaps = [abs(len(r) - want) for r, want in zip(runs, lengths, strict=True)]
    assert np.median(gaps) < 30
    assert all(r[-1] in ".!?\"')" for r in runs)
    assert not any("_" in r or "\n" in r for r in runs)


@pytest.mark.parametrize("judge", quality.JUDGES)
def test_judge_reads_half_on_real_against_real(paragraphs: list[str], judge: str) -> None:
    first, second = quality.halves(paragraphs)
    lengths = list(np.random.default_rng(3).integers(60, 260, size=120))
    a = quality.real_runs(first, lengths, np.random.default_rng(1))
    b = quality.real_runs(second, lengths, np.random.default_rng(2))
    assert 0.38 <= quality.judge_auc(a, b, judge) <= 0.62  # type: ignore[arg-type]


def telegraphese(runs: list[str]) -> list[str]:
    """The author's sentences without function words and commas: the words are real and in
    order, the style is not."""
    drop = set(quality.FUNCTION_WORDS)
    return [" ".join(w for w in r.replace(",", "").split() if w.lower() not in drop) for r in runs]


@pytest.mark.parametrize(
    ("judge", "fakes"),
    [
        ("ngram", lambda paras, real: word_salad(paras, 100, seed=4)),
        ("style", lambda paras, real: telegraphese(real)),
    ],
)
def test_judge_tells_fakes_from_the_author(paragraphs: list[str], judge: str, fakes) -> None:  # type: ignore[no-untyped-def]
    first, second = quality.halves(paragraphs)
    seed_runs = quality.real_runs(first, [150] * 100, np.random.default_rng(7))
    fake = fakes(first, seed_runs)
    real = quality.real_runs(second, [len(f) for f in fake], np.random.default_rng(0))
    assert quality.judge_auc(fake, real, judge) > 0.9  # type: ignore[arg-type]


def test_invented_rate_and_diversity() -> None:
    known = {"the", "whale", "is", "white"}
    assert quality.invented_rate(["The whale is white.", "The whalo is white."], known) == 1 / 8
    assert quality.bigram_diversity(["a b a b", "a b"]) == pytest.approx(2 / 4)
    assert quality.bigram_diversity(["a b c d"]) == 1.0


def test_critic_round_trips_and_prefers_the_author(paragraphs: list[str], tmp_path: Path) -> None:
    first, second = quality.halves(paragraphs)
    fake = word_salad(first, 150, seed=5)
    real = quality.real_runs(first, [len(f) for f in fake], np.random.default_rng(5))
    critic, auc = fit_critic(real, fake, bits=14)
    assert auc > 0.9
    critic.save(tmp_path / "critic.npz")
    again = Critic.load(tmp_path / "critic.npz")
    unseen_real = quality.real_runs(second, [150] * 30, np.random.default_rng(6))
    unseen_fake = word_salad(second, 30, seed=6)
    texts = unseen_real + unseen_fake
    assert np.allclose(again.score(texts), critic.score(texts), atol=1e-3)
    scores = again.score(texts)
    assert scores[:30].mean() > scores[30:].mean()
    assert (scores[:30] > np.median(scores)).mean() > 0.8


def test_a_damaged_critic_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "critic.npz"
    path.write_bytes(b"not a critic")
    with pytest.raises(ModelError, match="cannot read the critic"):
        Critic.load(path)
