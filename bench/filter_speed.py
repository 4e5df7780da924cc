"""Filter throughput and pass rate per filter on a persona's own samples (issue 5, point 7).

    python bench/filter_speed.py --model models/nietzsche

1. Samples --n candidates with the persona's NumPy sampler, with the config's prompts,
   temperature, top-k/top-p and length limit, joined to posts as `bot preview` does.
2. Builds the real Rules (configured + better-profanity's default blocklist, the model's
   novelty index, a history of --history posts: survivors of an earlier sample, i.e. what
   the persona would have posted), and times `filters.apply` on rounds of the config's
   `candidates` size, as compose() calls it, two ways:
     steady       one Rules object (compiled blocklist and history shingles cached), and
     per round    `replace(rules, history=...)` every round, as compose() does now, which
                  rebuilds both caches each round.
3. References measured in the same run, on the same texts:
     better-profanity's own `profanity.contains_profanity`, i.e. the obvious way to use the
     word list we ship; set against our blocklist check alone (same list, one regex);
     sampling: the seconds the sampler spent per candidate, the cost filters add to.
4. Pass rate: what each reason rejects with the filters in order (first failure wins, as
   `apply` reports it), and what each filter would reject alone, with its cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import PersonaSettings, load_config
from bot.engine.card import NGRAMS_FILE
from bot.engine.novelty import load_index, longest_shared_run
from bot.engine.sampler import Sampler
from bot.posting.compose import fill_prompt, join_post
from bot.posting.filters import (
    FINISHED,
    LEET,
    MENTION,
    REASONS,
    URL,
    Candidate,
    Rules,
    _normal,
    apply,
    default_blocklist,
    is_balanced,
    is_garbage,
    jaccard,
    shingles,
    strip_unwanted,
)

# -----------------------------------------------------------------------------
model_dir = "models/nietzsche"
n_candidates = 2000  # sampled and filtered
history_size = 200  # past posts for the duplicate filter (config default: 200)
sample_batch = 64  # candidates per sampler call (one prompt each)
ref_n = 100  # texts given to better-profanity (it takes ~0.1 s per post-sized text)
repeats = 3  # timed passes over all candidates (median reported)
seed = 1337
# -----------------------------------------------------------------------------


def sample_posts(
    sampler: Sampler, s: PersonaSettings, n: int, rng: np.random.Generator
) -> tuple[list[Candidate], float]:
    """n candidates as compose() builds them; returns them and the sampling seconds."""
    out: list[Candidate] = []
    t0 = time.perf_counter()
    while len(out) < n:
        template = s.prompts[int(rng.integers(len(s.prompts)))] if s.prompts else ""
        prompt = fill_prompt(template, datetime.now(UTC))
        budget = s.filters.max_chars - (len(prompt) if s.include_prompt else 0)
        samples = sampler.generate(
            prompt,
            n=min(sample_batch, n - len(out)),
            max_chars=max(budget, 1),
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            rng=rng,
        )
        out += [
            Candidate(join_post(prompt, x.text, s.include_prompt), x.mean_logprob, x.stop)
            for x in samples
        ]
    return out, time.perf_counter() - t0


def checks(rules: Rules) -> dict[str, Callable[[str], bool]]:
    """Each filter of `filters.judge` on its own: True means it rejects. Same order."""
    index, n = rules.novelty_index, rules.novelty_n
    return {
        "has_mention": lambda t: bool(MENTION.search(t)),
        "has_url": lambda t: bool(URL.search(t)),
        "too_short": lambda t: len(t) < rules.min_chars,
        "too_long": lambda t: rules.length(t) > rules.max_chars,
        "garbage": is_garbage,
        "unbalanced": lambda t: not is_balanced(t),
        "unfinished": lambda t: not FINISHED.search(t),
        "blocklisted": lambda t: (
            rules.blocked is not None and bool(rules.blocked.search(_normal(t).translate(LEET)))
        ),
        "duplicate": lambda t: any(
            jaccard(mine, old) >= rules.duplicate_jaccard
            for mine in [shingles(t)]
            for old in rules.history_shingles
        ),
        "not_novel": lambda t: (
            index is not None and longest_shared_run(t, index, n) >= rules.novelty_words
        ),
    }


def timed(fn: Callable[[], object], n: int, *, warmup: bool = True) -> float:
    """Median seconds of fn() over n runs, after one warm-up run."""
    if warmup:
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=model_dir, help="persona directory")
    ap.add_argument("--config", default=str(ROOT / "config.yaml"), help="persona settings")
    ap.add_argument("--persona", help="persona in --config (default: the first)")
    ap.add_argument("--n", type=int, default=n_candidates, help="candidates to filter")
    ap.add_argument("--history", type=int, default=history_size)
    ap.add_argument("--temperature", type=float, help="override the config's temperature")
    ap.add_argument("--ref-n", type=int, default=ref_n, help="texts for better-profanity")
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    config = load_config(args.config, check_models=False)
    s = config.persona(args.persona) if args.persona else next(iter(config.personas.values()))
    if args.temperature is not None:
        s = replace(s, temperature=args.temperature)
    model = Path(args.model)
    sampler = Sampler.load(model)
    index = load_index(model / NGRAMS_FILE) if (model / NGRAMS_FILE).is_file() else None
    rng = np.random.default_rng(args.seed)
    f = s.filters
    base = Rules(
        min_chars=f.min_chars,
        max_chars=f.max_chars,
        length=len,
        blocklist=[*f.blocklist, *(default_blocklist() if f.default_blocklist else [])],
        novelty_index=index,
        novelty_n=sampler.card.novelty_n,
        novelty_words=f.novelty_words,
        duplicate_jaccard=f.duplicate_jaccard,
        mentions=f.mentions,
        urls=f.urls,
    )
    print(
        f"persona {s.name!r} from {args.config}: T={s.temperature} top_k={s.top_k} "
        f"top_p={s.top_p} rounds of {s.candidates}, {f.min_chars}-{f.max_chars} chars, "
        f"blocklist {len(base.blocklist)} words, novelty index "
        f"{0 if index is None else index.size:,} {sampler.card.novelty_n}-grams"
    )

    # History: what the persona would have posted, i.e. survivors of an earlier sample.
    history: list[str] = []
    tries = 0
    while len(history) < args.history and tries < 20:
        tries += 1
        pool, _ = sample_posts(sampler, s, max(args.history, sample_batch), rng)
        history += [v.candidate.text for v in apply(pool, base) if v.ok]
    history = history[: args.history]
    rules = replace(base, history=history)
    cands, sample_s = sample_posts(sampler, s, args.n, rng)
    texts = [strip_unwanted(c.text, rules) for c in cands]
    print(
        f"sampled {len(cands)} candidates in {sample_s:.1f} s "
        f"({sample_s / len(cands) * 1e3:.2f} ms each); history {len(history)} posts"
    )

    size = s.candidates
    rounds = [cands[i : i + size] for i in range(0, len(cands), size)]

    def steady() -> list[str | None]:
        return [v.reason for r in rounds for v in apply(r, rules)]

    def per_round() -> None:
        for r in rounds:
            apply(r, replace(rules, history=[*rules.history]))

    from better_profanity import profanity

    profanity.load_censor_words()  # the same default list as default_blocklist()
    blocked = rules.blocked

    ref_texts = texts[: args.ref_n]

    def reference() -> None:
        for t in ref_texts:
            profanity.contains_profanity(t)

    def ours_blocklist() -> None:
        for t in texts:
            blocked is not None and blocked.search(_normal(t).translate(LEET))

    t_steady = timed(steady, args.repeats)
    t_round = timed(per_round, args.repeats)
    t_ref = timed(reference, 1, warmup=False) * len(texts) / len(ref_texts)
    t_block = timed(ours_blocklist, args.repeats)

    in_order = Counter(steady())
    alone: dict[str, dict[str, float]] = {}
    mismatch = 0
    verdicts = [v.reason for r in rounds for v in apply(r, rules)]
    fns = checks(rules)
    hits = {name: [fn(t) for t in texts] for name, fn in fns.items()}
    for i, reason in enumerate(verdicts):
        first = next((name for name in fns if hits[name][i]), None)
        # apply() also rejects survivors that duplicate each other within a round
        if first != reason and not (reason == "duplicate" and first is None):
            mismatch += 1
    for name, fn in fns.items():
        t = timed(lambda fn=fn: [fn(x) for x in texts], args.repeats)
        alone[name] = {"rejects": sum(hits[name]), "us_per_candidate": t / len(texts) * 1e6}

    n = len(cands)
    res = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "candidates": n,
        "history": len(history),
        "sample_ms_per_candidate": sample_s / n * 1e3,
        "steady_per_s": n / t_steady,
        "per_round_per_s": n / t_round,
        "better_profanity_per_s": n / t_ref,
        "our_blocklist_per_s": n / t_block,
        "in_order": {r: in_order.get(r, 0) for r in REASONS},
        "accepted": in_order.get(None, 0),
        "alone": alone,
        "order_mismatches": mismatch,
    }

    print(f"\n{'throughput':<58}{'candidates/s':>14}{'us each':>10}")
    print("-" * 82)
    for label, key in [
        (f"filters.apply, rounds of {size}, Rules built once", "steady_per_s"),
        (f"filters.apply, rounds of {size}, replace(rules) per round", "per_round_per_s"),
        (
            f"reference: better_profanity.contains_profanity ({len(ref_texts)})",
            "better_profanity_per_s",
        ),
        ("our blocklist check alone (same word list)", "our_blocklist_per_s"),
    ]:
        print(f"{label:<58}{res[key]:>14,.0f}{1e6 / res[key]:>10.1f}")
    print(
        f"{'sampling (context): the sampler, per candidate':<58}"
        f"{1e3 / res['sample_ms_per_candidate']:>14,.0f}"
        f"{res['sample_ms_per_candidate'] * 1e3:>10.1f}"
    )
    filter_ms = 1e3 / res["steady_per_s"]
    print("\nratios")
    print(
        f"  our blocklist check vs better-profanity's:   "
        f"{res['our_blocklist_per_s'] / res['better_profanity_per_s']:>8.0f}x faster"
    )
    print(
        f"  all filters vs better-profanity alone:       "
        f"{res['steady_per_s'] / res['better_profanity_per_s']:>8.0f}x faster"
    )
    print(
        f"  filter time / sampling time per candidate:   "
        f"{filter_ms / res['sample_ms_per_candidate']:>8.3f}"
    )
    print(
        f"  replace(rules) per round / Rules built once: "
        f"{res['steady_per_s'] / res['per_round_per_s']:>8.2f}x the time"
    )
    print(f"\n{'filter':<14}{'in order':>10}{'%':>7}{'alone':>9}{'%':>7}{'us each':>10}")
    print("-" * 57)
    for r in REASONS:
        a = alone[r]
        print(
            f"{r:<14}{in_order.get(r, 0):>10}{100 * in_order.get(r, 0) / n:>7.1f}"
            f"{a['rejects']:>9}{100 * a['rejects'] / n:>7.1f}{a['us_per_candidate']:>10.1f}"
        )
    print(f"{'accepted':<14}{res['accepted']:>10}{100 * res['accepted'] / n:>7.1f}")
    if mismatch:
        print(f"warning: {mismatch} candidates where the standalone checks disagree with apply()")
    if args.json:
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
