"""`bot eval`: how good is a trained persona, in numbers an owner can compare.

Held-out loss (nats and bits per character) is computed by the NumPy engine itself, so it
measures exactly the model the daemon runs; the filter pass rate and novelty rate come
from a batch of candidates sampled with the persona's own settings. NumPy only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot import config as cfg
from bot.card import EOS
from bot.corpus import read_jsonl
from bot.corpus.text import expand_paths, read_text, split_paragraphs, strip_gutenberg
from bot.filters import Candidate, apply
from bot.novelty import longest_shared_run
from bot.persona import ModelHandle, Persona, join_post
from bot.sampler import Sampler

EVAL_ROWS = 64  # parallel streams the held-out text is cut into


@dataclass(frozen=True)
class EvalResult:
    persona: str
    candidates: int
    pass_rate: float
    novel_rate: float
    novelty_words: int
    rejections: dict[str, int] = field(default_factory=dict)
    nats_per_char: float | None = None
    bits_per_char: float | None = None
    chars: int = 0


def held_out_documents(paths: list[Path]) -> list[str]:
    docs: list[str] = []
    for path in expand_paths(paths) if paths else []:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            docs += [d.text for d in read_jsonl(path)]
        else:
            docs += split_paragraphs(strip_gutenberg(read_text(path)))
    return docs


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


def evaluate(settings: cfg.Persona, *, corpus: list[Path], count: int, seed: int) -> EvalResult:
    handle = ModelHandle(settings.model)
    loaded = handle.get()
    runner = Persona(settings, rng=np.random.default_rng(seed), model=handle)
    nats = None
    chars = 0
    docs = held_out_documents(corpus)
    if docs:
        nats, chars = cross_entropy(loaded.sampler, docs)
    prompt = runner.pick_prompt()
    samples = loaded.sampler.generate(
        prompt, n=count, max_chars=runner.max_chars(), temperature=settings.temperature,
        top_k=settings.top_k, top_p=settings.top_p, rng=runner.rng,
    )  # fmt: skip
    cands = [
        Candidate(join_post(prompt, s.text, settings.include_prompt), s.mean_logprob, s.stop)
        for s in samples
    ]
    verdicts = apply(cands, runner.rules([], loaded))
    words = settings.filters.novelty_words
    novel = sum(
        loaded.novelty_index is None
        or longest_shared_run(c.text, loaded.novelty_index, loaded.sampler.card.novelty_n) < words
        for c in cands
    )
    return EvalResult(
        persona=settings.name,
        candidates=len(cands),
        pass_rate=sum(v.ok for v in verdicts) / max(len(cands), 1),
        novel_rate=novel / max(len(cands), 1),
        novelty_words=words,
        rejections=dict(Counter(v.reason for v in verdicts if v.reason)),
        nats_per_char=nats,
        bits_per_char=nats / math.log(2) if nats is not None else None,
        chars=chars,
    )
