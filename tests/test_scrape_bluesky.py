"""`bot scrape bluesky`: handles, facets and consent on their own, then scraping the AT
Protocol team's own servers (PLC + PDS + AppView from @atproto/dev-env, on loopback)
through the atproto SDK: posts written through a PDS, read back through the AppView."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from atproto import Client, client_utils, models
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.commands.scrape import scrape
from bot.core.errors import CorpusError
from bot.corpus import Document
from bot.corpus.bluesky import (
    DEFAULT_APPVIEW,
    facets_to_text,
    opt_out_reason,
    parse_actor,
    scrape_account,
)
from bot.corpus.clean import CleanOptions
from tests.test_corpus import DictStore

pytest_plugins = ["tests.fakes.bluesky"]  # the bsky_network fixture (PLC + PDS + AppView)


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


# --- scraping the real AT Protocol servers (dev-env on loopback) -------------------------


class Poster:
    """One account on the test PDS, logged in through the SDK as its owner."""

    def __init__(self, network: Any, account: Any) -> None:
        self.network = network
        self.handle: str = account.handle
        self.did: str = account.did
        self.client = Client(base_url=network.pds_url)
        self.client.login(account.handle, account.password)

    def post(self, text: str | client_utils.TextBuilder, **kwargs: Any) -> Any:
        return self.client.send_post(text, langs=["en"], **kwargs)

    def labelled(self, text: str, label: str) -> Any:
        """A post its author self-labelled (Bluesky's content warning)."""
        labels = models.ComAtprotoLabelDefs.SelfLabels(
            values=[models.ComAtprotoLabelDefs.SelfLabel(val=label)]
        )
        record = models.AppBskyFeedPost.Record(
            text=text,
            created_at=self.client.get_current_time_iso(),
            langs=["en"],
            labels=labels,
        )
        return self.client.app.bsky.feed.post.create(self.did, record)

    def profile(self, description: str = "", name: str = "", labels: Iterable[str] = ()) -> None:
        values = [models.ComAtprotoLabelDefs.SelfLabel(val=v) for v in labels]
        record = models.AppBskyActorProfile.Record(
            description=description or None,
            display_name=name or None,
            labels=models.ComAtprotoLabelDefs.SelfLabels(values=values) if values else None,
        )
        self.client.app.bsky.actor.profile.create(self.did, record, rkey="self")


def posters(network: Any, count: int) -> list[Poster]:
    """`count` new accounts (the AppView knows them already), logged in."""
    return [Poster(network, network.create_account()) for _ in range(count)]


def reply_to(parent: Any, root: Any | None = None) -> models.AppBskyFeedPost.ReplyRef:
    return models.AppBskyFeedPost.ReplyRef(
        parent=models.create_strong_ref(parent), root=models.create_strong_ref(root or parent)
    )


def seed(network: Any, *, posts: int = 3, description: str = "Poetical scientist") -> Poster:
    """An account with `posts` plain posts, plus one of each thing the scraper must treat
    specially: facets, a repost, a reply to another, an own thread, a self-labelled post, a
    quote post. Indexed by the AppView before it returns."""
    ada, bob = posters(network, 2)
    ada.profile(description)
    first = ada.post("first words of the engine")
    rich = (
        client_utils.TextBuilder()
        .text("Thé lööm 🧵 weaves, ")
        .mention(f"@{bob.handle}", bob.did)
        .text(" see ")
        .link("example.com/patterns/jacq...", "https://example.com/patterns/jacquard?card=1")
        .text(" ")
        .tag("#loom", "loom")
    )
    ada.post(rich)
    theirs = bob.post("bob's own words, not ada's")
    ada.client.repost(theirs.uri, theirs.cid)
    ada.post("thanks for the note, bob", reply_to=reply_to(theirs))
    ada.post("and the engine goes on", reply_to=reply_to(first))  # her own thread
    ada.labelled("spoilers about the end", "graphic-media")
    quote = models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(theirs))
    ada.post("quoting bob, in my words", embed=quote)
    for number in range(1, posts + 1):
        ada.post(f"post {number}: the loom weaves pattern {number * 37}")
    network.process_all()
    return ada


def anonymous(network: Any) -> Client:
    """The AppView without a login, as a scraper reads it."""
    return Client(base_url=network.appview_url)


