"""NumPy LSTM engine: load a persona's model.keras, prime it with a prompt, sample posts.

The online path's only model code. It reads the `.keras` zip the trainer wrote (config.json
and the HDF5 weights, through h5py), never imports TensorFlow or Keras, and must agree with
Keras on the same weights (tests/test_parity.py checks 1e-5 on per-step probabilities).

Speed: the first layer's input projection is folded into a [vocab, 4H] table, gates are
reordered so one tanh gives them all (bot/engine/lstm_weights.py), and N candidates advance
together as one batch. One candidate (n=1) and priming run in C where setup.py could
build bot/engine/_lstm.c, else in preallocated NumPy buffers (bot/engine/native.py, with the same draws
and the same posts). Sampling arithmetic (temperature, top-k/p, sentence ends): bot/engine/draw.py.

Constrained decoding (generate's `constraint`, a bot.engine.vocab.WordTrie): before each draw
the characters the trie forbids in each row's state are masked out (before temperature,
top-k and top-p), so a post cannot contain a word outside the persona's vocabulary; the
score stays the model's own log-probability of what was drawn. All three paths (batch,
NumPy row, C loop) apply it, with the same draws and posts as each other.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import ModuleType

import numpy as np

from bot.core.errors import ModelError
from bot.engine.card import (
    CARD_FILE,
    CHAR_LSTM,
    CHAR_LSTM_KINDS,
    EOS,
    MODEL_FILE,
    NORMALISE,
    UNK,
    PersonaCard,
    read_card,
)
from bot.engine.draw import (
    SENTENCE_END,
    SOFT_LIMIT,
    _ends_sentence,
    _softmax,
    _truncate,
    _weights,
)
from bot.engine.lstm_weights import _read_weights, _sigmoid_prescale
from bot.engine.native import (
    SPLIT_BYTES,
    NativeLoop,
    Primed,
    Sample,
    _Row,
    _split_threads,
)
from bot.engine.vocab import WORD, WordTrie

_lstm: ModuleType | None
try:  # the batch-1 loop in C, on every core (setup.py); optional: NumPy does the same
    from bot.engine import _lstm
except ImportError:  # built where no C compiler was found
    _lstm = None

TRAILING_WORD = re.compile(WORD.pattern + "$")


class Sampler(NativeLoop):
    """Batched stateful LSTM sampling in NumPy, float32 throughout."""

    def __init__(
        self,
        card: PersonaCard,
        weights: dict[str, list[np.ndarray]],
        *,
        threads: int | None = None,
    ) -> None:
        """threads: for one candidate at a time (the C loop); default min(2, usable CPUs),
        or 1 for a model small enough that one core holds it (SPLIT_BYTES)."""
        self.card = card
        # False: priming and generate(n=1) run the NumPy row instead of the C loop
        self.native = _lstm is not None
        arch = card.architecture
        self.n_hidden = h = arch.n_hidden
        self.stoi = card.stoi
        self.itos = card.itos
        try:
            (emb,) = weights["embedding"]
            lstms = [weights[f"lstm_{i}"] for i in range(arch.n_layer)]
            w_out, b_out = weights["logits"]
        except (KeyError, ValueError) as err:
            raise ModelError(
                f"model.keras of {card.name!r} lacks the layer {err}",
                "it was not written by `bot train`; retrain the persona",
            ) from err
        if emb.shape != (arch.vocab_size, arch.n_embd) or w_out.shape != (h, arch.vocab_size):
            raise ModelError(
                f"model.keras of {card.name!r} has vocabulary {emb.shape[0]}, "
                f"card.json says {arch.vocab_size}",
                "the card and the model come from different trainings; retrain the persona",
            )
        k0, r0, b0 = lstms[0]
        self.table = _sigmoid_prescale(emb.astype(np.float64) @ k0 + b0, h)  # [vocab, 4H]
        self.recurrent0 = _sigmoid_prescale(r0, h)
        # later layers: [kernel ; recurrent ; bias], so [x, h, 1] @ folded is the whole input
        self.folded = [
            _sigmoid_prescale(np.concatenate([k, r, b[None]], axis=0), h) for k, r, b in lstms[1:]
        ]
        self.w_out = np.ascontiguousarray(w_out, dtype=np.float32)
        self.b_out = b_out.astype(np.float32)
        small = self.weight_bytes < SPLIT_BYTES
        self.threads = threads or (1 if small else _split_threads())

    @property
    def weight_bytes(self) -> int:
        """Weights read per character at batch 1 (the input table gives one row)."""
        arrays = [self.recurrent0, *self.folded, self.w_out]
        return sum(a.nbytes for a in arrays)

    @classmethod
    def load(cls, directory: Path, *, threads: int | None = None) -> Sampler:
        card = read_card(directory)
        if card.kind not in CHAR_LSTM_KINDS:
            raise ModelError(
                f"{directory / CARD_FILE}: model kind {card.kind!r} is not {CHAR_LSTM}",
                "load it with bot.engine.engines.load_engine",
            )
        return cls(card, _read_weights(directory / MODEL_FILE, card), threads=threads)

    # -- the forward pass ---------------------------------------------------------------

    def zero_state(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        shape = (n, self.n_hidden)
        return [
            (np.zeros(shape, np.float32), np.zeros(shape, np.float32))
            for _ in range(self.card.architecture.n_layer)
        ]

    def _cell(self, z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.n_hidden
        np.tanh(z, out=z)
        gates = z[:, : 3 * h]
        gates *= 0.5
        gates += 0.5
        c_new = z[:, h : 2 * h] * c
        c_new += z[:, :h] * z[:, 3 * h :]
        h_new = np.tanh(c_new)
        h_new *= z[:, 2 * h : 3 * h]
        return h_new, c_new

    def step(
        self, tokens: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """One character for each row: tokens [n] -> logits [n, vocab] and the new state."""
        h, c = state[0]
        z = self.table[tokens] + h @ self.recurrent0
        h, c = self._cell(z, c)
        new_state = [(h, c)]
        for w, (h_prev, c_prev) in zip(self.folded, state[1:], strict=True):
            z = np.concatenate([h, h_prev], axis=1) @ w[:-1]
            z += w[-1]
            h, c = self._cell(z, c_prev)
            new_state.append((h, c))
        logits = h @ self.w_out
        logits += self.b_out
        return logits, new_state

    def probabilities(self, ids: list[int]) -> np.ndarray:
        """Per-step softmax for one sequence from the zero state: [len(ids), vocab], by the
        engine generate(n=1) uses (the C loop replaying `ids`, or the NumPy row)."""
        if self.native:
            logits, _ = self._replay(ids)
        else:
            row = _Row(self, self.zero_state(1))
            logits = np.array([row.step(token).copy() for token in ids])  # a reused buffer
        return np.array([_softmax(z.astype(np.float64)) for z in logits])

    # -- prompts and sampling -------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> tuple[list[int], list[str]]:
        """Prompt -> ids after the card's normalisation; unknown characters are reported and
        mapped to the unknown token (or dropped, if the persona was trained that way)."""
        text = prompt.translate(NORMALISE) if self.card.training.get("normalise", True) else prompt
        drop = self.card.training.get("rare") == "drop"
        ids, unknown = [], []
        for ch in text:
            if ch in self.stoi:
                ids.append(self.stoi[ch])
            else:
                unknown.append(ch)
                if not drop:
                    ids.append(UNK)
        return ids, unknown

    def prime(self, prompt: str) -> Primed:
        """Run the end-of-post token and then the prompt through the model at batch 1.

        Natively where the C loop is built: OpenBLAS' threads, woken by NumPy's products,
        spin on the cores for ~0.1 s after and would starve the loop's threads (3x slower
        per post, measured), so the path to an n=1 post makes no BLAS call."""
        ids, unknown = self.encode_prompt(prompt)
        if self.native:
            _, after = self._replay([EOS, *ids])
            after.unknown = unknown
            return after
        row = _Row(self, self.zero_state(1))
        for token in [EOS, *ids]:
            logits = row.step(token)
        return Primed(row.state(), logits[None].copy(), unknown)

    def generate(
        self,
        prompt: str,
        *,
        n: int,
        max_chars: int,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        rng: np.random.Generator,
        primed: Primed | None = None,
        constraint: WordTrie | None = None,
    ) -> list[Sample]:
        """Sample n continuations of `prompt` in one batch. Temperature 0 is greedy.

        constraint: only words of this trie (built over this persona's characters); the
        state to start in comes from the prompt (WordTrie.state_after). A post cut at
        max_chars inside a word loses that unfinished word."""
        primed = primed or self.prime(prompt)
        start = self._start(constraint, prompt)
        if n == 1:
            return [
                self._generate_one(
                    primed, max_chars, temperature, top_k, top_p, rng, constraint, start
                )
            ]
        state = [(np.repeat(h, n, 0), np.repeat(c, n, 0)) for h, c in primed.state]
        logits = np.repeat(primed.logits, n, 0)
        active = np.arange(n)  # candidate index of each batch row
        chars: list[list[str]] = [[] for _ in range(n)]
        logprob = np.zeros(n)
        stops = ["length"] * n
        soft = int(SOFT_LIMIT * max_chars)
        words = np.full(n, start, np.int32)  # each candidate's trie state
        for t in range(max_chars):
            allowed = None if constraint is None else constraint.allowed(words[active])
            tokens, lp = self._choose(logits, temperature, top_k, top_p, rng, allowed)
            logprob[active] += lp
            if constraint is not None:
                words[active] = constraint.advance(words[active], tokens)
            done = np.zeros(len(active), bool)
            for row, (cand, token) in enumerate(zip(active, tokens, strict=True)):
                if token == EOS:
                    stops[cand], done[row] = "eos", True
                    continue
                ch = self.itos[token]
                chars[cand].append(ch)
                if _ends_sentence(ch, t, soft):
                    stops[cand], done[row] = "sentence", True
            if done.all():
                active = active[:0]
                break
            if done.any():
                keep = ~done
                active, tokens = active[keep], tokens[keep]
                state = [(h[keep], c[keep]) for h, c in state]
            logits, state = self.step(tokens, state)
        return [
            self._finish(
                "".join(chars[i]), logprob[i], stops[i], max_chars,
                constraint is None or constraint.complete(int(words[i])),
            )
            for i in range(n)
        ]  # fmt: skip

    def _start(self, constraint: WordTrie | None, prompt: str) -> int:
        """The trie state after the prompt (0 without a constraint); refuses a trie built
        over another persona's characters."""
        if constraint is None:
            return 0
        if constraint.itos != self.itos:
            raise ValueError(
                f"the word trie was built over other characters than {self.card.name!r}'s"
            )
        return constraint.state_after(prompt)

    def _generate_one(
        self,
        primed: Primed,
        max_chars: int,
        temperature: float,
        top_k: int,
        top_p: float,
        rng: np.random.Generator,
        constraint: WordTrie | None = None,
        word: int = 0,
    ) -> Sample:
        """generate() for one candidate: the C loop where it was built (_generate_native),
        else the row steps in place (_Row) and there is no batch to keep. Both take the same
        draws from `rng`, so the same seed gives the same post as n=1 always did.
        word: the trie state to start in, under `constraint`."""
        if self.native:
            return self._generate_native(
                primed, max_chars, temperature, top_k, top_p, rng, constraint, word
            )
        row = _Row(self, primed.state)
        logits = primed.logits[0]
        chars: list[str] = []
        logprob, stop = 0.0, "length"
        soft = int(SOFT_LIMIT * max_chars)
        for t in range(max_chars):
            allowed = None if constraint is None else constraint.allowed(word)
            token, lp = self._choose_one(logits, temperature, top_k, top_p, rng, allowed)
            logprob += lp
            if token == EOS:
                stop = "eos"
                break
            if constraint is not None:
                word = constraint.next_state(word, token)
            ch = self.itos[token]
            chars.append(ch)
            if _ends_sentence(ch, t, soft):
                stop = "sentence"
                break
            logits = row.step(token)
        complete = constraint is None or constraint.complete(word)
        return self._finish("".join(chars), logprob, stop, max_chars, complete)

    def _choose(
        self,
        logits: np.ndarray,
        temperature: float,
        top_k: int,
        top_p: float,
        rng: np.random.Generator,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pick one token per row of [n, vocab]; return them and their log-probabilities
        under the model (T=1). Inverse-CDF sampling on unnormalised weights. allowed
        (bool [n, vocab]): draw only these (the scores stay unmasked)."""
        z = logits.astype(np.float64)
        z[:, UNK] = -np.inf  # never write the replacement character into a post
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)  # softmax at T=1, unnormalised
        zs = z  # what is sampled from
        if allowed is not None:
            zs = np.where(allowed, z, -np.inf)
            zs -= zs.max(axis=1, keepdims=True)
        if temperature <= 0:
            tokens = zs.argmax(axis=1)
        else:
            w = _truncate(_weights(z, e, zs, temperature), top_k, top_p)
            cum = np.cumsum(w, axis=1)
            u = (1.0 - rng.random((len(z), 1))) * cum[:, -1:]  # in (0, total]
            tokens = (cum < u).sum(axis=1)
        return tokens, z[np.arange(len(z)), tokens] - np.log(e.sum(axis=1))

    def _choose_one(
        self,
        logits: np.ndarray,
        temperature: float,
        top_k: int,
        top_p: float,
        rng: np.random.Generator,
        allowed: np.ndarray | None = None,
    ) -> tuple[int, float]:
        """_choose for one row of [vocab], with the same draws from `rng`. At batch 1 the
        2-D bookkeeping (keepdims, index arrays) costs as much as the sampling itself."""
        z = logits.astype(np.float64)
        z[UNK] = -np.inf
        z -= z.max()
        e = np.exp(z)
        zs = z
        if allowed is not None:
            zs = np.where(allowed, z, -np.inf)
            zs -= zs.max()
        if temperature <= 0:
            token = int(zs.argmax())
        else:
            w = _truncate(_weights(z, e, zs, temperature), top_k, top_p)
            cum = w.cumsum()
            token = int(cum.searchsorted((1.0 - rng.random()) * cum[-1]))  # first cum >= u
        return token, float(z[token]) - math.log(e.sum())

    @staticmethod
    def _finish(
        text: str, logprob: float, stop: str, max_chars: int, complete: bool = True
    ) -> Sample:
        """complete: False where a constrained post was cut inside a word."""
        n = max(len(text) + (stop == "eos"), 1)
        if stop == "length":
            # Cut back to the last finished sentence: a shorter whole post beats a torso.
            ends = [m.end() for m in SENTENCE_END.finditer(text)]
            if ends and ends[-1] >= max_chars // 4:
                text, stop = text[: ends[-1]], "sentence"
            elif not complete:  # no half word either: it would be an invented one
                text = TRAILING_WORD.sub("", text)
        return Sample(text.rstrip(), float(logprob / n), stop)


def describe_engine() -> str:
    """What runs the LSTM here, for `bot check`."""
    if _lstm is None:
        return (
            "NumPy only: bot.engine._lstm was not built, so one candidate at a time runs ~2.5x "
            "slower; install a C compiler and reinstall (pip install -e .)"
        )
    threads = _split_threads()
    return (
        f"C loop for one candidate at a time, on up to {threads} thread{'s' * (threads > 1)}; "
        "NumPy for batches"
    )
