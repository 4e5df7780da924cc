"""Fine-tune from the shipped persona, or train from scratch? The validation loss of both,
same budget, at several corpus sizes: the measurement behind `bot new`'s threshold.

    python bench/finetune_threshold.py --corpus ../shared/corpora/tweets_realdonaldtrump_sample.jsonl \\
        --sizes 60000 250000 --minutes 4 --base models/nietzsche --out /tmp/ft-threshold

For each size, the first posts of a seeded shuffle of the corpus up to that many characters
are written to one JSONL file; `bot train` then runs on it twice, in its own process, with
the same budget and settings: from scratch (the trainer's fresh-model start) and with
`--base BASE`. Both hold out the same posts (the split is seeded by the file and --seed),
so the best validation losses compare directly. A tiny critic (`--critic-samples 20`)
keeps the time after training short; it does not touch the loss.

Prints one Markdown row per size (BENCHMARKS.md, "bot new: fine-tune or not").
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path


def subset(corpus: Path, chars: int, seed: int, out: Path) -> tuple[int, int]:
    """The first posts of a seeded shuffle up to `chars` characters; returns (posts, chars)."""
    lines = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    taken, total = [], 0
    for line in lines:
        if total >= chars:
            break
        taken.append(line)
        total += len(json.loads(line)["text"])
    out.write_text("\n".join(taken) + "\n", encoding="utf-8")
    return len(taken), total


def train(
    corpus: Path, out: Path, minutes: float, base: Path | None, seed: int
) -> dict[str, float]:
    bot = Path(sys.executable).with_name("bot")
    args = [str(bot), "train", "-p", "bench", "--corpus", str(corpus), "--max-minutes",
            str(minutes), "--critic-samples", "20", "--seed", str(seed), "-o", str(out)]  # fmt: skip
    if base is not None:
        args += ["--base", str(base)]
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bot train failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    history = card["metrics"]["history"]
    return {
        "best": card["metrics"]["best_val_loss_nats_per_char"],
        "first": history[0]["val_loss"] if history else float("nan"),
        "epochs": len(history),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="JSONL posts")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60_000, 250_000])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--base", type=Path, default=Path("models/nietzsche"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/ft-threshold"))
    parser.add_argument("--seed", type=int, default=1337)
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    print(f"| corpus (chars, posts) | from scratch: epoch 1 -> best ({opts.minutes:g} min) "
          f"| fine-tuned: epoch 1 -> best | fine-tuned minus scratch |")  # fmt: skip
    print("|---|---|---|---|")
    for size in opts.sizes:
        data = opts.out / f"corpus-{size}.jsonl"
        posts, chars = subset(opts.corpus, size, opts.seed, data)
        scratch = train(data, opts.out / f"scratch-{size}", opts.minutes, None, opts.seed)
        tuned = train(data, opts.out / f"tuned-{size}", opts.minutes, opts.base, opts.seed)
        print(f"| {chars:,} ({posts:,}) | {scratch['first']:.3f} -> {scratch['best']:.3f} "
              f"({scratch['epochs']} epochs) | {tuned['first']:.3f} -> {tuned['best']:.3f} "
              f"({tuned['epochs']} epochs) | {tuned['best'] - scratch['best']:+.3f} nats/char |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
