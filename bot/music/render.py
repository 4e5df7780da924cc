"""A tune to something people can hear and read: Ogg Vorbis audio and a PNG score.

    done = render(tune_text, Path("var/preview/ada"), stem="2026-12-02T14-00Z")
    done.audio, done.image, done.alt_audio, done.alt_image

    ABC --abc2midi--> MIDI at the tune's Q: (120 quarter notes a minute without one)
        --fluidsynth + a General MIDI soundfont--> WAV
        --ffmpeg: cut 1 s after the last note, faded--> .ogg (Ogg Vorbis)
    ABC --abcm2ps--> SVG --rsvg-convert--> .png (white background)

Every step is a Debian tool run in a temporary folder (bot/music/tools.py); a missing or
failing one is a `ToolError` that names it. The tune is played on a fiddle (General MIDI
program 41, "Violin"), at the tempo it asks for.
"""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.music import tools
from bot.music.abc import read_tune
from bot.music.filters import count_bars, duration_seconds, with_x

MIDI_PROGRAM = 40  # General MIDI "Violin" (0-based, as %%MIDI program counts)
SAMPLE_RATE = 44100
GAIN = 0.8  # fluidsynth's master gain (its default 0.2 is quiet)
RELEASE_SECONDS = 1.0  # sound kept after the last note ends
FADE_SECONDS = 0.5  # the kept release fades out over this
PNG_ZOOM = 1.5  # the score at 1.5x abcm2ps's page size: legible on a phone


@dataclass(frozen=True)
class Rendered:
    audio: Path  # Ogg Vorbis
    image: Path  # PNG
    title: str
    alt_audio: str  # alt text: title, key, meter and a plain description
    alt_image: str
    seconds: float  # how long the tune plays (repeats unfolded), from the notation


def playable(text: str) -> str:
    """The tune as the tools get it: X: first, a fiddle, and a Q: when it has none."""
    tune = read_tune(text)
    lines = with_x(text.strip()).split("\n")
    header_end = next((i for i, line in enumerate(lines) if line.startswith("K:")), 0)
    extra = [f"%%MIDI program {MIDI_PROGRAM}"]
    if not tune.tempo_given:
        extra.append(f"Q:1/4={tune.qpm:.0f}")
    return "\n".join(lines[:header_end] + extra + lines[header_end:]) + "\n"


def alt_texts(text: str) -> tuple[str, str, str]:
    """(title, audio alt text, image alt text): what a screen reader says about the post."""
    tune = read_tune(text)
    title = tune.title or "Untitled"
    key = tune.key.strip() or "no key"
    meter = tune.meter_text or "free meter"
    seconds = duration_seconds(tune)
    facts = (f"{count_bars(tune)} bars in {meter}, key of {key}, "
             f"{tune.qpm:.0f} quarter notes a minute")  # fmt: skip
    audio = (f"Audio: the tune \u201c{title}\u201d played on a synthesised fiddle, "
             f"about {seconds:.0f} seconds; {facts}.")  # fmt: skip
    image = (f"Sheet music of the tune \u201c{title}\u201d in standard notation, one "
             f"melody line; {facts}.")  # fmt: skip
    return title, audio, image


