"""Words and the word trie (bot/engine/vocab.py), and decoding constrained by it in every engine
path: the batch, the NumPy row and the C loop may never write a word the persona's
corpus does not have."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import bot.engine.native
import bot.engine.sampler
from bot.engine.card import EOS, UNK, read_card
from bot.engine.sampler import Sampler
from bot.engine.vocab import ROOT, WordTrie, words

TINY = Path(__file__).parent / "data" / "tiny_persona"
CORPUS = Path(__file__).parent / "data" / "tiny" / "aphorisms.txt"
LEADING_WORD = re.compile(r"^[^\W\d_]*")
ITOS = ["", "\ufffd", " ", "'", ".", "1", "T", "a", "e", "h", "n", "t", "é"]


@pytest.fixture(scope="module")
def vocabulary() -> set[str]:
    return set(words(CORPUS.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def trie(vocabulary: set[str]) -> WordTrie:
    return WordTrie.build(vocabulary, read_card(TINY).itos)


@pytest.fixture
def small() -> WordTrie:
    """the, then, than, tea, a, thé over ITOS ("théâtre" has a letter the model lacks)."""
    return WordTrie.build(["the", "then", "than", "tea", "a", "thé", "théâtre", "x"], ITOS)


def ids(trie: WordTrie, chars: str) -> set[int]:
    return {trie.itos.index(ch) for ch in chars}


def allowed_ids(trie: WordTrie, state: int) -> set[int]:
    return set(np.flatnonzero(trie.allowed(np.array([state]))[0]).tolist())


# -- words ---------------------------------------------------------------------------------


def test_words_are_lowercase_letter_runs() -> None:
    assert words("Don't stop-gap 2nd: Übermensch_ok, it's 1887!") == [
        "don", "t", "stop", "gap", "nd", "übermensch", "ok", "it", "s",
    ]  # fmt: skip
    assert words("") == words("  -- 42 ") == []


def test_words_lower_each_character_as_the_trie_reads_it() -> None:
    """str.lower() makes a final capital sigma "ς" and "İ" two characters; the trie reads
    one character at a time, so words() must too."""
    assert words("ΟΔΟΣ") == ["οδοσ"]
    assert words("İz") == ["İz"[0] + "z"]


# -- the trie ----------------------------------------------------------------------------


def test_membership_and_skipped_words(small: WordTrie) -> None:
    for word in ["the", "then", "than", "tea", "a", "thé", "The", "THEN"]:
        assert word in small, word
    for word in ["th", "t", "thenn", "théâtre", "x", "", "the n", "tea1"]:
        assert word not in small, word
    assert len(small) == 6  # théâtre and x: letters the model cannot write


def test_masks_follow_the_rules(small: WordTrie) -> None:
    non_letters = {EOS} | ids(small, " '.1")
    # outside a word: letters that start a word, every non-letter, the unknown token
    assert allowed_ids(small, ROOT) == ids(small, "Tta") | non_letters | {UNK}
    th = small.state_after("th")
    assert allowed_ids(small, th) == ids(small, "eaé")  # inside a word: its letters only
    the = small.state_after("the")
    assert allowed_ids(small, the) == ids(small, "n") | non_letters  # a whole word may end
    assert not small.complete(th) and small.complete(the) and small.complete(ROOT)
    assert allowed_ids(small, small.free) == set(range(len(ITOS)))


def test_state_after_a_prompt(small: WordTrie) -> None:
    assert small.state_after("") == ROOT
    assert small.state_after("Then ") == ROOT
    assert small.state_after("Th") == small.state_after("th") != ROOT
    # a prompt ending inside a letter run no word starts with: free until a non-letter
    assert small.state_after("Hello the") != small.free  # "Hello" ended at the space
    assert small.state_after("thx") == small.free
    assert small.state_after("théâ") == small.free  # â: the model cannot write it
    assert small.step(small.free, "e") == small.free
    assert small.step(small.free, " ") == ROOT
    assert small.state_after("te", start=small.state_after("thx ")) == small.state_after("te")


def test_advance_steps_a_batch_like_state_after(small: WordTrie) -> None:
    texts = ["then", "tea.", "a 1", "thé'", "the'a", "th"]
    states = np.zeros(len(texts), np.int32)
    for k in range(max(map(len, texts))):
        live = [i for i, t in enumerate(texts) if k < len(t)]
        tokens = np.array([small.itos.index(texts[i][k]) for i in live])
        states[live] = small.advance(states[live], tokens)
    assert states.tolist() == [small.state_after(t) for t in texts]
    assert small.advance(np.array([ROOT]), np.array([EOS])).tolist() == [ROOT]


def test_one_row_steps_as_the_batch_does(trie: WordTrie) -> None:
    rng = np.random.default_rng(0)
    states = rng.integers(0, trie.n_states, 2000).astype(np.int32)
    tokens = rng.integers(0, trie.vocab_size, 2000)
    want = trie.advance(states, tokens).tolist()
    assert [trie.next_state(int(s), int(t)) for s, t in zip(states, tokens, strict=True)] == want
    assert len(set(want)) > 10 and trie.free in want and ROOT in want
    np.testing.assert_array_equal(trie.allowed(int(states[0])), trie.allowed(states[:1])[0])


def test_save_and_load_round_trip(tmp_path: Path, trie: WordTrie) -> None:
    path = tmp_path / "words.npz"
    trie.save(path)
    back = WordTrie.load(path)
    for name in ("mask", "keys", "targets", "letter"):
        np.testing.assert_array_equal(getattr(back, name), getattr(trie, name))
        assert getattr(back, name).dtype == getattr(trie, name).dtype
    assert (back.alphabet, back.itos, len(back)) == (trie.alphabet, trie.itos, len(trie))
    np.savez(path, mask=trie.mask)
    with pytest.raises(ValueError, match="not a word trie"):
        WordTrie.load(path)


def test_inconsistent_arrays_are_refused(trie: WordTrie) -> None:
    targets = trie.targets.copy()
    targets[0] = trie.n_states  # would index past the masks
    with pytest.raises(ValueError, match="inconsistent"):
        WordTrie(trie.mask, trie.keys, targets, trie.letter, trie.alphabet, trie.itos)


def test_a_trie_over_other_characters_is_refused(small: WordTrie) -> None:
    with pytest.raises(ValueError, match="other characters"):
        Sampler.load(TINY).generate(
            "A", n=2, max_chars=10, rng=np.random.default_rng(0), constraint=small
        )


# -- constrained decoding in every engine path --------------------------------------------

PATHS = ["batch", "numpy_row", "c_loop"]


def sample(
    path: str, prompt: str, seed: int, constraint: WordTrie | None, **kw: float
) -> list[bot.engine.sampler.Sample]:
    if path == "c_loop" and bot.engine.sampler._lstm is None:
        pytest.skip("bot.engine._lstm not built")
    sampler = Sampler.load(TINY, threads=2 if path == "c_loop" else None)
    sampler.native = path == "c_loop"
    settings = {"max_chars": 120, "temperature": 1.5, **kw}
    return sampler.generate(
        prompt, n=4 if path == "batch" else 1, rng=np.random.default_rng(seed),
        constraint=constraint, **settings,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_no_sample_has_a_word_outside_the_vocabulary(
    path: str, trie: WordTrie, vocabulary: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property, at a temperature that invents words freely without the constraint,
    over many seeds, prompts (one ending inside a word, one inside a non-word) and
    settings; posts cut at max_chars included."""
    monkeypatch.setattr(bot.engine.native, "_cores_free", lambda: 64)  # the C loop's 2 threads
    prompts = ["The", "Truth is a wom", "", "Xylo", "We"]
    stops, posts, unconstrained = set(), 0, 0
    for seed in range(60):
        prompt = prompts[seed % len(prompts)]
        kw = [{}, {"top_k": 8}, {"top_p": 0.9}, {"max_chars": 25}][seed % 4]
        for post in sample(path, prompt, seed, trie, **kw):
            text = prompt + post.text
            if prompt == "Xylo":  # free until the first non-letter: "Xylo..." may go on
                text = LEADING_WORD.sub("", post.text)
            invented = [w for w in words(text) if w not in vocabulary]
            assert not invented, (path, seed, prompt + post.text)
            stops.add(post.stop)
            posts += 1
        if seed < 20:
            free = sample(path, prompt, seed, None, **kw)
            unconstrained += sum(w not in vocabulary for p in free for w in words(prompt + p.text))
    assert posts >= 60 and {"length", "sentence"} <= stops
    assert unconstrained > 20  # without it, the same runs invent words


