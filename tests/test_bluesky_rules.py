"""Bluesky's rules without a server: record keys from slots, length in graphemes, the
persona's `bluesky:` block, and the SDK staying out of every process that does not post
to Bluesky (#20). The publisher against the real servers: tests/test_bluesky.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot import config as cfg
from bot.commands.cli import cli
from bot.config import registry
from bot.core.errors import ConfigError
from bot.publishers.bluesky.kind import as_mention, disclaimer, notification_id
from bot.publishers.bluesky.rules import (
    MAX_GRAPHEMES,
    created_at,
    key_time,
    post_length,
    record_key,
    tid,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")  # the spec's
ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def decode_tid(text: str) -> tuple[int, int]:
    value = 0
    for char in text:
        value = value * 32 + ALPHABET.index(char)
    return value >> 10, value & 0x3FF


def test_a_slot_has_one_record_key_of_its_own_time() -> None:
    key = "revenant:ada:2026-11-26T14:00Z"
    rkey = record_key(key)
    assert TID.match(rkey)
    assert record_key(key) == rkey  # a retry, a restart, another replica: the same key
    micros, _ = decode_tid(rkey)
    assert datetime.fromtimestamp(micros / 1e6, UTC) == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert created_at(key) == "2026-11-26T14:00:00.000Z"
    # another persona's slot at the same time, and the next slot, are other records
    assert record_key("revenant:bea:2026-11-26T14:00Z") != rkey
    assert record_key("revenant:ada:2026-11-26T15:00Z") > rkey  # TIDs sort by time


def test_every_key_revenant_makes_carries_its_time() -> None:
    reply = "revenant:ada:reply:" + notification_id(
        {"indexedAt": "2026-12-02T10:11:12.345678Z", "uri": "at://did:plc:x/app.bsky.feed.post/3k"}
    )
    assert key_time(reply) == datetime(2026, 12, 2, 10, 11, 12, 345678, tzinfo=UTC)
    assert key_time("revenant:ada:manual:2026-12-02T10:11:12.500000Z").microsecond == 500000
    assert key_time("revenant:ada:2026-12-02T10:11:12Z").second == 12  # sub-minute grids
    with pytest.raises(ValueError, match="carries no time"):
        record_key("revenant:ada:no-time")
    assert TID.match(tid(datetime(2026, 1, 1, tzinfo=UTC), 1023))


def test_length_is_counted_in_graphemes_as_bluesky_counts() -> None:
    assert post_length("a 👍🏽 b") == 5  # thumbs up + skin tone: one grapheme
    assert post_length("e\u0301") == 1  # e + combining acute
    assert post_length("x" * 300) == MAX_GRAPHEMES
    assert post_length("👨‍👩‍👧‍👦" * 120) == 120  # ...while 120 of them are 3000 bytes
    assert post_length("👨‍👩‍👧‍👦" * 121) > MAX_GRAPHEMES  # over the 3000-byte cap: too long
    assert registry.get("bluesky").length("x" * 300, "") == 300


def test_notifications_sort_by_time_and_never_collide() -> None:
    early = {"indexedAt": "2026-12-02T10:00:00.000Z", "uri": "at://a/app.bsky.feed.post/1"}
    twin = {"indexedAt": "2026-12-02T10:00:00.000Z", "uri": "at://b/app.bsky.feed.post/1"}
    late = {"indexedAt": "2026-12-02T10:00:00.001Z", "uri": "at://a/app.bsky.feed.post/2"}
    ids = [notification_id(n) for n in (early, twin, late)]
    assert len(set(ids)) == 3
    assert max(ids[:2]) < ids[2]


def test_a_mention_reads_as_the_replier_expects() -> None:
    mention = as_mention({
        "uri": "at://did:plc:bob/app.bsky.feed.post/3abc",
        "reason": "reply",
        "indexedAt": "2026-12-02T10:00:00.000Z",
        "author": {"did": "did:plc:bob", "handle": "bob.test", "displayName": "Bob",
                   "description": "I post pictures of ferns. #nobot"},
        "record": {"text": "what of ferns?", "createdAt": "2026-12-02T09:59:59.000Z",
                   "reply": {"parent": {"uri": "at://did:plc:ada/app.bsky.feed.post/3x"},
                             "root": {"uri": "at://did:plc:ada/app.bsky.feed.post/3x"}}},
    })  # fmt: skip
    assert mention["account"]["acct"] == "bob.test"
    assert mention["account"]["bot"] is False
    assert mention["status"]["in_reply_to_id"] == "at://did:plc:ada/app.bsky.feed.post/3x"
    assert mention["status"]["content"] == "what of ferns?"
    assert mention["status"]["created_at"] == "2026-12-02T10:00:00.000Z"  # the server's time
    from bot.posting.mentions import has_nobot

    assert has_nobot(mention["account"])
    automated = as_mention({"uri": "at://c/app.bsky.feed.post/1", "indexedAt": "2026-12-02T10:00:00Z",
                            "author": {"did": "did:plc:c", "handle": "c.test",
                                       "description": "Automated account: posts are generated."},
                            "record": {"text": "hi"}})  # fmt: skip
    assert automated["account"]["bot"] is True


def test_the_disclaimer_always_says_automated() -> None:
    assert "Automated" in disclaimer(None)
    assert disclaimer("Nietzsche, generated. A bot.") == "Nietzsche, generated. A bot."
    said = disclaimer("In the voice of F. Nietzsche.")
    assert said.startswith("In the voice of F. Nietzsche.") and "Automated" in said


BLUESKY_PERSONA = """
personas:
  ada:
    publisher: bluesky
    bluesky:
      handle: ada.test
{extra}
"""


def load(write_config, make_persona, extra: str = "") -> cfg.Config:
    make_persona("ada")
    return cfg.load_config(write_config(BLUESKY_PERSONA.format(extra=extra)))


def test_a_bluesky_persona_loads_with_defaults(write_config, make_persona) -> None:
    config = load(write_config, make_persona, "      self_labels: [graphic-media]")
    persona = config.personas["ada"]
    settings = registry.get("bluesky").settings_of(persona)
    assert (settings.handle, settings.pds_url, settings.app_password_env) == (
        "ada.test", "https://bsky.social", "BLUESKY_APP_PASSWORD")  # fmt: skip
    assert settings.self_labels == ("graphic-media",)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("      self_labels: [spicy]",
         ("personas.ada.bluesky.self_labels[0] must be one of graphic-media, sexual, nudity, "
          "porn (got 'spicy')")),
        ("      pds_url: bsky.social", "personas.ada.bluesky.pds_url must be an http(s) URL"),
        ("      handle_env: BSKY_HANDLE", "bluesky.handle and handle_env are both set"),
        ("    spoiler_text: philosophy",
         "persona ada: Bluesky has no content warnings (spoiler_text is set)"),
    ],
)  # fmt: skip
def test_bad_bluesky_settings_are_one_line_errors(
    write_config, make_persona, extra, message
) -> None:
    with pytest.raises(ConfigError) as info:
        load(write_config, make_persona, extra)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bluesky_persona_needs_a_handle(write_config, make_persona) -> None:
    make_persona("ada")
    with pytest.raises(ConfigError, match="bluesky.handle is missing for the bluesky publisher"):
        cfg.load_config(write_config("personas:\n  ada:\n    publisher: bluesky\n"))


def test_bot_check_names_the_account_and_never_the_password(
    write_config, make_persona, monkeypatch
) -> None:
    load(write_config, make_persona)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "BLUESKY_APP_PASSWORD is not set" in result.output
    assert "App passwords" in result.output  # the fix: where to create one
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "abcd-efgh-ijkl-mnop")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "publisher: bluesky @ada.test at https://bsky.social" in result.output
    assert "abcd-efgh-ijkl-mnop" not in result.output


PROBE = """
import sys
from bot import config as cfg
from bot.config import registry
registry.kinds()
config = cfg.load_config(sys.argv[1])
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in {"atproto", "atproto_client"})))
"""


def test_the_sdk_is_loaded_only_to_post_to_bluesky(write_config, make_persona) -> None:
    path = write_config(BLUESKY_PERSONA.format(extra=""))
    make_persona("ada")
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert result.stdout.strip() == ""


def test_the_readme_example_posts_one_voice_to_both_networks(tmp_path: Path, make_persona) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**One persona, one publisher.**", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    make_persona("ada")
    path = tmp_path / "config.yaml"
    path.write_text(example, encoding="utf-8")
    config = cfg.load_config(path)
    ada, bsky = config.personas["ada"], config.personas["ada-bsky"]
    assert (ada.publisher, bsky.publisher) == ("mastodon", "bluesky")
    assert ada.model == bsky.model == tmp_path / "models" / "ada"
    assert registry.get("bluesky").settings_of(bsky).handle == "ada-ebooks.bsky.social"


def test_a_dry_run_holds_a_bluesky_persona_to_300_graphemes(write_config, make_persona) -> None:
    """`bot preview` builds no publisher; the network's fixed limit still applies, so the
    preview shows what Bluesky would take (the filters' own max_chars is 1000 here)."""
    from bot.config.registry import length_function
    from bot.posting.persona import Persona

    config = load(write_config, make_persona, "    filters: {max_chars: 1000, min_chars: 3}")
    settings = config.personas["ada"]
    dry = Persona(settings, length=length_function(settings))
    assert dry.max_chars() == 300
    result = CliRunner().invoke(cli, ["preview", "-n", "3", "--seed", "2", "--json", "--all"])
    assert result.exit_code == 0, result.output
    (shown,) = json.loads(result.output)
    lengths = [post_length(p["text"]) for p in shown["posts"]]
    assert lengths and max(lengths) <= 300, lengths
