"""The NumPy engine on the committed tiny persona: no TensorFlow needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.core.errors import ModelError
from bot.engine.card import EOS, UNK, read_card
from bot.engine.sampler import Sampler

TINY = Path(__file__).parent / "data" / "tiny_persona"


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler.load(TINY)


def test_generate_returns_n_candidates_within_the_limit(sampler: Sampler) -> None:
    out = sampler.generate("The", n=7, max_chars=60, temperature=1.0, rng=np.random.default_rng(1))
    assert len(out) == 7
    assert all(len(s.text) <= 60 for s in out)
    assert all(s.stop in ("eos", "sentence", "length") for s in out)
    assert all(np.isfinite(s.mean_logprob) and s.mean_logprob < 0 for s in out)
    assert len({s.text for s in out}) > 1  # a batch of samples, not one sample seven times


def test_same_seed_same_posts_other_seed_other_posts(sampler: Sampler) -> None:
    def run(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [s.text for s in sampler.generate("A", n=4, max_chars=80, rng=rng)]

    assert run(1337) == run(1337)
    assert run(1337) != run(7)


def test_temperature_zero_is_greedy_argmax(sampler: Sampler) -> None:
    out = sampler.generate("Truth", n=3, max_chars=30, temperature=0, rng=np.random.default_rng(0))
    assert len({s.text for s in out}) == 1
    # Replay the argmax by hand, one step at a time.
    primed = sampler.prime("Truth")
    state, logits, text = primed.state, primed.logits, ""
    for _ in range(30):
        logits = logits.astype(np.float64)
        logits[:, UNK] = -np.inf
        token = int(logits.argmax())
        if token == EOS:
            break
        text += sampler.itos[token]
        logits, state = sampler.step(np.array([token]), state)
    assert out[0].text == text[: len(out[0].text)]


def test_one_candidate_agrees_with_the_batched_engine(sampler: Sampler) -> None:
    """n=1 takes its own in-place path; its posts and scores must be the batch's."""
    greedy = sampler.generate(
        "Truth", n=3, max_chars=50, temperature=0, rng=np.random.default_rng(0)
    )
    (one,) = sampler.generate(
        "Truth", n=1, max_chars=50, temperature=0, rng=np.random.default_rng(0)
    )
    assert (one.text, one.stop) == (greedy[0].text, greedy[0].stop)
    assert one.mean_logprob == pytest.approx(greedy[0].mean_logprob, abs=1e-6)  # float32 sums
    # A sampled post: replay its characters through the batched step; the mean
    # log-probability (T=1, the replacement character excluded) must come out the same.
    (post,) = sampler.generate(
        "A", n=1, max_chars=80, temperature=1.2, rng=np.random.default_rng(4)
    )
    primed = sampler.prime("A")
    state, logits, total = primed.state, primed.logits, 0.0
    ids = [sampler.stoi[ch] for ch in post.text] + ([EOS] if post.stop == "eos" else [])
    for token in ids:
        z = logits[0].astype(np.float64)
        z[UNK] = -np.inf
        total += z[token] - z.max() - np.log(np.exp(z - z.max()).sum())
        logits, state = sampler.step(np.array([token]), state)
    assert post.stop != "length" and len(ids) > 5
    assert post.mean_logprob == pytest.approx(total / len(ids), abs=1e-6)


@pytest.mark.parametrize("n", [1, 2])  # one candidate has its own path
@pytest.mark.parametrize("kwargs", [{"top_k": 1}, {"top_p": 1e-9}])
def test_top_k_one_and_tiny_top_p_equal_greedy(sampler: Sampler, kwargs: dict, n: int) -> None:
    greedy = sampler.generate("We", n=n, max_chars=40, temperature=0, rng=np.random.default_rng(0))
    other = sampler.generate(
        "We", n=n, max_chars=40, temperature=1.5, rng=np.random.default_rng(5), **kwargs
    )
    assert [s.text for s in other] == [s.text for s in greedy]


@pytest.mark.parametrize("one_row", [False, True])
@pytest.mark.parametrize(("top_k", "top_p"), [(2, 1.0), (0, 0.6)])
def test_top_k_and_top_p_bound_the_choices(
    sampler: Sampler, top_k: int, top_p: float, one_row: bool
) -> None:
    # probabilities by id: the unknown token (id 1) is never drawn; top-2 and top-60% mass
    # both leave ids 0 and 2 (0.5 + 0.2).
    probs = np.array([0.5, 0.0001, 0.2, 0.15, 0.1, 0.05])
    assert UNK == 1
    logits, rng, draws = np.log(probs), np.random.default_rng(3), range(200)
    if one_row:
        seen = {sampler._choose_one(logits, 1.0, top_k, top_p, rng)[0] for _ in draws}
    else:
        seen = {int(sampler._choose(logits[None], 1.0, top_k, top_p, rng)[0][0]) for _ in draws}
    assert seen == {0, 2}


def test_unknown_prompt_characters_are_reported(sampler: Sampler) -> None:
    primed = sampler.prime("Wahrheit ist ein Weib \u2603")
    assert "\u2603" in primed.unknown


def test_prompt_is_normalised_like_the_training_text(sampler: Sampler) -> None:
    ids, unknown = sampler.encode_prompt("\u201cGod\u201d")
    assert unknown == []
    assert ids[0] == sampler.stoi['"']


def test_truncated_model_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "tiny"
    shutil.copytree(TINY, broken)
    data = (broken / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError) as err:
        Sampler.load(broken)
    assert "model.keras" in str(err.value)
    assert "retrain" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_model_file_names_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "tiny"
    shutil.copytree(TINY, broken)
    (broken / "model.keras").unlink()
    with pytest.raises(ModelError, match="bot train -p tiny_persona"):
        Sampler.load(broken)


def test_card_that_does_not_match_the_model_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "tiny"
    shutil.copytree(TINY, broken)
    card = (broken / "card.json").read_text()
    chars = read_card(TINY).chars
    # Drop one character from the vocabulary and shrink vocab_size to match it.
    size = f'"vocab_size": {len(chars) + 2}'
    card = card.replace(size, f'"vocab_size": {len(chars) + 1}', 1)
    card = card.replace(f'"{chars[-1]}"\n', "", 1).replace(f'"{chars[-2]}",', f'"{chars[-2]}"')
    (broken / "card.json").write_text(card)
    with pytest.raises(ModelError, match="different trainings"):
        Sampler.load(broken)
