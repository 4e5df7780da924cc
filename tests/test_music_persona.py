"""A music persona end to end: `bot preview` writes sound and score and sends nothing; a
wake posts the tune once with its two media (outbox and the loopback Mastodon server,
retried); `bot check` names missing tools and the install command.

The persona is tests/fakes/tune_persona.py: a real model artifact whose model ends every
sample at once, so a prompt that holds a whole tune is the candidate."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import load_config
from bot.core.post import Post, Receipt
from bot.music import tools
from bot.music.post import media_folder
from bot.posting.persona import Persona
from bot.publishers.mastodon.client import MastodonPublisher
from bot.publishers.outbox import Outbox
from bot.store import SQLiteStore
from tests.fakes.tune_persona import make_tune_persona

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]

needs_tools = pytest.mark.skipif(bool(tools.missing()), reason="needs the audio tools (apt)")

REEL = """\
T:The Test Reel
M:4/4
L:1/8
K:G
|:GABc dBGB|cBcd efge|dBGB AGFA|GBdB G4:|
|:gfge dBGB|cBcd edef|gfga bgdB|1 cAFA G4:|2 cAFA G2z2|]"""

CORPUS_TUNE = """\
T:From the Corpus
M:3/4
L:1/4
K:D
D F A|d3|c B A|G2 F|E G B|e3|d c B|A3|]"""


@pytest.fixture
def tunes_config(tmp_path: Path, write_config: Callable[[str], Path]) -> Path:
    model = make_tune_persona(tmp_path / "models" / "tunes", [CORPUS_TUNE])
    prompts = json.dumps([REEL])
    return write_config(f"""
        personas:
          tunes:
            model: {model}
            prompts: {prompts}
            candidates: 2
            max_rounds: 1
            vocabulary: any
            filters: {{max_chars: 1500}}
        """)


@needs_tools
@pytest.mark.usefixtures("tunes_config", "no_sockets")
def test_preview_writes_sound_and_score_and_sends_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["preview", "-p", "tunes", "-n", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "T:The Test Reel" in result.output
    folder = Path(result.output.split("sound and score of 1 tune: ", 1)[1].split("\n", 1)[0])
    assert folder.is_dir() and folder.is_relative_to(tmp_path / "home" / "preview" / "tunes")
    files = sorted(p.suffix for p in folder.iterdir())
    assert files == [".ogg", ".png"]
    assert all(p.stat().st_size > 1000 for p in folder.iterdir())
    home = sorted(p.name for p in (tmp_path / "home").iterdir())
    assert home == ["preview"]  # no store, no outbox


@needs_tools
@pytest.mark.usefixtures("tunes_config")
def test_preview_json_lists_the_files(tmp_path: Path) -> None:
    out = tmp_path / "listen"
    result = CliRunner().invoke(cli, ["preview", "-p", "tunes", "-n", "1", "--json",
                                      "--media-dir", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    (post,) = item["posts"]
    assert [Path(p).parent for p in post["media"]] == [out, out]
    assert all(Path(p).is_file() for p in post["media"])


def test_a_tune_from_the_corpus_is_not_posted(tunes_config: Path, tmp_path: Path) -> None:
    config = load_config(tunes_config)
    settings = config.personas["tunes"]
    runner = Persona(settings, rng=np.random.default_rng(1))
    in_g = "T:Another Title\nM:3/4\nL:1/4\nK:G\nG B d|g3|f e d|c2 B|A c e|a3|g f e|d3|]"
    comp = runner.compose(prompt=in_g)  # the corpus tune a fourth higher
    assert comp.chosen == [] and comp.reason_counts() == {"not_novel": 2}


def wake(config_path: Path, publisher: object, slot: str = "2026-12-02T14:00Z") -> object:
    config = load_config(config_path)
    store = SQLiteStore(config.store)
    persona = Persona(config.personas["tunes"], store=store, publisher=publisher,  # type: ignore[arg-type]
                      rng=np.random.default_rng(1), now=lambda: datetime.now(UTC))  # fmt: skip
    try:
        return persona.wake(slot, wait=lambda s: False)
    finally:
        store.close()


@needs_tools
def test_a_wake_posts_the_tune_with_sound_and_score_to_the_outbox(tunes_config: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    outbox = Outbox(tmp_path / "outbox")
    result = wake(tunes_config, outbox)
    assert result.outcome == "posted", result  # type: ignore[attr-defined]
    (entry,) = outbox.read("tunes")
    assert entry["text"].startswith("The Test Reel\n\nX:1\nT:The Test Reel\nM:4/4")
    assert [m["mime_type"] for m in entry["media"]] == ["audio/ogg", "image/png"]
    assert "\u201cThe Test Reel\u201d" in entry["media"][0]["description"]
    assert all((tmp_path / "outbox" / m["file"]).stat().st_size > 1000 for m in entry["media"])
    rendered = media_folder("tunes") / "2026-12-02T14-00Z"
    assert not rendered.with_suffix(".ogg").exists() and not rendered.with_suffix(".png").exists()


@needs_tools
def test_a_wake_renders_its_media_in_a_private_folder_not_a_planted_one(
    tunes_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "tmp"  # as /tmp: every local user may write here
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    planted = tmp_path / "someone-elses"
    planted.mkdir()
    (shared / "revenant-media").symlink_to(planted, target_is_directory=True)
    outbox = Outbox(tmp_path / "outbox")
    uploaded: list[Path] = []

    def publish(post: Post, may_send: Callable[[], bool]) -> Receipt:
        uploaded.extend(m.path for m in post.media)
        return outbox.publish(post)

    config = load_config(tunes_config)
    with SQLiteStore(config.store) as store:
        persona = Persona(config.personas["tunes"], store=store, publisher=outbox,
                          rng=np.random.default_rng(1))  # fmt: skip
        result = persona.wake("2026-12-02T14:00Z", publish=publish, wait=lambda s: False)
    assert result.outcome == "posted", result
    assert len(uploaded) == 2 and list(planted.iterdir()) == []
    for path in uploaded:
        assert path.is_relative_to(shared), path
        top = shared / path.relative_to(shared).parts[0]
        assert top.name != "revenant-media", path
        assert path.resolve() == path  # no link on the way
        mode = top.lstat()
        assert mode.st_uid == os.geteuid() and stat.S_IMODE(mode.st_mode) == 0o700, path


@needs_tools
def test_bot_post_leaves_no_media_folder_behind(tunes_config: Path, tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    env = {**os.environ, "TMPDIR": str(shared)}
    result = subprocess.run([sys.executable, "-m", "bot", "post", "-p", "tunes"], env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tunes: posted to outbox" in result.stdout, result.stdout
    assert list(shared.iterdir()) == []


def test_a_media_folder_that_is_no_longer_private_is_not_used_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = media_folder("tunes")
    assert media_folder("tunes") == first  # one folder for the process
    first.parent.chmod(0o755)  # readable by others now
    second = media_folder("tunes")
    assert second.parent != first.parent
    assert stat.S_IMODE(second.parent.lstat().st_mode) == 0o700
    second.parent.rmdir()
    second.parent.symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # swapped
    third = media_folder("tunes")
    assert third.parent not in (first.parent, second.parent) and not third.parent.is_symlink()


@needs_tools
def test_a_wake_posts_once_to_mastodon_with_two_attachments_when_retried(
    tunes_config: Path, mastodon_server: MastodonServer
) -> None:
    mastodon_server.process_media(polls=1)
    mastodon_server.inject_error(502)  # the first status request fails: the wake is retried
    publisher = MastodonPublisher(mastodon_server.base_url, mastodon_server.bot.token or "",
                                  sleep=lambda s: None)  # fmt: skip
    first = wake(tunes_config, publisher)
    assert first.outcome in ("failed", "posted")  # type: ignore[attr-defined]
    second = wake(tunes_config, publisher)
    statuses = mastodon_server.statuses()
    assert len(statuses) == 1, [first, second]
    media = statuses[0]["media_attachments"]
    assert [m["type"] for m in media] == ["audio", "image"]
    assert all(m["description"] and "The Test Reel" in m["description"] for m in media)
    assert mastodon_server.media_uploads == 2  # the retry reused the uploads


@needs_tools
def test_a_lost_answer_is_found_among_the_accounts_posts_not_sent_again(
    tunes_config: Path, mastodon_server: MastodonServer
) -> None:
    mastodon_server.process_media(polls=1)
    mastodon_server.ignore_idempotency_keys()  # only the look at the account can save us
    mastodon_server.inject_late_response(2.0)  # created, but the client hears nothing
    publisher = MastodonPublisher(mastodon_server.base_url, mastodon_server.bot.token or "",
                                  request_timeout_seconds=0.5, settle_seconds=0.0,
                                  sleep=lambda s: None)  # fmt: skip
    result = wake(tunes_config, publisher)
    mastodon_server.drain()
    assert result.outcome == "posted", result  # type: ignore[attr-defined]
    statuses = mastodon_server.statuses()
    assert len(statuses) == 1  # found by its text (ABC, as the server renders it in HTML)
    assert [m["type"] for m in statuses[0]["media_attachments"]] == ["audio", "image"]


@needs_tools
def test_a_retried_tune_carries_the_text_written_ahead_when_the_limit_changed(
    tunes_config: Path, mastodon_server: MastodonServer
) -> None:
    """A tune's first send went out with its ABC and its answer was lost; before the
    retry, another slot's refusals taught the publisher a lower limit. The retry looks
    for, and would send, the text written ahead, not a shorter one: a server that
    ignores keys would otherwise get a second status for the slot."""
    mastodon_server.process_media(polls=1)
    mastodon_server.ignore_idempotency_keys()
    mastodon_server.inject_late_response(2.5)  # created, but the client hears nothing
    statuses_path = f"/api/v1/accounts/{mastodon_server.bot.id}/statuses"
    mastodon_server.inject_error(503, path=statuses_path, methods=["GET"], count=2)  # looks fail
    publisher = MastodonPublisher(mastodon_server.base_url, mastodon_server.bot.token or "",
                                  request_timeout_seconds=1.0, settle_seconds=0.0,
                                  sleep=lambda s: None)  # fmt: skip
    first = wake(tunes_config, publisher)
    assert first.outcome == "failed", first  # type: ignore[attr-defined]
    mastodon_server.drain()
    refusal = {"error": "Validation failed: Text character limit of 100 exceeded"}
    mastodon_server.inject_error(422, body=refusal, count=2)
    other = wake(tunes_config, publisher, slot="2026-12-02T15:00Z")  # refused, twice
    assert other.outcome == "failed", other  # type: ignore[attr-defined]
    assert publisher.max_chars() < 100

    again = wake(tunes_config, publisher)

    assert again.outcome == "posted", again  # type: ignore[attr-defined]
    statuses = mastodon_server.statuses()
    assert len(statuses) == 1, [s["content"] for s in statuses]
    assert "X:1" in statuses[0]["content"]  # the first send's text, found


SECOND = REEL.replace("T:The Test Reel", "T:The Second Reel")  # the same notes, another tune


@needs_tools
def test_a_tune_composed_again_after_a_refusal_carries_its_own_sound_and_score(
    tunes_config: Path, mastodon_server: MastodonServer
) -> None:
    """Refused for length, the slot is composed again and another tune comes out: it
    goes out with its own sound, score and alt text, not the refused tune's uploads."""
    text = tunes_config.read_text(encoding="utf-8")
    tunes_config.write_text(text.replace(json.dumps([REEL]), json.dumps([REEL, SECOND])),
                            encoding="utf-8")  # fmt: skip
    mastodon_server.process_media(polls=1)
    mastodon_server.inject_error(
        422, body={"error": "Validation failed: Text character limit of 500 exceeded"}
    )
    publisher = MastodonPublisher(mastodon_server.base_url, mastodon_server.bot.token or "",
                                  sleep=lambda s: None)  # fmt: skip
    result = wake(tunes_config, publisher)  # seed 1: the reel, then the second reel
    assert result.outcome == "posted", result  # type: ignore[attr-defined]
    (status,) = mastodon_server.statuses()
    assert "The Second Reel" in status["content"]  # composed again: the other tune
    media = status["media_attachments"]
    assert all("The Second Reel" in m["description"] for m in media), media
    assert mastodon_server.media_uploads == 4  # the refused tune's two, and its own


