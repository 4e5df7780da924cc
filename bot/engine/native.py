"""One candidate at a time: the C loop's weight layout and threads, and its NumPy twin.

One candidate (n=1) and priming run in C where setup.py could build bot/engine/_lstm.c: the whole
loop, sampling included, with the hidden units split over two cores so that each core's
share of the weights stays in its L2 (2.4x faster than one core streaming them from L3).
Where it was not built, a single row steps in place in preallocated NumPy buffers (_Row),
with the same draws and the same posts. Used by bot/engine/sampler.py.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from bot.engine.card import EOS, UNK
from bot.engine.draw import SENTENCE_ENDS, SOFT_LIMIT

if TYPE_CHECKING:
    from bot.engine.card import PersonaCard
    from bot.engine.vocab import WordTrie

_lstm: ModuleType | None
try:  # the batch-1 loop in C, on every core (setup.py); optional: NumPy does the same
    from bot.engine import _lstm
except ImportError:  # built where no C compiler was found
    _lstm = None

BLOCK = 64  # output columns per block in bot/engine/_lstm.c (its BW)
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


class Weights(Protocol):
    """What the single-row loops read of a model: a `Sampler` (bot/engine/sampler.py) has
    them, prescaled for the sigmoid trick. A protocol, so this module needs no Sampler."""

    card: PersonaCard
    itos: list[str]
    n_hidden: int
    table: np.ndarray  # [vocab, 4H]: embedding @ layer 0's kernel + bias
    recurrent0: np.ndarray  # layer 0's recurrent matrix
    folded: list[np.ndarray]  # later layers: [kernel ; recurrent ; bias]
    w_out: np.ndarray
    b_out: np.ndarray


class _Row:
    """One sequence stepped in place: Sampler.step's arithmetic for a single row.

    At batch 1 the products are matrix-vector and the time goes to NumPy call overhead and
    temporaries, so this keeps preallocated 1-D buffers and writes every result in place:
    xh[l] = [input from layer l-1 ; own h ; 1], so each later layer is one product with its
    bias folded in, and nothing is concatenated or allocated per character.
    """

    def __init__(self, s: Weights, state: list[tuple[np.ndarray, np.ndarray]]) -> None:
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


@dataclass(frozen=True)
class _Packed:
    """The weights as bot/engine/_lstm.c reads them (see its header comment)."""

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


def _pack(s: Weights, threads: int) -> _Packed:
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


def _split_threads() -> int:
    """Threads for the C loop on a model worth splitting."""
    return min(MAX_THREADS, usable_cpus())


def usable_cpus() -> int:
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
        return usable_cpus()
    return (os.cpu_count() or 1) - (running - 1)


class NativeLoop:
    """The Sampler's C-loop path (a mixin: `Sampler` provides the weights and helpers)."""

    card: PersonaCard
    itos: list[str]
    n_hidden: int
    threads: int
    table: np.ndarray
    b_out: np.ndarray

    if TYPE_CHECKING:

        def zero_state(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]: ...

        @staticmethod
        def _finish(
            text: str, logprob: float, stop: str, max_chars: int, complete: bool = True
        ) -> Sample: ...

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
        """_generate_one in bot/engine/_lstm.c: the same loop, stops and sampling arithmetic, with
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
        """One call of bot/engine/_lstm.c's loop (see its generate() for the arguments): its
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
        return _pack(cast("Weights", self), self.threads)
