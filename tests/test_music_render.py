"""Rendering a tune with the real Debian tools: an Ogg Vorbis file as long as the tune
plays (within 10%), at its Q: tempo or 120 a minute, and a PNG score."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.music import tools
from bot.music.abc import read_tune
from bot.music.filters import duration_seconds
from bot.music.render import ogg_seconds, render
from tests.fakes.tune_persona import REEL

pytestmark = pytest.mark.skipif(bool(tools.missing()), reason="needs the audio tools (apt)")

SLOW_AIR = """\
T:Slow Air
M:3/4
L:1/4
Q:1/4=60
K:D
D F A|d3|c B A|G2 F|E G B|e3|d c B|A3|]"""


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize(("text", "seconds"), [(REEL, 32.0), (SLOW_AIR, 24.0)],
                         ids=["default_tempo_with_repeats", "q_tempo"])  # fmt: skip
def test_audio_lasts_as_long_as_the_tune_plays(text: str, seconds: float, tmp_path: Path) -> None:
    assert duration_seconds(read_tune(text)) == pytest.approx(seconds)  # from the notation
    done = render(text, tmp_path / "out", stem="a tune/with:odd name")
    assert done.audio.parent == tmp_path / "out" and done.audio.name == "a-tune-with-odd-name.ogg"
    assert done.audio.stat().st_size > 10_000
    assert ogg_seconds(done.audio) == pytest.approx(seconds, rel=0.10)
    width, height = png_size(done.image)
    assert width > 300 and height > 100
    assert done.title in done.alt_audio and done.title in done.alt_image


def test_alt_text_names_title_key_and_meter(tmp_path: Path) -> None:
    done = render(SLOW_AIR, tmp_path)
    assert "\u201cSlow Air\u201d" in done.alt_image
    assert "key of D" in done.alt_audio and "3/4" in done.alt_audio
    assert "60 quarter notes a minute" in done.alt_audio


def test_a_missing_tool_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tools.ToolError, match="abc2midi is not installed .*abcmidi"):
        render(REEL, tmp_path / "out")
