"""The sense panel (issue 27): do a persona's posts make sense to a reader?

    python bench/panel.py make -p nietzsche --corpus ../shared/corpora/nietzsche_*.txt \
        --seed 2026120801 -o /tmp/panel-2026120801
    python bench/panel.py score /tmp/panel-2026120801 --ratings a.txt --ratings b.txt [--json]

`make` writes a blind sheet (DIR/sheet.md: the rating instruction and numbered texts, nothing
else) and its key (DIR/key.json: number -> source and text). The sheet holds, shuffled by
the seed:

- `posts`: N posts chosen as the daemon chooses them (one wake each, the persona's
  settings from config.yaml, filtered against the posts before it), as `bot eval` does;
- `real`: N runs of the author's own whole sentences, each matched to a post's length, from
  the whole corpus as the persona was trained on it (bot/train/quality.py draws them, as
  for `bot eval`; readers learn nothing from them, so no half is kept apart);
- `markov`: N novel posts of a word Markov chain over the training text (`bot eval
  --markov`), matched to the posts' lengths.

Every text's typography is normalised the same way (no underscores, straight quotes, one
dash), so that no source shows by its marks. Give each reader only sheet.md; a sheet that
has been read is never used again (a new seed makes a fresh one; `make` refuses an
existing DIR).

`score` reads each reader's ratings (lines `number: rating`, 1-5, every text once) and
reports per source the mean and the share rated 4-5, each reader's figures, and how well
the readers agree (the largest difference between two readers' means of one source). A
panel counts only with at least two readers, each of whom rated at least 90% of the real
runs 4-5. BENCHMARKS.md ("Sense panel") holds the instruction and every panel's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the daemon runs: bot pins one thread
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bot.commands.evaluate import daemon_posts, load_persona_corpus, novelty_check
from bot.config import PersonaSettings, load_config
from bot.core.errors import BotError
from bot.posting.persona import ModelHandle, Persona
from bot.train import quality

# Written once, here and in BENCHMARKS.md, word for word as the panels used it.
INSTRUCTION = (
    "For each numbered text, rate how well it makes sense as English prose, 1 to 5: 5 = fully "
    "grammatical and its meaning is clear and coherent throughout; 4 = grammatical and "
    "meaningful with at most a small slip; 3 = partly meaningful, some broken grammar or a "
    "drifting thought; 2 = mostly broken, fragments of sense; 1 = word salad. Judge only sense "
    "and grammar, not style, authorship or whether you recognise the text; archaic forms are "
    "fine."
)
ANSWER = "Answer with one line per text, `number: rating`, for example `12: 3`."
SOURCES = ("posts", "real", "markov")
PER_SOURCE = 20
COUNTS_SHARE = 0.9  # every reader must rate this share of the real runs 4-5
RETRIES = 3  # extra draws for real runs or Markov posts a first draw did not find
_DASH = re.compile(r"\s*-{2,}\s*|\s+-\s+")  # any dash between words, spaced or not
_RATING = re.compile(r"^\s*(\d+)\s*:\s*(\S+)\s*$")


def normalise(text: str) -> str:
    """One typography for every source: straight quotes, no underscores, every dash
    between words written `--` unspaced, whitespace collapsed."""
    text = quality.clean(text).replace("_", "").replace("`", "'")
    return " ".join(_DASH.sub("--", text).split())


# --- make -------------------------------------------------------------------------------


def matched(
    draw: Callable[[list[int], int], list[str]], lengths: list[int], what: str
) -> list[str]:
    """One text per length: `draw(lengths, attempt)` returns texts for some of the lengths
    (it skips those it cannot match); it is called again, a fresh attempt, for as many of
    the last lengths as are still missing, a few times at most."""
    texts: list[str] = []
    for attempt in range(RETRIES + 1):
        texts += draw(lengths[len(texts) :], attempt)
        if len(texts) >= len(lengths):
            return texts[: len(lengths)]
    raise BotError(f"only {len(texts)} of {len(lengths)} {what} found",
                   "pass more of the author's text with --corpus, or ask for fewer with -n")  # fmt: skip


def sheet_texts(settings: PersonaSettings, corpus: list[Path], count: int,
                seed: int) -> dict[str, list[str]]:  # fmt: skip
    """`count` texts of each source (module docstring), normalised."""
    train_docs, val_docs = load_persona_corpus(settings, corpus)
    handle = ModelHandle(settings.model)
    loaded = handle.get()
    runner = Persona(settings, rng=np.random.default_rng(seed), model=handle)
    posts, _, _ = daemon_posts(runner, count)
    if len(posts) < count:
        raise BotError(f"only {len(posts)} of {count} wakes found a post",
                       "see `bot preview --all` for why candidates are rejected")  # fmt: skip
    lengths = [len(p) for p in posts]
    paragraphs = train_docs + val_docs  # readers train on nothing: the whole text serves
    used: set[tuple[int, int]] = set()  # no sentence in two runs

    def real(wanted: list[int], attempt: int) -> list[str]:
        rng = np.random.default_rng([seed, attempt])
        return quality.real_runs(paragraphs, wanted, rng, used=used)

    copied = novelty_check(loaded, settings.filters.novelty_words)
    text = normalise(" ".join(paragraphs))

    def is_novel(post: str) -> bool:  # and not a passage of the author's, however short
        return copied(post) and normalise(post) not in text

    def chain(wanted: list[int], attempt: int) -> list[str]:
        return quality.markov_posts(train_docs, wanted, seed=seed + attempt, is_novel=is_novel,
                                    max_chars=runner.max_chars())  # fmt: skip

    texts = {"posts": posts, "real": matched(real, lengths, "runs of the author's sentences"),
             "markov": matched(chain, lengths, "novel Markov posts")}  # fmt: skip
    return {source: [normalise(t) for t in group] for source, group in texts.items()}


def make(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.exists():
        raise BotError(f"{out} already exists",
                       "a sheet is made once, for fresh readers: pass a new -o DIR and --seed")  # fmt: skip
    settings = load_config(args.config).persona(args.persona)
    texts = sheet_texts(settings, list(args.corpus), args.count, args.seed)
    items = [(source, text) for source in SOURCES for text in texts[source]]
    order = np.random.default_rng(args.seed).permutation(len(items))
    key = {str(n): {"source": items[i][0], "text": items[i][1]}
           for n, i in enumerate(order.tolist(), start=1)}  # fmt: skip
    lines = [INSTRUCTION, "", ANSWER, ""] + [f"{n}. {item['text']}" for n, item in key.items()]
    out.mkdir(parents=True)
    (out / "sheet.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    record = {"seed": args.seed, "persona": settings.name, "per_source": args.count,
              "corpus": [str(p) for p in args.corpus], "instruction": INSTRUCTION,
              "texts": key}  # fmt: skip
    (out / "key.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")  # fmt: skip
    print(f"wrote {out / 'sheet.md'} ({len(key)} texts) and {out / 'key.json'}: give each "
          "reader only sheet.md")  # fmt: skip


# --- score ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    mean: float
    share_4_5: float  # share of the ratings that are 4 or 5


def figures(ratings: list[int]) -> Figures:
    return Figures(mean=float(np.mean(ratings)),
                   share_4_5=sum(r >= 4 for r in ratings) / len(ratings))  # fmt: skip


def read_key(sheet: Path) -> dict[str, Any]:
    try:
        key: dict[str, Any] = json.loads((sheet / "key.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BotError(f"{sheet}: no key.json",
                       "score the folder that `bench/panel.py make` wrote") from None  # fmt: skip
    return key


def read_ratings(path: Path, numbers: set[int]) -> dict[int, int]:
    """One reader's ratings: `number: rating` per line (blank lines skipped), every number
    of the sheet exactly once, ratings 1-5."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BotError(f"{path}: cannot read the ratings ({err.__class__.__name__})",
                       "pass a text file of lines `number: rating`") from None  # fmt: skip
    ratings: dict[int, int] = {}
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = _RATING.match(line)
        if m is None:
            raise BotError(f"{path} line {i}: {line.strip()[:40]!r} is not `number: rating`",
                           "write one line per text, e.g. `12: 3`")  # fmt: skip
        number, rating = int(m.group(1)), m.group(2)
        if number not in numbers:
            raise BotError(f"{path} line {i}: the sheet has no text {number}",
                           f"its texts are numbered 1-{len(numbers)}")  # fmt: skip
        if number in ratings:
            raise BotError(f"{path} line {i}: text {number} is rated twice", "keep one rating")
        if rating not in {"1", "2", "3", "4", "5"}:
            raise BotError(f"{path} line {i}: text {number} is rated {rating!r}, not 1-5",
                           "rate each text with a whole number from 1 to 5")  # fmt: skip
        ratings[number] = int(rating)
    missing = sorted(numbers - set(ratings))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise BotError(f"{path}: no rating for text {shown}",
                       f"every text 1-{len(numbers)} needs one line `number: rating`")  # fmt: skip
    return ratings


