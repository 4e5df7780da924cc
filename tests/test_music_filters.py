"""The music filters: each reason on a tune that should get it, and tunes that should pass
(pickups, repeat endings, meter changes, the range's own edges)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.music.abc import read_tune
from bot.music.filters import (
    REASONS,
    MusicRules,
    apply_music,
    count_bars,
    describe,
    duration_seconds,
    judge_tune,
)
from bot.music.novelty import build_bar_index, phrase_hashes
from bot.posting.filters import Candidate
from tests.fakes.tune_persona import REEL

needs_abc2midi = pytest.mark.skipif(shutil.which("abc2midi") is None,
                                    reason="needs abcmidi (apt)")  # fmt: skip

# A pickup, a short bar before the repeat that completes it, a second pickup after `|:`,
# and a change of meter inside the tune: all in order.
JIG = """\
T:Pickup Jig
M:6/8
L:1/8
Q:3/8=100
K:D
A|d2f a2f|g2e c2A|d2f a2f|g2e d2:|
|:f|a2a b2a|g2e c2A|[M:9/8]d2f a2f g2e|[M:6/8]f2d d2:|"""

# The reel a fourth higher, its notes spelled differently: the same phrases.
REEL_IN_C = """\
T:Another Name
M:4/4
L:1/8
K:C
|:cdef gece|fefg abc'a|gece dcBd|cege c4:|"""

OTHER = """\
T:Unrelated
M:3/4
L:1/4
K:D
D F A|d3|c B A|G2 F|E G B|e3|d c B|A3|"""


def verdict(text: str, rules: MusicRules | None = None, stop: str = "eos") -> str | None:
    return judge_tune(Candidate(text, -1.0, stop), rules or MusicRules()).reason


@needs_abc2midi
@pytest.mark.parametrize("text", [REEL, JIG], ids=["reel", "jig_pickups_meter_change"])
def test_good_tunes_pass(text: str) -> None:
    assert verdict(text) is None


def replace_body(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (REEL.replace("K:G\n", ""), "no_key"),
        (REEL.replace("M:4/4", "M:none"), "no_meter"),
        (REEL.replace("M:4/4\n", ""), "no_meter"),
        ("T:Short\nM:4/4\nL:1/8\nK:G\nGABc dBGB|cBcd efge|dBGB AGFA|GBdB G4|]", "too_few_bars"),
        ("T:Long\nM:2/4\nL:1/8\nK:G\n" + "GABc|" * 65 + "]", "too_many_bars"),
        (replace_body(REEL, "cBcd efge|", "cBcd efgea|"), "bars_off_meter"),  # a bar too long
        (replace_body(REEL, "dBGB AGFA|", "dBGB AGF|"), "bars_off_meter"),  # short, mid-section
        (replace_body(REEL, "GABc dBGB", "F,ABc dBGB"), "out_of_range"),  # F3: below G3
        (replace_body(REEL, "gfga bgdB", "gfga f'gdB"), "out_of_range"),  # F6: above E6
    ],
    ids=[
        "no_key",
        "meter_none",
        "no_meter",
        "too_few",
        "too_many",
        "bar_too_long",
        "bar_too_short",
        "below_g3",
        "above_e6",
    ],
)
def test_each_reason(text: str, reason: str) -> None:
    assert verdict(text) == reason  # all decided before abc2midi runs


def test_a_sample_cut_short_is_unfinished() -> None:
    assert verdict(REEL, stop="length") == "unfinished"


@needs_abc2midi
def test_range_edges_are_inside() -> None:
    edges = replace_body(REEL, "GABc dBGB", "G,ABc dBGB")  # G3 itself
    edges = replace_body(edges, "gfga bgdB", "gfga e'gdB")  # E6 itself
    assert verdict(edges) is None
    assert verdict(edges, MusicRules(lowest=60)) == "out_of_range"  # the persona's own range


