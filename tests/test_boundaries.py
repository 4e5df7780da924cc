"""The online path stays light: importing the CLI pulls in no TensorFlow, Keras or NumPy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
import bot.commands.cli
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "numpy"})
print(",".join(heavy))
"""


def test_import_cli_is_light() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # NumPy is fine inside commands; at import time it would slow every `bot --help`.
    assert result.stdout.strip() == ""


def test_python_dash_m_bot_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "status" in result.stdout


def test_no_import_cycle() -> None:
    """No two bot modules import each other, at module level or inside functions (#18);
    bench/import_graph.py draws the graph (README, Architecture)."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import import_graph
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    edges, _sizes = import_graph.graph(REPO_ROOT)
    assert "bot.commands.cli" in edges and "bot.commands.scrape" in edges["bot.commands.cli"]
    assert import_graph.cycles(edges) == []
