"""Filters for tunes: each rejects with a stable snake_case reason, as bot/posting/filters.py does
for prose (stored, counted by `bot status`, asserted in tests).

Reasons, cheapest first:

    unfinished      the sample ran out of characters before the tune's end
    no_key          no K: field with a key
    no_meter        no M: field with a meter (M:none is free meter: not a tune to post)
    too_few_bars    fewer than `min_bars` bars (a pickup bar does not count)
    too_many_bars   more than `max_bars` bars
    bars_off_meter  a bar longer than the meter, or a short one that is not a pickup,
                    the bar before a repeat or an ending, or the last bar
    out_of_range    a note outside `lowest`..`highest` (a fiddle: G3..E6)
    duplicate       shares a 4-bar phrase with a recent tune of the persona, or with a
                    tune chosen earlier in this batch
    not_novel       shares a 4-bar phrase (transposed or not) with the corpus
    unparsable      abc2midi reports an error (the tool's own parser, not ours)
    tools_missing   abc2midi is not installed, so nothing can be checked
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from bot.engine.candidate import Candidate, Verdict
from bot.music import tools
from bot.music.abc import Bar, Tune, read_tune
from bot.music.novelty import copied_phrases, phrase_hashes

REASONS = (
    "unfinished",
    "no_key",
    "no_meter",
    "too_few_bars",
    "too_many_bars",
    "bars_off_meter",
    "out_of_range",
    "duplicate",
    "not_novel",
    "unparsable",
    "tools_missing",
)
G3, E6 = 55, 88  # MIDI numbers of a fiddle's comfortable range
_KEY = re.compile(r"^K:[ \t]*[A-Ga-g]", re.MULTILINE)
_METER = re.compile(r"^M:[ \t]*(C\|?|\(?[\d+]+\)?/\d+)[ \t]*$", re.MULTILINE)
_ERROR = re.compile(r"^Error\b.*$", re.MULTILINE)


@dataclass
class MusicRules:
    min_bars: int = 8
    max_bars: int = 64
    lowest: int = G3
    highest: int = E6
    phrase_index: np.ndarray | None = None  # bars.npy of the persona
    history: Sequence[str] = ()  # recent posts; those that carry a tune are compared
    _seen: list[set[int]] | None = field(default=None, init=False, repr=False)

    @property
    def history_phrases(self) -> list[set[int]]:
        if self._seen is None:
            self._seen = []
            for text in self.history:
                tune_text = extract_tune(text)
                if tune_text:
                    self._seen.append(set(phrase_hashes(read_tune(tune_text))))
        return self._seen

    def remember(self, text: str) -> None:
        self.history_phrases.append(set(phrase_hashes(read_tune(text))))


def extract_tune(text: str) -> str | None:
    """The ABC tune inside a post's text (from its T: line on), or None."""
    match = re.search(r"^T:.*$", text, re.MULTILINE)
    if match is None or not _KEY.search(text):
        return None
    return text[match.start() :].strip()


def count_bars(tune: Tune) -> int:
    """Bars of music as written (repeats not unfolded), a leading pickup not counted."""
    bars = tune.music_bars()
    count = sum(b.rest_bars or 1 for b in bars)
    first = bars[0] if bars else None
    if first is not None and first.meter is not None and first.duration < first.meter:
        count -= 1
    return count


def off_meter_bar(tune: Tune) -> int | None:
    """The number (1-based, among bars of music) of the first bar that disagrees with the
    meter, or None. Short bars are allowed as a pickup (the first), next to a repeat, an
    ending or a double bar (completing a pickup), and as the last bar."""
    bars = tune.music_bars()
    for number, bar in enumerate(bars, 1):
        if bar.meter is None or bar.rest_bars:
            continue
        length = bar.duration
        if length > bar.meter:
            return number
        short_ok = number in (1, len(bars)) or bar.at_section_edge or _before_section(bars, number)
        if length < bar.meter and not short_ok:
            return number
    return None


def _before_section(bars: list[Bar], number: int) -> bool:
    """Whether bar `number` (1-based) is followed by one that opens a section (`|:`, `[1`,
    `|2`, `||`): the short bar before it completes a pickup."""
    return number < len(bars) and bars[number].opens_section


