"""The ABC tune-book reader (`bot scrape abc`): one tune per post, canonical headers,
comments, lyrics and chord symbols gone, duplicates and keyless tunes skipped, stats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.corpus.abc import AbcStats, canonical, import_abc, music21_books, split_raw

AIRS = Path(__file__).parent / "data" / "abc" / "airs.abc"


def test_splitter_reads_one_document_per_distinct_tune_with_stats() -> None:
    stats = AbcStats()
    docs = list(import_abc([AIRS], stats))
    assert [d.id for d in docs] == [
        "airs.abc#0001", "airs.abc#0002", "airs.abc#0003", "airs.abc#0004", "airs.abc#0005",
        "airs.abc#101",
    ]  # fmt: skip
    assert (stats.tunes, stats.skipped_duplicate, stats.skipped_no_key) == (6, 1, 1)
    assert stats.meters is not None and stats.keys is not None
    assert stats.meters["2/4"] == 2 and stats.meters["3/4"] == 1
    assert stats.keys["G"] >= 3
    report = stats.format()
    assert "tunes: 6" in report and "duplicate=1" in report and "no_key=1" in report


def test_a_tune_comes_out_in_canonical_shape() -> None:
    docs = {d.id: d.text for d in import_abc([AIRS])}
    first = docs["airs.abc#0001"].split("\n")
    # the first title only; Q: kept; X:, I:, Z: and %% lines gone; K: last
    assert first[:5] == ["T:The Ranting Highlandman.", "M:C|", "L:1/8", "Q:1/2=112", "K:G"]
    assert first[5] == "AG|B2B2 B2AG|B2B2 B2g2|B2B2 B2AG|AGAB A2"
    waltz = docs["airs.abc#101"]
    assert waltz == "T:Words and Chords\nM:3/4\nL:1/8\nK:D\nd2 f2 a2 | g2 e2 c2\nd6 |]"


def test_unit_length_defaults_as_the_standard_says() -> None:
    text = "X:1\nT:Short\nM:2/4\nK:C\nCDEF|GABc|\n\nX:2\nT:Long\nM:6/8\nK:C\nCDE FGA|\n"
    book = [lines for _, lines in split_raw(text)]
    assert len(book) == 2
    short, long = (canonical(lines, "x") for lines in book)
    assert short is not None and long is not None
    assert short.unit == "1/16" and long.unit == "1/8"


def test_scrape_abc_writes_jsonl_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "tunes.jsonl"
    result = CliRunner().invoke(cli, ["scrape", "abc", str(AIRS), "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and all(line["text"].startswith("T:") for line in lines)
    assert "tunes: 6" in result.output and "meters:" in result.output


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="needs abcmidi (apt)")
def test_parsing_only_keeps_what_abc2midi_reads(tmp_path: Path) -> None:
    broken = tmp_path / "broken.abc"
    broken.write_text(AIRS.read_text(encoding="utf-8")
                      + "\nX:200\nT:Broken\nM:2/4\nL:1/8\nK:G\nG(A}B c|d2 [ce|\n",
                      encoding="utf-8")  # fmt: skip
    out = tmp_path / "tunes.jsonl"
    result = CliRunner().invoke(cli, ["scrape", "abc", str(broken), "--parsing-only",
                                      "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "unparsable=1" in result.output
    assert "Broken" not in out.read_text(encoding="utf-8")


def test_music21_books_are_the_public_domain_ones() -> None:
    pytest.importorskip("music21")
    books = music21_books()
    assert [b.name for b in books] == ["ryansMammoth", "oneills1850", "airdsAirs"]
    assert all(any(b.glob("*.abc")) for b in books)


def test_no_books_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scrape", "abc", "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    assert "no tune books given" in result.output