def render(text: str, folder: Path, *, stem: str = "tune") -> Rendered:
    """Write `<stem>.ogg` and `<stem>.png` for the tune into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "tune"
    source = playable(text)
    with tempfile.TemporaryDirectory(prefix="revenant-render-") as tmp:
        work = Path(tmp)
        (work / "tune.abc").write_text(source, encoding="utf-8")
        out = tools.run(["abc2midi", "tune.abc", "-o", "tune.mid"], work)
        if not (work / "tune.mid").is_file():
            raise tools.ToolError(f"abc2midi wrote no MIDI: {_last_line(out)}")
        font = tools.soundfont()
        if font is None:
            raise tools.ToolError("no General MIDI soundfont (Debian package fluid-soundfont-gm)")
        out = tools.run(["fluidsynth", "-ni", "-g", str(GAIN), "-r", str(SAMPLE_RATE),
                         "-F", "tune.wav", "-T", "wav", str(font), "tune.mid"], work)  # fmt: skip
        if not _nonempty(work / "tune.wav"):
            raise tools.ToolError(f"fluidsynth wrote no audio: {_last_line(out)}")
        # fluidsynth plays on until every voice has died away (seconds of reverb after
        # the last note); keep RELEASE_SECONDS of it, faded out, then encode.
        keep = midi_seconds(work / "tune.mid") + RELEASE_SECONDS
        fade = f"afade=t=out:st={keep - FADE_SECONDS:.3f}:d={FADE_SECONDS}"
        out = tools.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", "tune.wav",
                         "-t", f"{keep:.3f}", "-af", fade, "-c:a", "libvorbis", "-q:a", "4",
                         "tune.ogg"], work)  # fmt: skip
        if not _nonempty(work / "tune.ogg"):
            raise tools.ToolError(f"ffmpeg wrote no Ogg Vorbis: {_last_line(out)}")
        out = tools.run(["abcm2ps", "-q", "-g", "tune.abc", "-O", "score.svg"], work)
        svgs = sorted(work.glob("score*.svg"))
        if not svgs:
            raise tools.ToolError(f"abcm2ps wrote no score: {_last_line(out)}")
        out = tools.run(["rsvg-convert", "-b", "white", "-z", str(PNG_ZOOM), "-o", "score.png",
                         svgs[0].name], work)  # fmt: skip
        if not _nonempty(work / "score.png"):
            raise tools.ToolError(f"rsvg-convert wrote no image: {_last_line(out)}")
        audio, image = folder / f"{safe}.ogg", folder / f"{safe}.png"
        shutil.move(work / "tune.ogg", audio)
        shutil.move(work / "score.png", image)
    title, alt_audio, alt_image = alt_texts(text)
    seconds = duration_seconds(read_tune(text))
    return Rendered(audio, image, title, alt_audio, alt_image, seconds)


def ogg_seconds(path: Path) -> float:
    """An Ogg Vorbis file's length: the last page's granule position over the sample
    rate of its identification header (no decoder needed)."""
    data = path.read_bytes()
    head = data.find(b"\x01vorbis")
    last = data.rfind(b"OggS")
    if head < 0 or last < 0:
        raise ValueError(f"{path} is not Ogg Vorbis")
    rate = struct.unpack_from("<I", data, head + 12)[0]
    granule = struct.unpack_from("<q", data, last + 6)[0]
    return float(granule) / float(rate)


def midi_seconds(path: Path) -> float:
    """How long a standard MIDI file plays: its last event, through its tempo map."""
    data = path.read_bytes()
    if data[:4] != b"MThd":
        raise ValueError(f"{path} is not a MIDI file")
    division = struct.unpack_from(">H", data, 12)[0]  # ticks per quarter note
    if division & 0x8000:
        raise ValueError(f"{path}: SMPTE time division is not supported")
    tempos: list[tuple[int, int]] = []  # (tick, microseconds per quarter note)
    end = 0
    pos = 8 + struct.unpack_from(">I", data, 4)[0]
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], struct.unpack_from(">I", data, pos + 4)[0]
        chunk_end = pos + 8 + length
        if kind == b"MTrk":
            tick, status, i = 0, 0, pos + 8
            while i < chunk_end:
                delta, i = _varlen(data, i)
                tick += delta
                if data[i] & 0x80:
                    status, i = data[i], i + 1
                if status == 0xFF:
                    meta, (size, i) = data[i], _varlen(data, i + 1)
                    if meta == 0x51 and size == 3:
                        tempos.append((tick, int.from_bytes(data[i : i + 3], "big")))
                    i += size
                elif status in (0xF0, 0xF7):
                    size, i = _varlen(data, i)
                    i += size
                else:
                    i += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
            end = max(end, tick)
        pos = chunk_end
    seconds, last_tick, tempo = 0.0, 0, 500_000
    for tick, new_tempo in sorted(tempos):
        if tick >= end:
            break
        seconds += (tick - last_tick) * tempo / division / 1e6
        last_tick, tempo = tick, new_tempo
    return seconds + (end - last_tick) * tempo / division / 1e6


def _varlen(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