def score(sheet: Path, paths: list[Path]) -> dict[str, Any]:
    """Per source: the pooled mean and share 4-5 and each reader's; the readers' agreement;
    whether the panel counts and why (module docstring)."""
    key = read_key(sheet)
    source_of = {int(n): item["source"] for n, item in key["texts"].items()}
    readers = [read_ratings(p, set(source_of)) for p in paths]
    sources: dict[str, Any] = {}
    for source in SOURCES:
        numbers = [n for n, s in source_of.items() if s == source]
        each = [figures([r[n] for n in numbers]) for r in readers]
        pooled = figures([r[n] for r in readers for n in numbers])
        sources[source] = {"mean": pooled.mean, "share_4_5": pooled.share_4_5,
                           "readers": [asdict(f) for f in each]}  # fmt: skip
    agreement = max(max(f["mean"] for f in s["readers"]) - min(f["mean"] for f in s["readers"])
                    for s in sources.values())  # fmt: skip
    blind = [str(p) for p, f in zip(paths, sources["real"]["readers"], strict=True)
             if f["share_4_5"] < COUNTS_SHARE]  # fmt: skip
    if len(paths) < 2:
        why = "a panel needs at least two independent readers"
    elif blind:
        why = (f"{', '.join(blind)} rated under {COUNTS_SHARE:.0%} of the author's real runs "
               "4-5")  # fmt: skip
    else:
        why = f"every reader rated at least {COUNTS_SHARE:.0%} of the author's real runs 4-5"
    return {"sheet": str(sheet), "seed": key.get("seed"), "persona": key.get("persona"),
            "readers": [str(p) for p in paths], "sources": sources, "agreement": agreement,
            "counts": len(paths) >= 2 and not blind, "why": why}  # fmt: skip


