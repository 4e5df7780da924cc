"""eval.json: the last `bot eval` figures, kept in the model folder, and the lines that
`bot new`, `bot eval` and `bot report` show of them. Standard library only (`bot report`
imports it without NumPy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVAL_FILE = "eval.json"  # in the model folder: the last recorded `bot eval` figures


def record_eval(model_dir: Path, result: dict[str, Any]) -> None:
    """Save `bot eval`'s figures beside the model (eval.json), for `bot report`."""
    path = Path(model_dir) / EVAL_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def quality_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures worth a line each, from an EvalResult as a dict."""
    return {
        "posts": result["posts"],
        "distinguishable_auc": result["auc"],
        "invented_rate": result["invented_rate"],
        "author_invented_rate": result["author_invented_rate"],
        "diversity": result["diversity"],
        "author_diversity": result["author_diversity"],
        "novel_rate": result["novel_rate"],
        "pass_rate": result["pass_rate"],
        "bits_per_char": result["bits_per_char"],
    }


def format_figures(f: dict[str, Any]) -> list[str]:
    judges = ", ".join(f"{j} {a:.3f}" for j, a in f["distinguishable_auc"].items())
    lines = [
        f"distinguishable from the author (ROC AUC, 0.5 = not at all): {judges}",
        f"invented words: {f['invented_rate']:.2%} (author: {f['author_invented_rate']:.2%})",
        f"bigram diversity: {f['diversity']:.3f} (author: {f['author_diversity']:.3f})",
        f"novel posts: {f['novel_rate']:.0%}; filter pass rate {f['pass_rate']:.0%}",
    ]
    if f.get("bits_per_char") is not None:
        lines.append(f"held-out loss: {f['bits_per_char']:.3f} bits/char")
    return lines