@needs_abc2midi
def test_unparsable_is_abc2midis_verdict() -> None:
    broken = replace_body(REEL, "cBcd efge|", "cBcd e}fge|")
    assert verdict(broken) == "unparsable"


@needs_abc2midi
def test_tools_missing_when_abc2midi_is_not_installed(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    assert verdict(REEL) == "tools_missing"


def test_novelty_is_transposition_invariant() -> None:
    assert set(phrase_hashes(read_tune(REEL))) & set(phrase_hashes(read_tune(REEL_IN_C)))
    index = build_bar_index([REEL_IN_C, OTHER])
    assert verdict(REEL, MusicRules(phrase_index=index)) == "not_novel"
    assert verdict(JIG, MusicRules(phrase_index=index)) != "not_novel"


@needs_abc2midi
def test_novel_tune_passes_against_an_index() -> None:
    assert verdict(JIG, MusicRules(phrase_index=build_bar_index([REEL, OTHER]))) is None


def test_duplicate_of_a_recent_tune_even_in_another_key() -> None:
    post = "Another Name (C major)\n\nX:1\n" + REEL_IN_C  # a past post that carried its tune
    assert verdict(REEL, MusicRules(history=[post])) == "duplicate"
    assert verdict(REEL, MusicRules(history=["a post without a tune"])) != "duplicate"


@needs_abc2midi
def test_a_batch_keeps_one_of_two_copies() -> None:
    longer = REEL_IN_C + "\n|:c'bag fedc|BcdB c4|c'bag fedc|BcdB c4:|"  # 8 bars
    verdicts = apply_music([Candidate(REEL, -1.0), Candidate(longer, -1.0)], MusicRules())
    assert [v.reason for v in verdicts] == [None, "duplicate"]


def test_reasons_are_listed() -> None:
    assert {"unfinished", "no_key", "no_meter", "too_few_bars", "too_many_bars",
            "bars_off_meter", "out_of_range", "duplicate", "not_novel", "unparsable",
            "tools_missing"} == set(REASONS)  # fmt: skip


def test_bars_duration_and_description() -> None:
    reel = read_tune(REEL)
    assert count_bars(reel) == 9  # 4 + 3 + two endings, repeats not unfolded
    assert duration_seconds(reel) == pytest.approx(32.0)  # 16 bars of 4/4 at 120 a minute
    jig = read_tune(JIG)
    assert jig.qpm == pytest.approx(150.0)  # Q:3/8=100
    assert describe(REEL).startswith("Test Reel: a tune in 4/4 in G, 9 bars")


@pytest.mark.parametrize(
    "text",
    [
        "T:x\nM:3/0\nL:1/0\nQ:1/0=120\nK:G\nGABc|",  # zero denominators in the header
        "T:x\nM:4/4\nL:1/8\nK:G\nA/0 B/0|(0abc (1d|>B c|",  # in the body, a stray >
        'T:x\nM:4/4\nL:1/8\nK:G\n[CEG|{ab|"unclosed|!trill',  # unclosed chord, grace, text
    ],
    ids=["header", "body", "unclosed"],
)
def test_what_a_model_may_write_is_judged_not_raised(text: str) -> None:
    assert verdict(text) in REASONS


@needs_abc2midi
def test_a_blank_line_inside_a_sample_is_taken_out_before_judging_and_posting() -> None:
    """The tunes persona once wrote `K:B`, a blank line, then the music: abc2midi and
    abcm2ps end a tune at a blank line, so it posted a title, a score with no staff and a
    silent second of audio, though every filter had passed on the bars it counted."""
    sampled = REEL.replace("K:G\n", "K:G\n\n", 1).replace("G4:|\n", "G4:|\n  \n", 1)
    judged = judge_tune(Candidate(sampled, -1.0, "eos"), MusicRules())
    assert judged.reason is None
    assert judged.candidate.text == REEL  # what is posted and rendered: the whole tune
    assert duration_seconds(read_tune(judged.candidate.text)) == duration_seconds(read_tune(REEL))
