"""A persona's words: one tokenisation, and a trie that keeps sampling inside them.

`words` is the single definition of a word: a run of letters, lowercased (digits,
apostrophes and hyphens split words, so "don't" is "don" and "t"). The eval's
invented-word rate and the trie below both use it, so "invented" means the same thing in
both.

`WordTrie` is built from a corpus' words over the model's own characters (the card's itos)
and drives constrained decoding in bot/engine/sampler.py: in a state (a trie node), the mask says
which character ids may come next, so a letter can only continue a word into one that
exists, and a word can only end (space, punctuation, end of post) where a whole word ends.
The rules for character id c in state s:

- a letter goes to the child of s for its lowercase; it is forbidden where s has none;
- any other character (space, punctuation, digits, apostrophe, end of post) is allowed
  only in the root (outside a word) or where s completes a word, and goes to the root;
- the unknown-character token is allowed only in the root.

One extra state, `free`, is where a prompt ends inside a letter run that no word starts
with: everything is allowed there, letters stay free and anything else goes to the root.

Sample-time data is compact arrays, never per-node Python dicts: the allowed set of every
state bit-packed over the vocabulary ([states, ceil(V/8)] uint8, bit v of byte v // 8 in
little bit order), and the letter transitions as sorted int64 keys (state * letters +
letter class) with int32 targets, so a batch of rows steps with one np.searchsorted and
the C loop (bot/engine/_lstm.c) with a binary search. Saved as one .npz (card.WORDS_FILE).
NumPy only: the daemon loads this.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bot.engine.card import EOS, N_SPECIAL, UNK

WORD = re.compile(r"[^\W\d_]+")
ROOT = 0  # outside a word


def lower(ch: str) -> str:
    """One character's lowercase, where that is one character (else the character)."""
    low = ch.lower()
    return low if len(low) == 1 else ch


def words(text: str) -> list[str]:
    """The lowercase letter runs of `text`, in order: "Don't stop" -> ["don", "t", "stop"].

    Lowercased character by character (`lower`), as the trie reads characters one at a
    time: str.lower() would make a final capital sigma "ς" and "İ" two characters."""
    out = []
    for run in WORD.findall(text):
        low = run.lower()
        if len(low) != len(run) or "Σ" in run:  # rare: context or length changed
            low = "".join(map(lower, run))
        out.append(low)
    return out


def is_letter(ch: str) -> bool:
    """A character that `words` counts as part of a word."""
    return len(ch) == 1 and WORD.fullmatch(ch) is not None


