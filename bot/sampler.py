"""NumPy LSTM engine: load a persona's model.keras, prime it with a prompt, sample posts.

The online path's only model code. It reads the `.keras` zip the trainer wrote (config.json
and the HDF5 weights, through h5py), never imports TensorFlow or Keras, and must agree with
Keras on the same weights (tests/test_parity.py checks 1e-5 on per-step probabilities).

Speed: the first layer's input projection is folded into a [vocab, 4H] table (embedding @
kernel + bias), each later layer does one [x, h, 1] @ [kernel; recurrent; bias] product, and
the gates are reordered (i, f, o | g) with the sigmoid inputs pre-scaled by 1/2 so one tanh
over all 4H columns gives every gate (sigmoid(z) = (1 + tanh(z/2)) / 2). N candidates
advance together as one batch; finished ones leave the batch.

One candidate (n=1) and priming run in C where setup.py could build bot/_lstm.c: the whole
loop, sampling included, with the hidden units split over two cores so that each core's
share of the weights stays in its L2 (2.4x faster than one core streaming them from L3).
Where it was not built, a single row steps in place in preallocated NumPy buffers (_Row),
with the same draws and the same posts.

Constrained decoding (generate's `constraint`, a bot.vocab.WordTrie): before each draw
the characters the trie forbids in each row's state are masked out (before temperature,
top-k and top-p), so a post cannot contain a word outside the persona's vocabulary; the
score stays the model's own log-probability of what was drawn. All three paths (batch,
NumPy row, C loop) apply it, with the same draws and posts as each other.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np

from bot.card import (
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
from bot.errors import ModelError
from bot.vocab import WORD, WordTrie

_lstm: ModuleType | None
try:  # the batch-1 loop in C, on every core (setup.py); optional: NumPy does the same
    from bot import _lstm
except ImportError:  # built where no C compiler was found
    _lstm = None

SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
SOFT_LIMIT = 0.75  # past this fraction of max_chars, a finished sentence ends the post
SENTENCE_ENDS = ".!?"  # past the soft limit, one of these ends the post
BLOCK = 64  # output columns per block in bot/_lstm.c (its BW)
MAX_THREADS = 2  # each owns 1/T of the weights: 2 puts 3 x 256 in two cores' L2
# The C loop finishes a post on one thread once its steps average this many times its
# fastest: others hold the cores. One thread alone takes ~2.4x (192 vs 79 us, measured).
SLOW_FACTOR = 3.0
# Below this much weight per character, the barriers cost more than a second core saves
# (measured, random weights: 2 x 64, 0.22 MB, 0.83x; 2 x 128, 0.81 MB, 1.29x; 3 x 256 2.4x).
SPLIT_BYTES = 2**19
# A C-loop thread gives up on a barrier after waiting this long for the others (a helper
# that never arrives); thread 0 then finishes the post alone, with the same result.
BARRIER_WAIT_S = 1.0
TRAILING_WORD = re.compile(WORD.pattern + "$")


@dataclass(frozen=True)
class Sample:
    text: str  # the continuation exactly as sampled after the prompt (trailing space trimmed)
    mean_logprob: float  # mean log-probability (nats/char, T=1) of the generated characters
    stop: str  # "eos", "sentence" or "length"


@dataclass
class Primed:
    """The model state after the prompt, and what priming had to change in the prompt."""

    state: list[tuple[np.ndarray, np.ndarray]]
    logits: np.ndarray  # [1, vocab]: the next-character logits
    unknown: list[str] = field(default_factory=list)  # prompt characters not in the vocabulary
    word: int = 0  # the word-trie state after the characters fed (a constrained C loop's)


def _sigmoid_prescale(w: np.ndarray, h: int) -> np.ndarray:
    """Reorder Keras' gate columns (i, f, g, o) to (i, f, o, g); halve the sigmoid ones."""
    i, f, g, o = (w[..., k * h : (k + 1) * h] for k in range(4))
    return np.concatenate([0.5 * i, 0.5 * f, 0.5 * o, g], axis=-1).astype(np.float32)


