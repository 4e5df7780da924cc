"""`bot report`: one self-contained HTML page (#21, point 5), rendered by a real headless
Chromium (Debian's `chromium` package; .ci/run installs it when missing)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli

REPO = Path(__file__).resolve().parents[1]
TINY_TEXT = REPO / "tests" / "data" / "tiny" / "aphorisms.txt"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:  # fail, never skip: CI installs it (.ci/run)
        pytest.fail("no chromium: apt-get install chromium chromium-driver (Debian)")
    return found


def _headless(html: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={html.parent / 'chromium-profile'}", *flags,
         html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def posted(ada_config: Path) -> Path:
    """ada with one real post and its slot's rejected candidates in the store."""
    result = CliRunner().invoke(cli, ["run", "--once", "--publisher", "outbox"])
    assert result.exit_code == 0, result.output
    return ada_config


def test_report_names_the_next_slot_after_a_manual_post(posted: Path, tmp_path: Path) -> None:
    """#26.16: the slot `bot run --once` posted stays done after a `bot post`: the report's
    "if started now" is the next slot, as `bot status` says."""
    assert CliRunner().invoke(cli, ["post"]).exit_code == 0
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(page)])
    assert result.exit_code == 0, result.output
    status = json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)
    next_slot = status["personas"]["ada"]["next_slot_if_started"]
    assert next_slot is not None
    assert f"first at <b>{html.escape(next_slot)}</b>" in page.read_text(encoding="utf-8")


@pytest.mark.slow  # about 7 s: bot eval, then two Chromium starts
def test_report_renders_in_headless_chromium(posted: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")  # bot eval's judges (requirements-train.txt)
    measured = CliRunner().invoke(
        cli, ["eval", "-p", "ada", "--corpus", str(TINY_TEXT), "-n", "10", "--record"]
    )
    assert measured.exit_code == 0, measured.output
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert f"wrote {page} (1 persona" in result.output
    text = page.read_text(encoding="utf-8")
    # Self-contained: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|src=['\"]https?:|@import", text)

    dom = _headless(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    shown = html.unescape(re.sub(r"<[^>]+>", " ", dom.stdout))
    from bot.store import read_only

    ada = tmp_path / "home" / "revenant.db"
    posts = read_only(ada, lambda s: s.recent_posts("ada", 1), [])
    rejected = read_only(ada, lambda s: s.recent_rejections("ada", 1), [])
    assert posts and rejected  # the run --once above stored both
    for key in ("Revenant report", "ada", "Recent posts", "Rejected candidates", "Next runs",
                "Loss curve", "Quality", "distinguishable from the author", "10 posts measured",
                "not_running", rejected[0][1]):  # fmt: skip
        assert key in shown, key
    assert _flat(posts[0].text) in _flat(shown)
    assert _flat(rejected[0][0]) in _flat(shown)  # the candidate itself, beside its reason
    assert "<svg" in dom.stdout and "<polyline" in dom.stdout  # the loss curve, drawn

    shot = tmp_path / "report.png"
    grab = _headless(page, f"--screenshot={shot}", "--window-size=1000,1400")
    assert grab.returncode == 0, grab.stderr
    assert shot.stat().st_size > 10_000
    from PIL import Image  # matplotlib's dependency (requirements-train.txt)

    with Image.open(shot) as image:
        assert image.size == (1000, 1400)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50  # text, table rules, the curve: not a blank page


def test_report_without_a_store_or_eval_says_so(ada_config: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(page), "-p", "ada"])
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "No posts yet." in text and "No rejected candidates recorded." in text
    assert "Not measured yet" in text and "<svg" in text  # the tiny persona's card history


def test_report_falls_back_to_the_cards_loss_png(
    ada_config: Path, tmp_path: Path, make_persona: Callable[..., Path]
) -> None:
    card_path = tmp_path / "models" / "ada" / "card.json"
    card = json.loads(card_path.read_text())
    card["metrics"]["history"] = []
    card_path.write_text(json.dumps(card))
    page = tmp_path / "r.html"
    assert CliRunner().invoke(cli, ["report", "-o", str(page)]).exit_code == 0
    assert "src='data:image/png;base64,iVBORw0KGgo" in page.read_text()


def test_report_unknown_persona_is_one_line(ada_config: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "-p", "nobody"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "nobody" in result.output


def _flat(text: str) -> str:
    return " ".join(text.split())
