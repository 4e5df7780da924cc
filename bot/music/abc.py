"""An ABC tune as bars of notes: what the music filters count and compare.

    tune = read_tune(text)
    tune.meter, tune.key, tune.qpm        # Fraction(6, 8), "G", 120.0
    [bar.duration for bar in tune.bars]   # in whole notes
    tune.pitches()                        # MIDI numbers (key signature and accidentals applied)

This is not a validator: abc2midi decides whether a tune parses (bot/music/tools.py).
It reads what the music filters need from a tune that may be wrong: note lengths (unit
length, broken rhythm, tuplets, chords, rests), pitches (key signature, accidentals that
last to the bar line, octave marks), bar lines with repeats and endings, and inline
changes of meter, key and unit length. Grace notes, decorations, chord symbols, slurs
and ties carry no duration and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

DEFAULT_QPM = 120.0  # quarter notes a minute when a tune has no Q:
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MAJOR_SHARPS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "F": -1,
                 "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}  # fmt: skip
_MODE_SHIFT = {"": 0, "maj": 0, "ion": 0, "m": -3, "min": -3, "aeo": -3, "dor": -2,
               "phr": -4, "lyd": 1, "mix": -1, "loc": -5}  # fmt: skip
_SHARP_ORDER = "FCGDAEB"
_FIELD = re.compile(r"^([A-Za-z]):\s*(.*?)\s*$")
_BAR = re.compile(r"(\[\||\|\]|\|\||::|:*\|+:*|\[(?=\d))(\d[\d,-]*)?")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)")
_LENGTH = re.compile(r"(\d*)(/*)(\d*)")


@dataclass(frozen=True)
class Note:
    pitch: int | None  # MIDI number; None for a rest
    duration: Fraction  # in whole notes


@dataclass
class Bar:
    notes: list[Note] = field(default_factory=list)
    meter: Fraction | None = None  # the bar's full length; None in free meter
    opens: str = ""  # the bar line before it ("|:", "[1", ...)
    closes: str = ""  # the bar line after it ("|", ":|", "||", "|]", ...)
    rest_bars: int = 0  # Z4: a multi-bar rest standing for 4 whole bars

    @property
    def duration(self) -> Fraction:
        return sum((n.duration for n in self.notes), Fraction(0))

    @property
    def opens_section(self) -> bool:
        """Opened by a repeat, an ending (`[1`, `|2`) or a double bar."""
        return any(e in self.opens for e in (":", "[", "||")) or self.opens[-1:].isdigit()

    @property
    def at_section_edge(self) -> bool:
        """Next to a repeat, an ending, a double bar or the end: where a short bar may
        complete a pickup."""
        closes = any(e in self.closes for e in (":", "]", "||"))
        return self.opens_section or closes or "]" in self.opens


@dataclass
class Tune:
    title: str = ""
    meter_text: str = ""
    meter: Fraction | None = None
    unit: Fraction = Fraction(1, 8)
    key: str = ""
    qpm: float = DEFAULT_QPM
    tempo_given: bool = False
    bars: list[Bar] = field(default_factory=list)
    chord_pitches: list[int] = field(default_factory=list)  # chord notes below the top one

    def pitches(self) -> list[int]:
        """Every sounding pitch, chord notes included."""
        melody = [n.pitch for bar in self.bars for n in bar.notes if n.pitch is not None]
        return melody + self.chord_pitches

    def music_bars(self) -> list[Bar]:
        """Bars that hold music (the empty ones between adjacent bar lines left out)."""
        return [b for b in self.bars if b.notes or b.rest_bars]


def parse_meter(text: str) -> Fraction | None:
    text = text.strip()
    if text in ("C", "c", "C|", "c|"):  # common time and cut time: a whole note a bar
        return Fraction(1)
    match = re.fullmatch(r"\(?([\d+]+)\)?\s*/\s*(\d+)", text)
    if match is None or int(match.group(2)) == 0:
        return None
    return Fraction(sum(int(x) for x in match.group(1).split("+") if x), int(match.group(2)))


def parse_fraction(text: str) -> Fraction | None:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or int(match.group(2)) == 0:
        return None
    return Fraction(int(match.group(1)), int(match.group(2)))


def parse_tempo(text: str, unit: Fraction) -> float | None:
    """Quarter notes a minute from a Q: field (`1/4=120`, `3/8=80`, `"Allegro" 1/2=60`,
    or the old `120`, counted in unit notes)."""
    text = re.sub(r'"[^"]*"', "", text).strip()
    match = re.search(r"((?:\d+/\d+\s*)+)=\s*(\d+(?:\.\d+)?)", text)
    if match:
        beat = sum((parse_fraction(p) or Fraction(0) for p in match.group(1).split()), Fraction(0))
        return float(match.group(2)) * float(beat) * 4 if beat else None
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text) * float(unit) * 4
    return None


def key_signature(key: str) -> dict[str, int]:
    """Letter -> alteration in semitones for a K: field (`G`, `Ador`, `Bb mix`, `F#m`)."""
    match = re.match(r"\s*([A-G])([#b]?)\s*([A-Za-z]*)", key)
    if match is None:
        return {}
    tonic = match.group(1) + match.group(2)
    mode = match.group(3).lower()
    shift = _MODE_SHIFT.get(mode if mode == "m" else mode[:3], 0)
    base = _MAJOR_SHARPS.get(tonic)
    if base is None:
        return {}
    sharps = base + shift
    if sharps > 7:  # e.g. G# major: no standard signature; read as the enharmonic flat key
        sharps -= 12
    if sharps < -7:
        sharps += 12
    if sharps >= 0:
        return dict.fromkeys(_SHARP_ORDER[:sharps], 1)
    return dict.fromkeys(_SHARP_ORDER[::-1][:-sharps], -1)


def _length(text: str) -> tuple[Fraction, int]:
    """A note-length suffix (`2`, `/2`, `/`, `//`, `3/2`) as a multiplier, and its size."""
    match = _LENGTH.match(text)
    assert match is not None  # every part is optional
    num, slashes, den = match.groups()
    value = Fraction(int(num) if num else 1)
    if slashes:
        value /= int(den) if den and int(den) else 2 ** len(slashes)  # A/0 read as A/
    return value, match.end()


def read_tune(text: str) -> Tune:
    """Headers and bars of one tune (the canonical shape of bot/corpus/abc.py, or any
    single-voice ABC tune)."""
    tune = Tune()
    lines = text.replace("\r", "").split("\n")
    body_start = len(lines)
    tempo, unit_given = "", False
    for i, line in enumerate(lines):
        match = _FIELD.match(line)
        if match is None:
            continue
        name, value = match.groups()
        if name == "T" and not tune.title:
            tune.title = value
        elif name == "M":
            tune.meter_text, tune.meter = value, parse_meter(value)
        elif name == "L":
            tune.unit = parse_fraction(value) or tune.unit
            unit_given = True
        elif name == "Q":
            tempo = value
        elif name == "K":
            tune.key = value
            body_start = i + 1
            break
    if tune.meter is not None and not unit_given:  # the standard's default unit
        tune.unit = Fraction(1, 16) if tune.meter < Fraction(3, 4) else Fraction(1, 8)
    if tempo:
        qpm = parse_tempo(tempo, tune.unit)
        if qpm:
            tune.qpm, tune.tempo_given = qpm, True
    _read_body("\n".join(lines[body_start:]), tune)
    return tune


def _read_body(body: str, tune: Tune) -> None:
    signature = key_signature(tune.key)
    unit, meter = tune.unit, tune.meter
    bar = Bar(meter=meter)
    accidentals: dict[tuple[str, int], int] = {}
    tuplet_left, tuplet_ratio = 0, Fraction(1)
    broken: Fraction | None = None  # the next note's multiplier after > or <
    last: Note | None = None
    i, n = 0, len(body)

    def close(line: str, ending: str) -> None:
        nonlocal bar, accidentals
        bar.closes = line
        tune.bars.append(bar)
        bar = Bar(meter=meter, opens=line + (f"{ending}" if ending else ""))
        accidentals = {}

    def change(name: str, value: str) -> None:
        """A field in the body, on its own line or inline (`[M:9/8]`): meter, unit, key."""
        nonlocal meter, unit, signature
        if name == "M":
            meter = bar.meter = parse_meter(value)
        elif name == "L":
            unit = parse_fraction(value) or unit
        elif name == "K":
            signature = key_signature(value)

    def add(note: Note) -> None:
        nonlocal tuplet_left, broken, last
        duration = note.duration
        if broken is not None:
            duration *= broken
            broken = None
        if tuplet_left > 0:
            duration *= tuplet_ratio
            tuplet_left -= 1
        last = Note(note.pitch, duration)
        bar.notes.append(last)

    while i < n:
        ch = body[i]
        if ch == "\n":
            i += 1
            line_end = body.find("\n", i)
            line = body[i : line_end if line_end >= 0 else n]
            field = _FIELD.match(line)
            if field is not None and line[:1].isalpha():
                change(*field.groups())
                i = line_end if line_end >= 0 else n
            continue
        if ch == "%":
            end = body.find("\n", i)
            i = end if end >= 0 else n
            continue
        if ch == '"':
            end = body.find('"', i + 1)
            i = end + 1 if end >= 0 else n
            continue
        if ch in "!+" and body.find(ch, i + 1) > i:
            end = body.find(ch, i + 1)
            if "\n" not in body[i:end]:
                i = end + 1
                continue
        if ch == "{":
            end = body.find("}", i)
            i = end + 1 if end >= 0 else n
            continue
        if ch == "[" and i + 2 < n and body[i + 1].isalpha() and body[i + 2] == ":":
            end = body.find("]", i)
            end = end if end >= 0 else n
            change(body[i + 1], body[i + 3 : end])
            i = end + 1
            continue
        bar_match = _BAR.match(body, i) if ch in "|:[" else None
        if bar_match is not None and bar_match.group(0) and (ch != "[" or bar_match.group(2)):
            line, ending = bar_match.group(1), bar_match.group(2) or ""
            if line.startswith("[") and not line.startswith("[|"):
                bar.opens += "[" + ending  # an ending starts inside the current bar
            else:
                close(line, ending)
            i = bar_match.end()
            continue
        if ch == "(" and i + 1 < n and body[i + 1].isdigit():
            match = re.match(r"\((\d)(?::(\d)?)?(?::(\d))?", body[i:])
            assert match is not None
            p = max(2, int(match.group(1)))  # (0 and (1 are no tuplets; read as (2
            q = int(match.group(2)) if match.group(2) else {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(
                p, 3 if meter is not None and meter.numerator % 3 == 0 and meter.numerator > 3
                else 2)  # fmt: skip
            tuplet_ratio = Fraction(q, p)
            tuplet_left = int(match.group(3)) if match.group(3) else p
            i += match.end()
            continue
        if ch in "><":
            j = i
            while j < n and body[j] == ch:
                j += 1
            count = j - i
            dotted = 2 - Fraction(1, 2**count)
            short = Fraction(1, 2**count)
            if last is not None and bar.notes and bar.notes[-1] is last:
                factor = dotted if ch == ">" else short
                bar.notes[-1] = last = Note(last.pitch, last.duration * factor)
                broken = short if ch == ">" else dotted
            i = j
            continue
        if ch in "zx":
            mult, size = _length(body[i + 1 :])
            add(Note(None, unit * mult))
            i += 1 + size
            continue
        if ch in "ZX":
            match = re.match(r"\d+", body[i + 1 :])
            bar.rest_bars = int(match.group(0)) if match else 1
            i += 1 + (match.end() if match else 0)
            continue
        if ch == "[":  # a chord: its first note's length (times the chord's own) counts
            end = body.find("]", i)
            end = end if end >= 0 else n
            inner = body[i + 1 : end]
            pitches: list[int] = []
            first_len: Fraction | None = None
            k = 0
            while k < len(inner):
                match = _NOTE.match(inner, k)
                if match is None:
                    k += 1
                    continue
                pitches.append(_pitch(match, signature, accidentals))
                mult, size = _length(inner[match.end() :])
                first_len = mult if first_len is None else first_len
                k = match.end() + size
            mult, size = _length(body[end + 1 :])
            if pitches:
                add(Note(max(pitches), unit * (first_len or 1) * mult))
                tune.chord_pitches.extend(sorted(pitches)[:-1])
            i = end + 1 + size
            continue
        match = _NOTE.match(body, i)
        if match is not None:
            pitch = _pitch(match, signature, accidentals)
            mult, size = _length(body[match.end() :])
            add(Note(pitch, unit * mult))
            i = match.end() + size
            continue
        i += 1  # spaces, slurs, ties, decorations, `, y, \\
    if bar.notes or bar.rest_bars:
        tune.bars.append(bar)


def _pitch(
    match: re.Match[str], signature: dict[str, int], accidentals: dict[tuple[str, int], int]
) -> int:
    accidental, letter, octaves = match.groups()
    octave = 5 if letter.islower() else 4
    octave += octaves.count("'") - octaves.count(",")
    upper = letter.upper()
    if accidental:
        shift = {"^^": 2, "^": 1, "__": -2, "_": -1, "=": 0}[accidental]
        accidentals[(upper, octave)] = shift
    else:
        shift = accidentals.get((upper, octave), signature.get(upper, 0))
    return 12 * (octave + 1) + _STEPS[upper] + shift