def abc2midi_errors(text: str) -> list[str]:
    """abc2midi's error lines for a tune (an empty list: it parses)."""
    with tempfile.TemporaryDirectory(prefix="revenant-abc-") as tmp:
        folder = Path(tmp)
        (folder / "tune.abc").write_text(with_x(text), encoding="utf-8")
        output = tools.run(["abc2midi", "tune.abc", "-o", "tune.mid"], folder)
        errors = _ERROR.findall(output)
        if not errors and not (folder / "tune.mid").is_file():
            errors = ["Error: no MIDI file written"]
        return errors


def with_x(text: str) -> str:
    """The tune with the reference number line ABC tools want first."""
    return text if text.startswith("X:") else "X:1\n" + text


def judge_tune(candidate: Candidate, rules: MusicRules, *, parse: bool = True) -> Verdict:
    """One candidate tune -> Verdict; the first failing check names the reason. Blank
    lines are taken out first: in ABC a blank line ends the tune, so abc2midi and abcm2ps
    would render only what comes before it (a title and no music) while our own reader
    counted every bar."""
    text = "\n".join(line for line in candidate.text.strip().splitlines() if line.strip())
    candidate = Candidate(text, candidate.mean_logprob, candidate.stop, candidate.prompt,
                          candidate.critic)  # fmt: skip

    def reject(reason: str) -> Verdict:
        return Verdict(candidate, reason)

    if candidate.stop != "eos":
        return reject("unfinished")
    if not _KEY.search(text):
        return reject("no_key")
    if not _METER.search(text):
        return reject("no_meter")
    tune = read_tune(text)
    bars = count_bars(tune)
    if bars < rules.min_bars:
        return reject("too_few_bars")
    if bars > rules.max_bars:
        return reject("too_many_bars")
    if off_meter_bar(tune) is not None:
        return reject("bars_off_meter")
    pitches = tune.pitches()
    if pitches and (min(pitches) < rules.lowest or max(pitches) > rules.highest):
        return reject("out_of_range")
    phrases = set(phrase_hashes(tune))
    if any(phrases & old for old in rules.history_phrases):
        return reject("duplicate")
    if copied_phrases(sorted(phrases), rules.phrase_index):
        return reject("not_novel")
    if parse:
        try:
            if abc2midi_errors(text):
                return reject("unparsable")
        except tools.ToolError:
            return reject("tools_missing")
    return Verdict(candidate, None)


def apply_music(candidates: Iterable[Candidate], rules: MusicRules) -> list[Verdict]:
    """Judge every candidate; a survivor sharing a phrase with an earlier one of the same
    batch is a duplicate."""
    verdicts: list[Verdict] = []
    kept: list[set[int]] = []
    for cand in candidates:
        verdict = judge_tune(cand, rules)
        if verdict.ok:
            mine = set(phrase_hashes(read_tune(verdict.candidate.text)))
            if any(mine & other for other in kept):
                verdict = Verdict(verdict.candidate, "duplicate")
            else:
                kept.append(mine)
        verdicts.append(verdict)
    return verdicts


def describe(text: str) -> str:
    """A plain description of a tune for alt text: title, meter, key, bars, tempo."""
    tune = read_tune(text)
    meter = tune.meter_text or "free meter"
    key = tune.key.strip() or "no key"
    bars = count_bars(tune)
    seconds = duration_seconds(tune)
    return (f"{tune.title or 'Untitled'}: a tune in {meter} in {key}, {bars} bars, "
            f"{tune.qpm:.0f} quarter notes a minute, about {seconds:.0f} seconds")  # fmt: skip


def duration_seconds(tune: Tune) -> float:
    """How long the tune plays, repeats unfolded, at its Q: tempo (or 120 a minute).
    A `:|` plays again the bars since the last `|:` (or the start), without the first
    ending; an ending spans the one bar its number opens."""
    whole_notes = Fraction(0)
    section = Fraction(0)  # what a repeat plays again
    for bar in tune.bars:
        if "|:" in bar.opens or "::" in bar.opens:
            section = Fraction(0)
        length = bar.duration + (bar.meter or Fraction(1)) * bar.rest_bars
        whole_notes += length
        if not any(ch.isdigit() for ch in bar.opens):  # endings are not played twice
            section += length
        if ":|" in bar.closes or "::" in bar.closes:
            whole_notes += section
            section = Fraction(0)
    return float(whole_notes) * 4 * 60.0 / tune.qpm
