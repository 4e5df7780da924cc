"""The external programs a music persona runs, and what `bot check` says when one is missing.

    abc2midi       (abcmidi)            parse check, ABC -> MIDI
    fluidsynth     (fluidsynth)         MIDI -> WAV through a General MIDI soundfont
    FluidR3_GM.sf2 (fluid-soundfont-gm) the soundfont
    ffmpeg         (ffmpeg)             WAV -> Ogg Vorbis, the release cut to one second
    abcm2ps        (abcm2ps)            ABC -> SVG score
    rsvg-convert   (librsvg2-bin)       SVG -> PNG

All of them are Debian packages (also on Raspberry Pi OS):

    sudo apt-get install --no-install-recommends abcmidi abcm2ps fluidsynth fluid-soundfont-gm ffmpeg librsvg2-bin
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOUNDFONT_ENV = "REVENANT_SOUNDFONT"  # a .sf2 of your own instead of Debian's
SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),  # Fedora, Arch
)
INSTALL = ("sudo apt-get install --no-install-recommends "
           "abcmidi abcm2ps fluidsynth fluid-soundfont-gm ffmpeg librsvg2-bin")  # fmt: skip
TIMEOUT_SECONDS = 60.0  # one tool run; a tune renders in well under a second


@dataclass(frozen=True)
class Tool:
    name: str  # program (or file) looked for
    package: str  # the Debian package that brings it
    purpose: str


TOOLS = (
    Tool("abc2midi", "abcmidi", "checks that a tune parses; MIDI for the audio"),
    Tool("fluidsynth", "fluidsynth", "MIDI to sound"),
    Tool("soundfont", "fluid-soundfont-gm", "the General MIDI instruments"),
    Tool("ffmpeg", "ffmpeg", "the sound as Ogg Vorbis"),
    Tool("abcm2ps", "abcm2ps", "the score as SVG"),
    Tool("rsvg-convert", "librsvg2-bin", "the score as PNG"),
)


class ToolError(RuntimeError):
    """A tool is missing, failed or timed out; the message names it."""


def soundfont() -> Path | None:
    given = os.environ.get(SOUNDFONT_ENV)
    if given:
        return Path(given) if Path(given).is_file() else None
    return next((p for p in SOUNDFONTS if p.is_file()), None)


def find(tool: str) -> str | None:
    """The path of a program (or of the soundfont), or None when it is missing."""
    if tool == "soundfont":
        found = soundfont()
        return str(found) if found else None
    return shutil.which(tool)


def missing(tools: tuple[Tool, ...] = TOOLS) -> list[Tool]:
    return [t for t in tools if find(t.name) is None]


def install_hint(tools: list[Tool]) -> str:
    packages = " ".join(dict.fromkeys(t.package for t in tools))
    return f"sudo apt-get install --no-install-recommends {packages}"


def run(args: list[str], cwd: Path, timeout: float = TIMEOUT_SECONDS) -> str:
    """Run a tool; its stdout and stderr together. ToolError when missing or timed out."""
    program = find(args[0])
    if program is None:
        tool = next((t for t in TOOLS if t.name == args[0]), None)
        package = tool.package if tool else args[0]
        raise ToolError(f"{args[0]} is not installed (Debian package {package})")
    try:
        done = subprocess.run(
            [program, *args[1:]], cwd=cwd, capture_output=True, text=True,
            timeout=timeout, check=False, errors="replace",
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise ToolError(f"{args[0]} ran past {timeout:.0f} s") from err
    return done.stdout + done.stderr