@pytest.mark.parametrize("path", PATHS)
def test_a_prompt_ending_inside_a_word_is_finished_into_a_word(
    path: str, trie: WordTrie, vocabulary: set[str]
) -> None:
    for seed in range(10):
        for post in sample(path, "Truth is a wom", seed, trie):
            assert words("wom" + post.text)[0] in vocabulary


@pytest.mark.parametrize("path", PATHS)
def test_a_permissive_constraint_samples_exactly_as_none(
    path: str, trie: WordTrie, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every character allowed the masked arithmetic must reduce to the unmasked
    one bit for bit: same posts, same scores, in every path."""
    monkeypatch.setattr(bot.engine.native, "_cores_free", lambda: 64)
    everything = WordTrie(
        np.full_like(trie.mask, 255), trie.keys, trie.targets, trie.letter, trie.alphabet,
        trie.itos,
    )  # fmt: skip
    for seed in range(8):
        kw = [{}, {"top_k": 5}, {"top_p": 0.8}, {"temperature": 0.0}][seed % 4]
        assert sample(path, "The", seed, everything, **kw) == sample(path, "The", seed, None, **kw)


@pytest.mark.parametrize("path", PATHS)
def test_the_score_is_the_models_own_unmasked_log_probability(
    path: str, trie: WordTrie, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sum of log-probabilities each path hands to _finish (over every character it
    drew, before a cut) is the model's own at T=1, as if nothing had been masked."""
    drawn: list[tuple[str, float, str]] = []
    finish = Sampler._finish

    def spy(text: str, logprob: float, stop: str, *args: object) -> bot.engine.sampler.Sample:
        drawn.append((text, float(logprob), stop))
        return finish(text, logprob, stop, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Sampler, "_finish", staticmethod(spy))
    for seed in range(3):
        sample(path, "A", seed, trie)
    sampler = Sampler.load(TINY)
    sampler.native = False
    for text, logprob, stop in drawn:
        primed = sampler.prime("A")
        state, logits, total = primed.state, primed.logits, 0.0
        for token in [sampler.stoi[ch] for ch in text] + ([EOS] if stop == "eos" else []):
            z = logits[0].astype(np.float64)
            z[UNK] = -np.inf
            total += z[token] - z.max() - np.log(np.exp(z - z.max()).sum())
            logits, state = sampler.step(np.array([token]), state)
        assert logprob == pytest.approx(total, abs=1e-4)
    assert len(drawn) >= 3
