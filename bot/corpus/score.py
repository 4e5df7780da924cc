"""Scores (MusicXML) to ABC tunes: a melody line cut into post-sized phrases.

    for doc in import_scores([Path("k458/movement1.mxl")], bars=16):
        ...   # "T:Mozart K458 1, bars 1-16\\nM:6/8\\nL:1/16\\nK:Bb\\nF4 ...|..."

The top part (a string quartet's first violin, a sonata's right hand) is read with music21
(requirements-train.txt; imported here only, never by the daemon), its chords reduced to
the top note, grace notes dropped, and written in the canonical shape of
bot/corpus/abc.py: T:, M:, L:1/16, K:, then `bars` bars a line of four. Phrases that hold
tuplets, or meter or key changes, are skipped (counted), so every phrase written is plain
ABC that abc2midi reads. `mozart_scores()` finds the Mozart movements music21 bundles
(string quartets K. 80, 155, 156, 458 and the first movement of the sonata K. 545; public
domain), for a "Mozart-like" persona fine-tuned from a tunes persona.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from bot.core.errors import CorpusError
from bot.corpus import Document

UNIT = Fraction(1, 16)  # L:1/16: a sixteenth is the shortest note written without a slash
_MAJOR = {0: "C", 1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#", -1: "F",
          -2: "Bb", -3: "Eb", -4: "Ab", -5: "Db", -6: "Gb", -7: "Cb"}  # fmt: skip
_SHARP_ORDER = "FCGDAEB"
_ACCIDENTAL = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}


@dataclass
class ScoreStats:
    phrases: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: {"tuplets": 0, "changes": 0,
                                                              "empty": 0})  # fmt: skip

    def format(self) -> str:
        skipped = " ".join(f"{k}={v}" for k, v in self.skipped.items())
        return f"phrases: {self.phrases}\nskipped: {skipped}"


def mozart_scores() -> list[Path]:
    """The Mozart MusicXML files inside the installed music21 package."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("music21 is not installed", "pip install -r requirements-train.txt")
    root = Path(next(iter(spec.submodule_search_locations))) / "corpus" / "mozart"
    found = sorted(root.rglob("*.mxl"))
    if not found:
        raise CorpusError(f"no Mozart scores under {root}", "reinstall music21")
    return found


def _signature(sharps: int) -> dict[str, int]:
    letters = _SHARP_ORDER[:sharps] if sharps >= 0 else _SHARP_ORDER[::-1][:-sharps]
    return dict.fromkeys(letters, 1 if sharps >= 0 else -1)


def _length(duration: Fraction) -> str | None:
    """An ABC length suffix in sixteenths (`4`, ``, `3/2`), None when not a whole number
    of thirty-seconds (a tuplet)."""
    units = duration / UNIT
    if units.denominator not in (1, 2):
        return None
    if units == 1:
        return ""
    if units.denominator == 1:
        return str(units.numerator)
    return f"{units.numerator}/2"


def _pitch(step: str, octave: int, alter: int, state: dict[tuple[str, int], int]) -> str:
    """A note name with an accidental only where the key or the bar so far says otherwise."""
    mark = _ACCIDENTAL.get(alter, "") if state[(step, octave)] != alter else ""
    state[(step, octave)] = alter
    if octave >= 5:
        return mark + step.lower() + "'" * (octave - 5)
    return mark + step + "," * (4 - octave)


def _measure_abc(measure: Any, signature: dict[str, int]) -> str | None:
    """One measure of the part as ABC, or None when it cannot be written plainly."""
    out = []
    state: dict[tuple[str, int], int] = {}  # (letter, octave) -> alteration so far in the bar
    for element in measure.notesAndRests:
        duration = Fraction(element.duration.quarterLength).limit_denominator(64) / 4
        if duration == 0:
            continue  # a grace note
        length = _length(duration)
        if length is None:
            return None
        if element.isRest:
            out.append("z" + length)
            continue
        pitch = element.pitches[-1] if element.isChord else element.pitch
        step, octave = pitch.step, int(pitch.octave)
        alter = int(pitch.alter)  # the sounding pitch, as MusicXML gives it
        state.setdefault((step, octave), signature.get(step, 0))
        tie = "-" if element.tie is not None and element.tie.type in ("start", "continue") else ""
        out.append(_pitch(step, octave, alter, state) + length + tie)
    return " ".join(out)


def import_scores(
    paths: Iterable[Path], *, bars: int = 16, stats: ScoreStats | None = None
) -> Iterator[Document]:
    """One Document per `bars`-bar phrase of each score's top part."""
    import music21  # offline only: a large package the daemon never loads

    stats = stats if stats is not None else ScoreStats()
    for path in paths:
        score: Any = music21.converter.parse(str(path))  # a Score for MusicXML
        part = score.parts[0]
        measures = list(part.getElementsByClass("Measure"))
        keys = part.flatten().getElementsByClass("KeySignature")
        meters = part.flatten().getElementsByClass("TimeSignature")
        if not keys or not meters or not measures:
            stats.skipped["empty"] += 1
            continue
        sharps, meter = int(keys[0].sharps), meters[0].ratioString
        if re.fullmatch(r"k\d+", path.parent.name):  # music21's Mozart folders: k458/movement1
            name = f"Mozart {path.parent.name.upper()} {path.stem.replace('movement', '')}"
        else:
            name = path.stem
        for start in range(0, len(measures) - bars + 1, bars):
            chunk = measures[start : start + bars]
            if any(m.keySignature is not None and start + i > 0 or
                   m.timeSignature is not None and start + i > 0
                   for i, m in enumerate(chunk)):  # fmt: skip
                stats.skipped["changes"] += 1
                continue
            written = [_measure_abc(m, _signature(sharps)) for m in chunk]
            if any(w is None for w in written):
                stats.skipped["tuplets"] += 1
                continue
            if not any(w for w in written):
                stats.skipped["empty"] += 1
                continue
            lines = [" | ".join(str(w) for w in written[i : i + 4]) + " |"
                     for i in range(0, len(written), 4)]  # fmt: skip
            text = "\n".join([f"T:{name}, bars {start + 1}-{start + bars}", f"M:{meter}",
                              "L:1/16", f"K:{_MAJOR.get(sharps, 'C')}", *lines])  # fmt: skip
            stats.phrases += 1
            yield Document(text=text, created_at=None, source=f"score:{path.name}",
                           id=f"{path.parent.name}/{path.name}#{start + 1}")  # fmt: skip
