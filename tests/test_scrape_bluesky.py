"""`bot scrape bluesky`: handles, facets and consent on their own, then scraping the AT
Protocol team's own servers (PLC + PDS + AppView from @atproto/dev-env, on loopback)
through the atproto SDK: posts written through a PDS, read back through the AppView."""

from __future__ import annotations

import pytest

from bot.corpus.bluesky import DEFAULT_APPVIEW, facets_to_text, opt_out_reason, parse_actor
from bot.corpus.clean import CleanOptions
from bot.corpus.commands import scrape
from bot.errors import CorpusError


def facet(text: str, part: str, feature: dict[str, str]) -> dict[str, object]:
    """A facet over the first `part` in `text`, by UTF-8 byte offsets as Bluesky counts."""
    start = text.encode().index(part.encode())
    return {
        "index": {"byteStart": start, "byteEnd": start + len(part.encode())},
        "features": [feature],
    }


MENTION = {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}
LINK = {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/a/long/path?q=1"}
TAG = {"$type": "app.bsky.richtext.facet#tag", "tag": "loom"}


@pytest.mark.parametrize(
    ("given", "actor"),
    [
        ("@Alice.bsky.social", "alice.bsky.social"),
        ("alice.bsky.social", "alice.bsky.social"),
        ("did:plc:ewvi7nxzyoun6zhxrhs64oiz", "did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        ("https://bsky.app/profile/alice.test", "alice.test"),
        ("https://bsky.app/profile/did:plc:abc234/", "did:plc:abc234"),
    ],
)
def test_parse_actor(given: str, actor: str) -> None:
    assert parse_actor(given) == actor


def test_parse_actor_refuses_what_is_not_a_handle_in_one_line() -> None:
    with pytest.raises(CorpusError, match="not a Bluesky handle") as err:
        parse_actor("alice")
    assert "@alice.bsky.social" in err.value.hint  # the likely meaning, spelled out
    with pytest.raises(CorpusError, match="not a Bluesky handle"):
        parse_actor("@ada@example.social")  # a Mastodon address


def test_facets_cut_by_utf8_bytes_not_characters() -> None:
    text = "Thé lööm 🧵 @bob.test says hi, see example.com/a/long/pa... #loom ok"
    facets = [
        facet(text, "@bob.test", MENTION),
        facet(text, "example.com/a/long/pa...", LINK),
        facet(text, "#loom", TAG),
    ]
    assert facets_to_text(text, facets, CleanOptions()) == "Thé lööm 🧵 says hi, see #loom ok"
    kept = CleanOptions(keep_links=True, hashtags="drop")
    assert facets_to_text(text, facets, kept) == (
        "Thé lööm 🧵 says hi, see https://example.com/a/long/path?q=1 ok"
    )


def test_link_facet_over_words_keeps_the_words() -> None:
    text = "read my notes on weaving today"
    links = [facet(text, "my notes", LINK)]
    assert facets_to_text(text, links, CleanOptions()) == text


def test_unfaceted_mentions_and_urls_go_too_and_bad_facets_are_ignored() -> None:
    text = "hi @carol.test look https://x.example/p"
    broken = [{"index": {"byteStart": 50, "byteEnd": 60}, "features": [MENTION]}]
    assert facets_to_text(text, broken, CleanOptions()) == "hi look"


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"description": "I draw. #NoAI"}, "#NoAI"),
        ({"displayName": "Ada #nobot"}, "#nobot"),
        ({"labels": [{"val": "!no-unauthenticated", "src": "did:plc:a"}]}, "logged-out"),
        ({"description": "#nobots are fine", "labels": [{"val": "porn"}]}, None),
        ({"labels": [{"val": "!no-unauthenticated", "neg": True}]}, None),
    ],
)
def test_opt_out_reason(profile: dict[str, object], reason: str | None) -> None:
    found = opt_out_reason(profile)
    assert (found is None) if reason is None else (reason in str(found))


def test_cli_default_appview_is_the_public_one() -> None:
    option = next(p for p in scrape.commands["bluesky"].params if p.name == "appview")
    assert option.default == DEFAULT_APPVIEW