def _read_weights(path: Path, card: PersonaCard) -> dict[str, list[np.ndarray]]:
    """Layer name (as in config.json) -> its arrays, read from the zip with h5py."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
            weights = io.BytesIO(zf.read("model.weights.h5"))
    except FileNotFoundError as err:
        raise ModelError(
            f"{path}: model file missing", f"run `bot train -p {card.name}` or fix the path"
        ) from err
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
        raise ModelError(
            f"{path}: not a complete Keras model file ({err})",
            f"the file is truncated or corrupt; retrain with `bot train -p {card.name}`",
        ) from err
    out: dict[str, list[np.ndarray]] = {}
    seen: dict[str, int] = {}
    try:
        with h5py.File(weights, "r") as h5:
            for layer in config["config"]["layers"]:
                # Keras names weight groups by class, snake_case, numbered in order of use.
                cls = _snake(layer["class_name"])
                k = seen.get(cls, 0)
                seen[cls] = k + 1
                group = h5["layers"][cls if k == 0 else f"{cls}_{k}"]
                if "cell" in group:
                    group = group["cell"]
                arrays = [np.asarray(group["vars"][str(j)]) for j in range(len(group["vars"]))]
                out[layer["config"]["name"]] = arrays
    except (KeyError, OSError, ValueError) as err:
        raise ModelError(
            f"{path}: weights do not match the model's layers ({err})",
            f"retrain with `bot train -p {card.name}`",
        ) from err
    return out


class _Row:
    """One sequence stepped in place: Sampler.step's arithmetic for a single row.

    At batch 1 the products are matrix-vector and the time goes to NumPy call overhead and
    temporaries, so this keeps preallocated 1-D buffers and writes every result in place:
    xh[l] = [input from layer l-1 ; own h ; 1], so each later layer is one product with its
    bias folded in, and nothing is concatenated or allocated per character.
    """

    def __init__(self, s: Sampler, state: list[tuple[np.ndarray, np.ndarray]]) -> None:
        h = s.n_hidden
        self.s, self.n_layer = s, len(state)
        self.xh = [np.ones(2 * h + 1, np.float32) for _ in range(self.n_layer + 1)]
        # layer l's own h lives in xh[l][h:2h] (l >= 1); layer 0's in xh[1][:h]
        self.own = [self.xh[1][:h]] + [self.xh[k][h : 2 * h] for k in range(1, self.n_layer)]
        for k, (h_k, _) in enumerate(state):
            self.own[k][:] = h_k[0]
        self.out = [self.xh[k + 1][:h] for k in range(self.n_layer)]  # next layer's input
        self.c = [c[0].astype(np.float32, copy=True) for _, c in state]
        self.z = np.empty(4 * h, np.float32)
        self.tmp = np.empty(h, np.float32)
        z = self.z
        self.i, self.f, self.o, self.g, self.sig = z[:h], z[h : 2 * h], z[2 * h : 3 * h], \
            z[3 * h :], z[: 3 * h]  # fmt: skip
        self.logits = np.empty(s.card.vocab_size, np.float32)

    def _cell(self, c: np.ndarray, h_out: np.ndarray) -> None:
        np.tanh(self.z, out=self.z)
        self.sig *= 0.5
        self.sig += 0.5
        c *= self.f
        np.multiply(self.i, self.g, out=self.tmp)
        c += self.tmp
        np.tanh(c, out=h_out)
        h_out *= self.o

    def step(self, token: int) -> np.ndarray:
        """Feed one token; returns the next-character logits [vocab] (a reused buffer)."""
        s, z = self.s, self.z
        np.dot(self.own[0], s.recurrent0, out=z)
        z += s.table[token]
        self._cell(self.c[0], self.own[0])
        for k in range(1, self.n_layer):
            np.dot(self.xh[k], s.folded[k - 1], out=z)
            self._cell(self.c[k], self.own[k])
            if k + 1 < self.n_layer:
                self.out[k][:] = self.own[k]
        np.dot(self.own[-1], s.w_out, out=self.logits)
        self.logits += s.b_out
        return self.logits

    def state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(h[None].copy(), c[None].copy()) for h, c in zip(self.own, self.c, strict=True)]


class Sampler:
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
                "load it with bot.engines.load_engine",
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

    def _generate_native(
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
        """_generate_one in bot/_lstm.c: the same loop, stops and sampling arithmetic, with
        the hidden units split over self.threads cores. The uniforms are drawn up front and
        `rng` is then set to have given exactly the ones used, as the NumPy loop would."""
        before = rng.bit_generator.state
        uniforms = rng.random(max_chars) if temperature > 0 else np.zeros(max_chars)
        out = np.empty(max_chars, np.int32)
        (n_out, logprob, stop, used, _), after = self._native(
            primed, out, max_chars, temperature, top_k, top_p, uniforms,
            constraint=constraint, word=word,
        )  # fmt: skip
        if used < max_chars and temperature > 0:
            rng.bit_generator.state = before
            rng.random(used)
        text = "".join(self.itos[t] for t in out[:n_out].tolist())
        complete = constraint is None or constraint.complete(after.word)
        stop_name = ("length", "eos", "sentence")[stop]
        return self._finish(text, logprob, stop_name, max_chars, complete)

    def _replay(self, ids: list[int]) -> tuple[np.ndarray, Primed]:
        """Feed ids through the C loop from the zero state: the logits after each id,
        [len(ids), vocab], and the state and logits after the last."""
        n, v = len(ids), self.card.vocab_size
        start = Primed(self.zero_state(1), np.zeros((1, v), np.float32))
        forced = np.array([*ids, 0], np.int32)  # the last is chosen, never fed
        trace = np.empty((n + 1, v), np.float32)
        out = np.empty(n + 1, np.int32)
        _, after = self._native(start, out, n + 1, 0.0, 0, 1.0, np.zeros(n + 1), forced, trace)
        return trace[1:], after

    def _native(
        self,
        primed: Primed,
        out: np.ndarray,
        max_chars: int,
        temperature: float,
        top_k: int,
        top_p: float,
        uniforms: np.ndarray,
        forced: np.ndarray | None = None,
        trace: np.ndarray | None = None,
        slow: float = SLOW_FACTOR,
        alone: bool | None = None,
        constraint: WordTrie | None = None,
        word: int = 0,
        wait: float | None = None,
    ) -> tuple[tuple[int, float, int, int, int], Primed]:
        """One call of bot/_lstm.c's loop (see its generate() for the arguments): its
        result, and the state and logits after the last character fed (`primed` is left as
        it was)."""
        assert _lstm is not None
        pack, nothing = self._packed, np.empty(0, np.int32)
        trie = constraint
        h = np.concatenate([h for h, _ in primed.state], axis=0).astype(np.float32)
        c = np.concatenate([c for _, c in primed.state], axis=0).astype(np.float32)
        logits = primed.logits[0].astype(np.float32)
        if alone is None:  # other processes on the cores now: one thread is quicker
            alone = pack.threads > 1 and _cores_free() < pack.threads
        *result, word = _lstm.generate(
            pack.weights, pack.offsets, self.table, self.b_out, h, c, logits, pack.ends,
            uniforms, out,
            nothing if forced is None else forced, nothing if trace is None else trace,
            nothing if trie is None else trie.mask, nothing if trie is None else trie.keys,
            nothing if trie is None else trie.targets, nothing if trie is None else trie.letter,
            len(primed.state), self.n_hidden, self.card.vocab_size, pack.threads,
            pack.out_blocks, max_chars, int(SOFT_LIMIT * max_chars), top_k, UNK, EOS,
            0 if trie is None else trie.n_states, 0 if trie is None else len(trie.alphabet),
            word, float(temperature), float(top_p), float(slow),
            BARRIER_WAIT_S if wait is None else float(wait), alone,
        )  # fmt: skip
        after = Primed(
            [(h[None, k].copy(), c[None, k].copy()) for k in range(len(h))],
            logits[None],
            word=word,
        )
        n_out, logprob, stop, used, alone_from = result
        return (n_out, logprob, stop, used, alone_from), after

    @functools.cached_property
    def _packed(self) -> _Packed:
        return _pack(self, self.threads)

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


@dataclass(frozen=True)
class _Packed:
    """The weights as bot/_lstm.c reads them (see its header comment)."""

    weights: np.ndarray  # float32, every matrix below, one after another
    offsets: np.ndarray  # int64 [threads * layers + 1]: where each starts; the last: w_out
    out_blocks: int
    ends: np.ndarray  # uint8 [vocab]: 1 for a character that ends a sentence
    threads: int


def _blocked(m: np.ndarray) -> np.ndarray:
    """[K, N] -> [N/BLOCK, K, BLOCK] (N zero-padded to whole blocks), flattened."""
    k, n = m.shape
    nb = -(-n // BLOCK)
    padded = np.zeros((k, nb * BLOCK), np.float32)
    padded[:, :n] = m
    return padded.reshape(k, nb, BLOCK).transpose(1, 0, 2).ravel()


def _pack(s: Sampler, threads: int) -> _Packed:
    """Thread t gets the gate columns (i, f, o, g) of hidden units [u_t, u_t+1) of every
    layer: layer 0's recurrent matrix, then each later layer's [kernel; recurrent; bias]."""
    h = s.n_hidden
    threads = max(1, min(threads, h))
    bounds = [t * (h // threads) + min(t, h % threads) for t in range(threads + 1)]
    parts, offsets, at = [], [], 0
    for t in range(threads):
        cols = np.concatenate(
            [np.arange(g * h + bounds[t], g * h + bounds[t + 1]) for g in range(4)]
        )
        for m in [s.recurrent0, *s.folded]:
            part = _blocked(m[:, cols])
            parts.append(part)
            offsets.append(at)
            at += part.size
    out = _blocked(s.w_out)
    parts.append(out)
    offsets.append(at)
    ends = np.array([ch in SENTENCE_ENDS for ch in s.itos], np.uint8)
    return _Packed(
        np.concatenate(parts), np.array(offsets, np.int64), -(-s.card.vocab_size // BLOCK),
        ends, threads,
    )  # fmt: skip


def describe_engine() -> str:
    """What runs the LSTM here, for `bot check`."""
    if _lstm is None:
        return (
            "NumPy only: bot._lstm was not built, so one candidate at a time runs ~2.5x "
            "slower; install a C compiler and reinstall (pip install -e .)"
        )
    threads = _split_threads()
    return (
        f"C loop for one candidate at a time, on up to {threads} thread{'s' * (threads > 1)}; "
        "NumPy for batches"
    )


def _split_threads() -> int:
    """Threads for the C loop on a model worth splitting."""
    return min(MAX_THREADS, _usable_cpus())


def _usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup v2 CPU quota (a
    container started with --cpus=1 still sees every CPU of the host)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, min(cpus or 1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus or 1


def _cores_free() -> int:
    """CPUs not running another thread at this instant (Linux' runnable count, which
    includes the caller); elsewhere, all of them."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return _usable_cpus()
    return (os.cpu_count() or 1) - (running - 1)