def texts(docs: Iterable[Document]) -> list[str]:
    return [doc.text for doc in docs]


OWN_POSTS = [
    "quoting bob, in my words",
    "and the engine goes on",
    "Thé lööm 🧵 weaves, see #loom",
    "first words of the engine",
]


def test_scrape_takes_own_posts_and_threads_only(bsky_network: Any) -> None:
    ada = seed(bsky_network)
    skipped: Counter[str] = Counter()
    pages: list[int] = []

    class Pages:
        def start(self, total: int | None) -> None:
            assert total == 9  # postsCount: her own posts, the reposted one not among them

        def advance(self, count: int) -> None:
            pages.append(count)

    walk = scrape_account(
        anonymous(bsky_network), f"@{ada.handle}", page_size=2, skipped=skipped, progress=Pages()
    )
    docs = list(walk)
    numbered = [f"post {n}: the loom weaves pattern {n * 37}" for n in (3, 2, 1)]
    assert texts(docs) == numbered + OWN_POSTS
    assert skipped == Counter(repost=1, reply=1, cw=1)
    assert len(pages) >= 5 and sum(pages) == 9  # several pages, own posts counted
    joined = " ".join(texts(docs))
    for absent in ("bob's own words", "thanks for the note", "spoilers", "@", "example.com"):
        assert absent not in joined
    doc = docs[0]
    assert doc.id.startswith(f"at://{ada.did}/app.bsky.feed.post/")
    assert doc.source == f"bluesky:{ada.handle}" and doc.language == "en"
    assert doc.created_at is not None and doc.created_at.endswith("Z")


def test_scrape_takes_replies_labelled_posts_and_links_when_asked(bsky_network: Any) -> None:
    ada = seed(bsky_network, posts=1)
    options = CleanOptions(include_cw=True, include_replies=True, keep_links=True, hashtags="drop")
    by_did = texts(scrape_account(anonymous(bsky_network), ada.did, options=options))
    assert "thanks for the note, bob" in by_did and "spoilers about the end" in by_did
    assert "Thé lööm 🧵 weaves, see https://example.com/patterns/jacquard?card=1" in by_did
    assert "bob's own words, not ada's" not in " ".join(by_did)  # a repost never counts


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"description": "I weave. #NoBot please"}, "its profile says #NoBot"),
        ({"name": "Ada (#noai)"}, "its profile says #noai"),
        ({"labels": ["!no-unauthenticated"]}, "logged-out viewers not see its posts"),
    ],
)
def test_opted_out_account_is_refused(
    bsky_network: Any, profile: dict[str, Any], reason: str
) -> None:
    (carol,) = posters(bsky_network, 1)
    carol.profile(**profile)
    carol.post("my words are mine")
    bsky_network.process_all()
    client = anonymous(bsky_network)
    with pytest.raises(CorpusError) as err:
        list(scrape_account(client, carol.handle))
    assert reason in err.value.message and carol.handle in err.value.message
    assert "--i-have-consent" in err.value.hint and "\n" not in str(err.value)
    assert texts(scrape_account(client, carol.handle, consent=True)) == ["my words are mine"]


def test_scrape_resumes_from_cursor_then_fetches_only_new(bsky_network: Any) -> None:
    ada = seed(bsky_network, posts=4)
    client, store, name = anonymous(bsky_network), DictStore(), f"scrape:bluesky:{ada.handle}"
    walk = scrape_account(client, ada.handle, store=store, page_size=2)
    first = [next(walk) for _ in range(3)]  # two pages handed out, then "crash"
    walk.close()
    assert json.loads(store.cursors[name])["cursor"] is not None
    rest = list(scrape_account(client, ada.handle, store=store, page_size=2))
    assert len(set(texts(first + rest))) == 8 and texts(rest)[-1] == "first words of the engine"
    assert json.loads(store.cursors[name])["cursor"] is None  # complete
    ada.post("a brand new thought")
    bsky_network.process_all()
    again = texts(scrape_account(client, ada.handle, store=store, page_size=2))
    assert again == ["a brand new thought"]
    assert texts(scrape_account(client, ada.handle, store=store)) == []


def test_scrape_stops_at_since(bsky_network: Any) -> None:
    ada = seed(bsky_network, posts=1)
    client = anonymous(bsky_network)
    assert list(scrape_account(client, ada.handle, since=datetime(2999, 1, 1, tzinfo=UTC))) == []
    assert len(list(scrape_account(client, ada.handle, since=datetime(2000, 1, 1, tzinfo=UTC))))


