"""Post quality, measured as the daemon posts: `bot eval` for a persona at its configured
settings, next to the same persona at the settings it shipped with before curation (the
reference run: six fixed prompts, temperature 0.6, 16 candidates, no word list, no critic,
posts from 40 characters)
and a word Markov chain over the same training text, all in one run.

    python bench/quality.py -p nietzsche --corpus ../shared/corpora/nietzsche_*.txt \
        [--count 300] [--json out.json]

Prints one table row per variant: judges' ROC AUC (0.5 = indistinguishable; two judges,
each first checked on real against real), invented words, bigram diversity, novelty, pass
rate, mean length and the seconds one wake takes. BENCHMARKS.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the daemon runs: bot pins one thread
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.commands.evaluate import EvalResult, evaluate
from bot.config import load_config

BEFORE_PROMPTS = ("Man is ", "What is good? ", "The philosopher ", "He who ", "Truth is ",
                  "Every morality ")  # fmt: skip


def row(name: str, r: EvalResult) -> str:
    auc = " / ".join(f"{r.auc[j]:.3f}" for j in ("ngram", "style"))
    return (f"| {name} | {auc} | {r.invented_rate:.3%} | {r.diversity:.3f} | "
            f"{1 - r.novel_rate:.1%} | {r.pass_rate:.1%} | {r.mean_chars:.0f} | "
            f"{r.wake_seconds:.2f} s |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-p", "--persona", default="nietzsche")
    ap.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    ap.add_argument("--corpus", type=Path, nargs="+", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--no-reference", action="store_true", help="Skip the before-curation run.")
    ap.add_argument("--reference-prompts", nargs="*", default=list(BEFORE_PROMPTS),
                    help="The reference run's prompts (default: the shipped persona's old six).")  # fmt: skip
    ap.add_argument("--json", type=Path, help="Write every figure here.")
    args = ap.parse_args()

    settings = load_config(args.config).persona(args.persona)
    now = evaluate(settings, corpus=args.corpus, count=args.count, seed=args.seed, markov=True)
    results = {"configured": now}
    if not args.no_reference:
        prompts = tuple(args.reference_prompts)
        before = replace(settings, prompts=prompts, include_prompt=bool(prompts), temperature=0.6,
                         candidates=16, vocabulary="any", critic=False,
                         filters=replace(settings.filters, min_chars=40))  # fmt: skip
        results["reference"] = evaluate(before, corpus=args.corpus, count=args.count,
                                        seed=args.seed)  # fmt: skip
    chk = " / ".join(f"{now.real_vs_real[j]:.3f}" for j in ("ngram", "style"))
    print(f"judges on real vs real (ngram / style): {chk}; author: invented "
          f"{now.author_invented_rate:.3%}, diversity {now.author_diversity:.3f}; "
          f"held-out {now.bits_per_char:.4f} bits/char")  # fmt: skip
    print("| variant | AUC ngram / style | invented | diversity | copied | pass | chars | wake |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(row(name, r))
    m = now.markov
    if m is not None and m.auc:
        print(f"| word Markov chain ({m.posts} novel posts) | {m.auc['ngram']:.3f} / "
              f"{m.auc['style']:.3f} | {m.invented_rate:.3%} | {m.diversity:.3f} | 0% | | "
              f"{m.mean_chars:.0f} | |")  # fmt: skip
    for name, r in results.items():
        print(f"\n{name}, first posts:")
        for text in r.samples:
            print(f"  - {text}")
    if args.json:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2,
                                        ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
