"""Decoding constrained to the persona's words (bot/engine/vocab.py): the trie's size and load time,
and what the constraint costs per character in each engine path, in one run.

    python bench/constraint_speed.py --model models/nietzsche

The vocabulary is the words of the persona's training files (card.json's corpus.files,
looked up in --corpus-dir, Project Gutenberg header and footer stripped). Speed: one
280-character post (n=1: the C loop on its default threads, on one thread, and the NumPy
row) and batches of 16 and 64, each with and without the constraint, lengths forced to
the full 280 characters as in bench/sample_speed.py. Free and constrained runs alternate
(--repeats pairs after one warm-up pair): medians, and the median of the pairs' ratios as
the overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sample_speed import full_length

from bot.corpus.text import strip_gutenberg
from bot.engine.card import WORDS_FILE
from bot.engine.sampler import Sampler
from bot.engine.vocab import WordTrie, words

# -----------------------------------------------------------------------------
model_dir = "models/nietzsche"
corpus_dir = ROOT.parent / "shared" / "corpora"
chars = 280
batches = [16, 64]
repeats = 9
temperature = 0.8
prompt = "The "
seed = 1337
# -----------------------------------------------------------------------------


def build(sampler: Sampler, files: list[Path]) -> tuple[WordTrie, dict[str, float]]:
    t0 = time.perf_counter()
    vocabulary: list[str] = []
    for f in files:
        vocabulary += words(strip_gutenberg(f.read_text(encoding="utf-8")))
    t1 = time.perf_counter()
    trie = WordTrie.build(vocabulary, sampler.itos)
    t2 = time.perf_counter()
    return trie, {
        "corpus_words": len(vocabulary),
        "distinct_words": len(set(vocabulary)),
        "trie_words": len(trie),
        "states": trie.n_states,
        "edges": len(trie.keys),
        "tokenise_s": t1 - t0,
        "build_s": t2 - t1,
        "memory_bytes": trie.mask.nbytes + trie.keys.nbytes + trie.targets.nbytes,
    }


def main() -> None:
    global repeats
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=model_dir, help="persona directory")
    ap.add_argument("--corpus-dir", default=str(corpus_dir), help="where card's files are")
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    repeats = args.repeats
    model = Path(args.model)
    sampler = Sampler.load(model)
    files = [Path(args.corpus_dir) / name for name in sampler.card.corpus["files"]]
    trie, res = build(sampler, files)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WORDS_FILE
        trie.save(path)
        res["file_bytes"] = path.stat().st_size
        loads = []
        for _ in range(20):
            t0 = time.perf_counter()
            WordTrie.load(path)
            loads.append(time.perf_counter() - t0)
        res["load_s"] = statistics.median(loads)
    print(
        f"{model}: {res['trie_words']} words ({res['corpus_words']} in the corpus), "
        f"{res['states']} states, {res['edges']} edges; {WORDS_FILE} "
        f"{res['file_bytes'] / 1e6:.2f} MB, {res['memory_bytes'] / 1e6:.2f} MB in memory, "
        f"load {res['load_s'] * 1e3:.2f} ms; built in {res['build_s']:.2f} s "
        f"(+ {res['tokenise_s']:.2f} s reading the words)"
    )

    engines: dict[str, tuple[Sampler, int]] = {}
    if sampler.native:
        engines[f"n=1, C loop, {sampler.threads} thread(s)"] = (sampler, 1)
        engines["n=1, C loop, 1 thread"] = (Sampler.load(model, threads=1), 1)
    row = Sampler.load(model)
    row.native = False
    engines["n=1, NumPy row"] = (row, 1)
    for n in batches:
        engines[f"n={n}, NumPy batch"] = (sampler, n)
    rng = np.random.default_rng(seed)
    timings: dict[str, dict[str, float]] = {}
    print(f"\n{'path':<30}{'free us/char':>14}{'constrained':>14}{'overhead':>10}")
    for name, (engine, n) in engines.items():
        # free and constrained alternate, so that whatever else runs on the machine weighs
        # on both alike; the overhead is the median of the pairs' ratios
        runs: dict[str, list[float]] = {"free": [], "constrained": []}
        with full_length(engine):
            for r in range(repeats + 1):  # the first pair warms up
                for label, constraint in (("free", None), ("constrained", trie)):
                    t0 = time.perf_counter()
                    engine.generate(
                        prompt, n=n, max_chars=chars, temperature=temperature, rng=rng,
                        constraint=constraint,
                    )  # fmt: skip
                    if r:
                        runs[label].append((time.perf_counter() - t0) / (chars * n) * 1e6)
        us = {label: statistics.median(v) for label, v in runs.items()}
        us["overhead"] = statistics.median(
            c / f - 1 for f, c in zip(runs["free"], runs["constrained"], strict=True)
        )
        timings[name] = us
        print(f"{name:<30}{us['free']:>14.2f}{us['constrained']:>14.2f}{us['overhead']:>+10.1%}")
    res["us_per_char"] = timings
    if args.json:
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
