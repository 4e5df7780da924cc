"""`bot scrape score`: a MusicXML melody as ABC phrases that abc2midi reads and that sound
the same pitches (key signature, accidentals that last to the bar line, octaves)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.music.abc import read_tune

music21 = pytest.importorskip("music21")

# D major, 3/4: eight bars with an accidental that lasts to the bar line, a rest, a chord
# (its top note counts), a dotted note and octaves from A3 to D6.
BARS = [
    [("D4", 1), ("F#4", 1), ("A4", 1)],
    [("d5", 2), ("C#5", 1)],
    [("B4", 1), ("A#4", 0.5), ("A#4", 0.5), ("B4", 1)],  # A# twice: one accidental
    [("A4", 1.5), ("G4", 0.5), ("F#4", 1)],
    [("E4", 1), ("rest", 1), ("A3", 1)],
    [("chord", 1), ("F#5", 1), ("A5", 1)],
    [("D6", 2), ("C#6", 1)],
    [("D5", 3)],
]
MIDI = [62, 66, 69, 74, 73, 71, 70, 70, 71, 69, 67, 66, 64, 57, 74, 78, 81, 86, 85, 74]


def write_score(path: Path) -> None:
    part = music21.stream.Part()
    for number, bar in enumerate(BARS, 1):
        measure = music21.stream.Measure(number=number)
        if number == 1:
            measure.append(music21.key.KeySignature(2))
            measure.append(music21.meter.TimeSignature("3/4"))
        for name, quarters in bar:
            if name == "rest":
                measure.append(music21.note.Rest(quarterLength=quarters))
            elif name == "chord":
                measure.append(music21.chord.Chord(["D4", "F#4", "D5"], quarterLength=quarters))
            else:
                pitch = name[0].upper() + name[1:]
                measure.append(music21.note.Note(pitch, quarterLength=quarters))
        part.append(measure)
    score = music21.stream.Score([part])
    score.write("musicxml", fp=str(path))


def test_a_score_becomes_abc_that_sounds_the_same(tmp_path: Path) -> None:
    source = tmp_path / "air.musicxml"
    write_score(source)
    out = tmp_path / "air.jsonl"
    result = CliRunner().invoke(cli, ["scrape", "score", str(source), "--bars", "8",
                                      "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (line,) = out.read_text(encoding="utf-8").splitlines()
    text = json.loads(line)["text"]
    assert text.splitlines()[1:4] == ["M:3/4", "L:1/16", "K:D"]
    assert text.count("^A") == 1  # the second A# inherits the first's sharp
    tune = read_tune(text)
    melody = [n.pitch for bar in tune.bars for n in bar.notes if n.pitch is not None]
    assert melody == MIDI
    assert all(bar.duration == tune.meter for bar in tune.music_bars())
    if shutil.which("abc2midi"):
        from bot.music.filters import abc2midi_errors

        assert abc2midi_errors(text) == []