def report(r: dict[str, Any]) -> None:
    print(f"sheet {r['sheet']} (persona {r['persona']}, seed {r['seed']}), "
          f"{len(r['readers'])} readers: {', '.join(r['readers'])}")  # fmt: skip
    print("| source | mean | rated 4-5 | each reader (mean, 4-5) |")
    print("| --- | --- | --- | --- |")
    for source, s in r["sources"].items():
        each = "; ".join(f"{f['mean']:.2f}, {f['share_4_5']:.0%}" for f in s["readers"])
        print(f"| {source} | {s['mean']:.2f} | {s['share_4_5']:.1%} | {each} |")
    print(f"readers' means of a source differ by at most {r['agreement']:.2f}")
    print(f"the panel {'counts' if r['counts'] else 'does not count'}: {r['why']}")


# --- command line -----------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make", help="Write a blind sheet and its key.")
    mk.add_argument("-p", "--persona", required=True)
    mk.add_argument("-c", "--config", type=Path,
                    help="config.yaml (default: $REVENANT_CONFIG or ./config.yaml)")  # fmt: skip
    mk.add_argument("--corpus", type=Path, nargs="+", required=True,
                    help="The files the persona was trained on (as given to bot train).")  # fmt: skip
    mk.add_argument("--seed", type=int, required=True,
                    help="A new seed for every measurement: a read sheet is never reused.")  # fmt: skip
    mk.add_argument("-n", "--count", type=positive, default=PER_SOURCE,
                    help=f"Texts per source (default {PER_SOURCE}).")  # fmt: skip
    mk.add_argument("-o", "--out", type=Path, required=True, help="A new folder for the sheet.")
    sc = sub.add_parser("score", help="Report the readers' ratings of a sheet.")
    sc.add_argument("sheet", type=Path, help="The folder `make` wrote.")
    sc.add_argument("--ratings", type=Path, action="append", required=True,
                    help="One reader's file of `number: rating` lines; once per reader.")  # fmt: skip
    sc.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "make":
            make(args)
        else:
            result = score(args.sheet, args.ratings)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                report(result)
    except BotError as err:
        print(f"panel: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
