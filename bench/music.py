"""A music persona's figures for BENCHMARKS.md (issue 19, point 7).

    python bench/music.py --model models/tunes --n 256 --render 5

1. Samples --n raw candidates with the persona's NumPy sampler from the start of a tune
   (temperature --temperature, up to --max-chars characters), in batches of 16 as a wake
   does, and judges each with the music filters (the model's phrase index, no history):
   the share that abc2midi parses, the share that passes every filter, and what each
   reason rejects (first failure wins, as compose() reports it).
2. Renders --render of the surviving tunes (topped up from --corpus, a `bot scrape abc`
   JSONL, when fewer survive) with the real tools, timing each whole render, and reports
   the audio and image sizes and the audio's length over the notation's.
3. Prints the machine and the held-out bits/char from the persona's card.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.engine.card import BARS_FILE, read_card
from bot.engine.engines import load_engine
from bot.music.abc import read_tune
from bot.music.filters import MusicRules, abc2midi_errors, duration_seconds, judge_tune
from bot.music.novelty import load_bar_index
from bot.music.render import ogg_seconds, render
from bot.posting.filters import Candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tunes")
    parser.add_argument("--n", type=int, default=256, help="raw candidates")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-chars", type=int, default=1500)
    parser.add_argument("--render", type=int, default=5, help="tunes to render")
    parser.add_argument("--corpus", type=Path, help="JSONL tunes to render when few survive")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    card = read_card(args.model)
    sampler = load_engine(args.model)
    rules = MusicRules(phrase_index=load_bar_index(args.model / BARS_FILE))
    rng = np.random.default_rng(args.seed)
    texts: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    while len(texts) < args.n:
        batch = sampler.generate("", n=min(16, args.n - len(texts)), max_chars=args.max_chars,
                                 temperature=args.temperature, rng=rng)  # fmt: skip
        texts += [(s.text.strip(), s.stop) for s in batch]
    sample_s = time.perf_counter() - t0

    parses = 0
    reasons: Counter[str] = Counter()
    survivors: list[str] = []
    t0 = time.perf_counter()
    for text, stop in texts:
        try:
            ok = stop == "eos" and not abc2midi_errors(text)
        except Exception:  # noqa: BLE001 - a tool failure counts as not parsed here
            ok = False
        parses += ok
        verdict = judge_tune(Candidate(text, 0.0, stop), rules)
        reasons[verdict.reason or "passed"] += 1
        if verdict.ok:
            survivors.append(text)
    filter_s = time.perf_counter() - t0

    to_render = survivors[: args.render]
    if len(to_render) < args.render and args.corpus is not None:
        lines = args.corpus.read_text(encoding="utf-8").splitlines()
        to_render += [json.loads(line)["text"] for line in lines[: args.render - len(to_render)]]
    timings, audio_kb, image_kb, ratio = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, tune in enumerate(to_render):
            t0 = time.perf_counter()
            done = render(tune, Path(tmp), stem=f"t{i}")
            timings.append(time.perf_counter() - t0)
            audio_kb.append(done.audio.stat().st_size / 1024)
            image_kb.append(done.image.stat().st_size / 1024)
            ratio.append(ogg_seconds(done.audio) / max(duration_seconds(read_tune(tune)), 1e-9))

    figures = {
        "model": str(args.model),
        "held_out_bits_per_char": card.metrics.get("best_val_bits_per_char"),
        "held_out_nats_per_char": card.metrics.get("best_val_loss_nats_per_char"),
        "candidates": len(texts),
        "finished": sum(stop == "eos" for _, stop in texts) / len(texts),
        "parse": parses / len(texts),
        "pass_all": reasons["passed"] / len(texts),
        "reasons": dict(reasons.most_common()),
        "sample_seconds_per_candidate": sample_s / len(texts),
        "filter_seconds_per_candidate": filter_s / len(texts),
        "rendered": len(to_render),
        "render_seconds_median": statistics.median(timings) if timings else None,
        "audio_kib_median": statistics.median(audio_kb) if audio_kb else None,
        "image_kib_median": statistics.median(image_kb) if image_kb else None,
        "audio_over_notation_median": statistics.median(ratio) if ratio else None,
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}",
        "temperature": args.temperature,
        "seed": args.seed,
    }
    for key, value in figures.items():
        print(f"{key}: {value if not isinstance(value, float) else round(value, 4)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