class WordTrie:
    """The persona's words over the model's characters; see the module docstring."""

    def __init__(
        self,
        mask: np.ndarray,
        keys: np.ndarray,
        targets: np.ndarray,
        letter: np.ndarray,
        alphabet: str,
        itos: list[str],
    ) -> None:
        self.mask = mask  # uint8 [states, ceil(V / 8)]: bit v set where id v is allowed
        self.keys = keys  # int64 [E], sorted: state * len(alphabet) + letter class
        self.targets = targets  # int32 [E]: the state that key's letter leads to
        self.letter = letter  # int32 [V]: each id's letter class (alphabet index), -1: none
        self.alphabet = alphabet  # the lowercase letters the model can write, in class order
        self.itos = itos  # the card's id -> character list this trie was built over
        self._class = {ch: k for k, ch in enumerate(alphabet)}
        self._check()
        self._letters: list[int] = letter.tolist()  # for one row at a time

    # -- building and files ----------------------------------------------------------------

    @classmethod
    def build(cls, vocabulary: Iterable[str], itos: list[str]) -> WordTrie:
        """The trie of `vocabulary` (lowercase words, e.g. from `words`) over the card's
        characters `itos` (id -> character; ids 0 and 1 are end-of-post and unknown).
        Words with a letter the model cannot write are left out."""
        v = len(itos)
        letter = np.full(v, -1, np.int32)
        alphabet = sorted({lower(ch) for ch in itos[N_SPECIAL:] if is_letter(ch)})
        klass = {ch: k for k, ch in enumerate(alphabet)}
        for i, ch in enumerate(itos):
            if i >= N_SPECIAL and is_letter(ch):
                letter[i] = klass[lower(ch)]
        # build with dicts (once, offline), then number the nodes breadth-first
        children: list[dict[int, int]] = [{}]
        terminal = [False]
        for word in {"".join(map(lower, w)) for w in vocabulary}:
            if not word or any(ch not in klass for ch in word):
                continue
            node = ROOT
            for ch in word:
                k = klass[ch]
                nxt = children[node].get(k)
                if nxt is None:
                    nxt = len(children)
                    children[node][k] = nxt
                    children.append({})
                    terminal.append(False)
                node = nxt
            terminal[node] = True
        order, new_id = [ROOT], {ROOT: 0}
        for node in order:  # grows as it goes: breadth-first
            for k in sorted(children[node]):
                new_id[children[node][k]] = len(order)
                order.append(children[node][k])
        n_nodes = len(order)
        free = n_nodes  # the extra state: unconstrained until the next non-letter
        a = len(alphabet)
        keys, targets = [], []
        allowed = np.zeros((n_nodes + 1, v), bool)
        non_letter = letter < 0
        non_letter[UNK] = False
        for s, node in enumerate(order):
            for k in sorted(children[node]):
                keys.append(s * a + k)
                targets.append(new_id[children[node][k]])
            kids = np.zeros(a + 1, bool)  # index -1 (non-letters) stays False
            kids[list(children[node])] = True
            allowed[s] = kids[letter]
            if s == ROOT or terminal[node]:
                allowed[s] |= non_letter
        allowed[ROOT, UNK] = True
        allowed[free] = True
        keys += [free * a + k for k in range(a)]
        targets += [free] * a
        return cls(
            np.packbits(allowed, axis=1, bitorder="little"),
            np.array(keys, np.int64),
            np.array(targets, np.int32),
            letter,
            "".join(alphabet),
            list(itos),
        )

    def save(self, path: Path) -> None:
        """One .npz, loadable without pickle."""
        with path.open("wb") as f:
            np.savez(
                f,
                mask=self.mask,
                keys=self.keys,
                targets=self.targets,
                letter=self.letter,
                alphabet=np.array(self.alphabet),
                itos=np.array(self.itos),
            )

    @classmethod
    def load(cls, path: Path) -> WordTrie:
        """Read what `save` wrote; ValueError for a file that does not hold a valid trie
        (a truncated or damaged one included)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                try:
                    return cls(
                        z["mask"],
                        z["keys"],
                        z["targets"],
                        z["letter"],
                        str(z["alphabet"]),
                        [str(ch) for ch in z["itos"]],
                    )
                except KeyError as err:
                    raise ValueError(f"{path}: not a word trie (no {err})") from err
        except (EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: cannot read the word list ({err})") from err

    def _check(self) -> None:
        """The invariants the sampler and the C loop rely on (they index with these)."""
        s, v, a = self.n_states, len(self.itos), len(self.alphabet)
        ok = (
            self.mask.dtype == np.uint8
            and self.mask.shape == (s, -(-v // 8))
            and s >= 2
            and self.keys.dtype == np.int64
            and self.targets.dtype == np.int32
            and self.keys.shape == self.targets.shape == (len(self.keys),)
            and self.letter.dtype == np.int32
            and self.letter.shape == (v,)
            and bool(np.all((self.letter >= -1) & (self.letter < a)))
            and bool(np.all(np.diff(self.keys) > 0))
            and bool(np.all((self.keys >= 0) & (self.keys < s * a)))
            and bool(np.all((self.targets >= 0) & (self.targets < s)))
        )
        if not ok:
            raise ValueError("word trie arrays are inconsistent")

    # -- sampling ------------------------------------------------------------------------

    @property
    def n_states(self) -> int:
        return len(self.mask)

    @property
    def free(self) -> int:
        """The unconstrained state (the last)."""
        return self.n_states - 1

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def allowed(self, states: np.ndarray | int) -> np.ndarray:
        """bool [n, V]: which ids may come next in each of `states` [n] ([V] for one)."""
        bits = np.unpackbits(self.mask[states], axis=-1, count=len(self.itos), bitorder="little")
        return bits.view(bool)

    def advance(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The states after `tokens` [n] (ids) were written in `states` [n]. A letter with
        no edge (never sampled under the mask) leads to the free state."""
        klass = self.letter[tokens]
        keys = states.astype(np.int64) * len(self.alphabet) + klass
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[at] == keys
        new = np.where(found, self.targets[at], self.free)
        return np.where(klass < 0, ROOT, new).astype(np.int32)

    def next_state(self, state: int, token: int) -> int:
        """`advance` for one row, in Python scalars (the NumPy row's per-character path)."""
        k = self._letters[token]
        return ROOT if k < 0 else self._edge(state, k)

    def _edge(self, state: int, k: int) -> int:
        """Where letter class k leads from `state`; the free state where it has no edge."""
        key = state * len(self.alphabet) + k
        at = int(self.keys.searchsorted(key))
        found = at < len(self.keys) and int(self.keys[at]) == key
        return int(self.targets[at]) if found else self.free

    def step(self, state: int, ch: str) -> int:
        """The state after character `ch` (any character, not only the model's)."""
        if not is_letter(ch):
            return ROOT
        k = self._class.get(lower(ch))
        if k is None:
            return self.free
        return self._edge(state, k)

    def state_after(self, text: str, start: int = ROOT) -> int:
        """The state after `text` (a prompt) from `start`. A prompt that ends inside a letter
        run no word starts with ends in the free state: the model may finish that run as it
        likes, and is held to the words from the next non-letter on."""
        state = start
        for ch in text:
            state = self.step(state, ch)
        return state

    def complete(self, state: int) -> bool:
        """True outside a word, at the end of a whole word, and in the free state: where a
        post may stop."""
        return bool(self.mask[state, EOS // 8] >> (EOS % 8) & 1)

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str) or not word or not all(map(is_letter, word)):
            return False
        state = self.state_after(word)
        return state not in (ROOT, self.free) and self.complete(state)

    def __len__(self) -> int:
        """Words in the trie."""
        return int((self.mask[1:-1, EOS // 8] >> (EOS % 8) & 1).sum())