def _ends_sentence(ch: str, t: int, soft: int) -> bool:
    """Past the soft limit, a sentence's last character ends the post (t: its position)."""
    return t >= soft and t > 0 and ch in SENTENCE_ENDS


def _weights(z: np.ndarray, e: np.ndarray, zs: np.ndarray, temperature: float) -> np.ndarray:
    """Unnormalised sampling weights: exp(zs / T), with exp(z) = e reused where zs is z."""
    if temperature != 1.0:
        return np.exp(zs / temperature)
    return e if zs is z else np.exp(zs)


def _truncate(w: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Zero all but the top-k, then all but the top-p mass, of weights along the last axis."""
    if 0 < top_k < w.shape[-1]:
        kth = np.partition(w, -top_k, axis=-1)[..., -top_k, None]
        w = np.where(w < kth, 0.0, w)
    if top_p < 1.0:
        order = np.argsort(-w, axis=-1)
        sorted_w = np.take_along_axis(w, order, -1)
        total = sorted_w.sum(axis=-1, keepdims=True)
        # keep the smallest prefix whose mass reaches top_p (always the top token)
        cut = np.cumsum(sorted_w, axis=-1) / total - sorted_w / total >= top_p
        mask = np.zeros_like(cut)
        np.put_along_axis(mask, order, cut, axis=-1)
        w = np.where(mask, 0.0, w)
    return w


def _snake(name: str) -> str:
    """Keras' own to_snake_case: "LSTM" -> "lstm", "InputLayer" -> "input_layer"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