def test_check_names_missing_tools_and_the_install_command(
    tunes_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(cli, ["check", "-p", "tunes"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: persona tunes: music tools missing: abc2midi (abcmidi)")
    assert "sudo apt-get install --no-install-recommends abcmidi" in last


@needs_tools
def test_check_lists_the_tools_when_present(tunes_config: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "-p", "tunes"])
    assert result.exit_code == 0, result.output
    assert (
        "music tools: abc2midi, fluidsynth, soundfont, ffmpeg, abcm2ps, rsvg-convert (all found)"
        in result.output
    )


@needs_tools
def test_notation_only_when_rendering_is_missing_and_allowed(
    tunes_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tunes_config.read_text(encoding="utf-8").replace(
        "vocabulary: any", "vocabulary: any\n    media_fallback: notation")  # fmt: skip
    tunes_config.write_text(text, encoding="utf-8")
    only_abc2midi = tmp_path / "bin"
    only_abc2midi.mkdir()
    (only_abc2midi / "abc2midi").symlink_to(shutil.which("abc2midi") or "")
    monkeypatch.setenv("PATH", str(only_abc2midi))
    result = CliRunner().invoke(cli, ["check", "-p", "tunes"])
    assert result.exit_code == 0, result.output
    assert "tunes are posted as notation only" in result.output
    outbox = Outbox(tmp_path / "outbox")
    assert wake(tunes_config, outbox).outcome == "posted"  # type: ignore[attr-defined]
    (entry,) = outbox.read("tunes")
    assert "X:1\nT:The Test Reel" in entry["text"] and "media" not in entry