def test_unknown_account_and_unreachable_appview_are_one_line_errors(bsky_network: Any) -> None:
    with pytest.raises(CorpusError, match="no such Bluesky account: nobody.test"):
        list(scrape_account(anonymous(bsky_network), "nobody.test"))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(CorpusError) as err:
        list(scrape_account(Client(base_url=dead), "ada.test"))
    assert err.value.message == f"cannot reach the Bluesky AppView at {dead}"
    assert "--appview" in err.value.hint


@pytest.fixture
def rate_limited_appview(bsky_network: Any) -> Iterator[tuple[str, list[str]]]:
    """A loopback proxy in front of the AppView whose first getAuthorFeed answer is a 429
    with the AppView's rate-limit headers; the URL and the paths it served."""
    served: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            feeds = [p for p in served if "getAuthorFeed" in p]
            if "getAuthorFeed" in self.path and len(feeds) == 1:
                body = b'{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}'
                self.send_response(429)
                self.send_header("ratelimit-limit", "3000")
                self.send_header("ratelimit-remaining", "0")
                self.send_header("ratelimit-reset", str(int(time.time()) + 30))
            else:
                with urllib.request.urlopen(bsky_network.appview_url + self.path) as answer:
                    body = answer.read()
                self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def test_scrape_waits_out_a_rate_limit(
    bsky_network: Any, rate_limited_appview: tuple[str, list[str]]
) -> None:
    ada = seed(bsky_network, posts=1)
    url, served = rate_limited_appview
    waits: list[float] = []
    docs = list(scrape_account(Client(base_url=url), ada.handle, sleep=waits.append))
    assert len(docs) == 5
    assert len(waits) == 1 and 25 <= waits[0] <= 31  # until ratelimit-reset
    assert sum("getAuthorFeed" in path for path in served) == 2  # the 429, then the retry


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_scrape_bluesky_end_to_end(bsky_network: Any, tmp_path: Path) -> None:
    ada = seed(bsky_network, posts=2)
    out = tmp_path / "ada.jsonl"
    url = f"https://bsky.app/profile/{ada.handle}"
    args = ["scrape", "bluesky", url, "--appview", bsky_network.appview_url, "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = read_lines(out)
    assert [r["text"] for r in records][-1] == "first words of the engine"
    assert len(records) == 6 and "skipped: cw=1 reply=1 repost=1" in result.output
    assert {r["source"] for r in records} == {f"bluesky:{ada.handle}"}
    assert all(r["id"].startswith("at://") and r["created_at"].endswith("Z") for r in records)
    ada.post("one more")
    bsky_network.process_all()
    result = CliRunner().invoke(cli, args)  # resumes: appends only the new post
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in read_lines(out)][-1] == "one more" and len(read_lines(out)) == 7
    replies = ["--include-replies", "-o", str(tmp_path / "all.jsonl")]
    result = CliRunner().invoke(cli, [*args[:-2], *replies])
    assert result.exit_code == 0, result.output
    assert "thanks for the note, bob" in (tmp_path / "all.jsonl").read_text(encoding="utf-8")


def test_cli_scrape_bluesky_refuses_opted_out_in_one_line(
    bsky_network: Any, tmp_path: Path
) -> None:
    (carol,) = posters(bsky_network, 1)
    carol.profile(labels=["!no-unauthenticated"])
    carol.post("only for people who are logged in")
    bsky_network.process_all()
    out = tmp_path / "carol.jsonl"
    base = ["scrape", "bluesky", f"@{carol.handle}", "--appview", bsky_network.appview_url]
    result = CliRunner().invoke(cli, [*base, "-o", str(out)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "!no-unauthenticated" in result.stderr and "--i-have-consent" in result.stderr
    assert not out.exists()
    result = CliRunner().invoke(cli, [*base, "-o", str(out), "--i-have-consent"])
    assert result.exit_code == 0 and len(read_lines(out)) == 1
    result = CliRunner().invoke(cli, [*base[:2], "nobody.test", *base[3:], "-o", str(out)])
    assert result.exit_code == 1 and "no such Bluesky account: nobody.test" in result.stderr
