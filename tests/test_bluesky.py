"""The Bluesky publisher against the AT Protocol team's own servers (PLC, PDS, AppView of
@atproto/dev-env) on 127.0.0.1, through the real `atproto` SDK over HTTP (#20): posts
exactly once per slot by construction, replies in their threads, the 300-grapheme limit
as the server counts it, sessions kept, refreshed and renewed, `bot check --online` and
`bot setup`. tests/fakes/bluesky.py starts the network once per session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from atproto import Client
from click.testing import CliRunner

from bot import config as cfg
from bot.commands.cli import cli
from bot.core.errors import PublishError
from bot.core.post import Post
from bot.posting.persona import Persona
from bot.posting.replies import Replier
from bot.publishers.bluesky.client import BlueskyPublisher, forget_sessions
from bot.publishers.bluesky.kind import BlueskySettings
from bot.store import SQLiteStore
from tests.test_music_persona import REEL

pytest_plugins = ["tests.fakes.postgres", "tests.fakes.bluesky"]

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = REPO_ROOT / "tests" / "data" / "tiny_persona"
JWT_SECRET = b"jwt-secret"  # @atproto/dev-env's PDS signs its session tokens with this


@dataclass
class Bot:
    """A fresh bot account on the test PDS, with an app password, and its publishers."""

    network: Any
    account: Any
    app_password: str
    home: Path

    def publisher(self, password: str | None = None, **kw: Any) -> BlueskyPublisher:
        return BlueskyPublisher(
            self.network.pds_url,
            self.account.handle,
            password if password is not None else self.app_password,
            session_path=self.home / "sessions" / f"{self.account.handle}.session",
            **kw,
        )

    def records(self) -> list[dict[str, Any]]:
        """The account's post records, straight from its repository (newest first)."""
        answer = httpx.get(
            f"{self.network.pds_url}/xrpc/com.atproto.repo.listRecords",
            params={"repo": self.account.did, "collection": "app.bsky.feed.post", "limit": 100},
            timeout=10,
        )
        answer.raise_for_status()
        return list(answer.json()["records"])


@pytest.fixture
def bot(bsky_network: Any, tmp_path: Path) -> Iterator[Bot]:
    forget_sessions()
    account = bsky_network.create_account("bot")
    yield Bot(bsky_network, account, bsky_network.app_password(account), tmp_path)
    forget_sessions()


def post(text: str, slot: str = "2026-12-02T10:00Z", **kw: Any) -> Post:
    return Post(persona="ada", text=text, idempotency_key=f"revenant:ada:{slot}", **kw)


# --- posts: exactly once by construction ---------------------------------------------------


def test_a_post_is_one_record_however_often_it_is_sent(bot: Bot) -> None:
    publisher = bot.publisher()
    first = publisher.publish(post("Was it a dream? #night https://example.com/x", language="de"))
    again = publisher.publish(post("Was it a dream? #night https://example.com/x", language="de"))
    restarted = bot.publisher()  # a new process: the kept session, no second login
    third = restarted.publish(post("Was it a dream? #night https://example.com/x", language="de"))

    assert first == again == third
    assert (publisher.logins, restarted.logins) == (1, 0)
    (record,) = bot.records()
    assert record["uri"] == first.remote_id
    assert (
        first.url
        == f"https://bsky.app/profile/{bot.account.handle}/post/"
        + first.remote_id.rsplit("/", 1)[1]
    )
    value = record["value"]
    assert value["text"] == "Was it a dream? #night https://example.com/x"
    assert value["createdAt"] == "2026-12-02T10:00:00.000Z"  # the slot's time, every retry
    assert value["langs"] == ["de"]
    assert "labels" not in value  # self-labels only where the config asks
    features = sorted(f["features"][0]["$type"] for f in value["facets"])
    assert features == ["app.bsky.richtext.facet#link", "app.bsky.richtext.facet#tag"]
    assert (
        publisher.find(post("Was it a dream? #night https://example.com/x"), datetime.now(UTC))
        == first
    )
    assert publisher.find(post("later", slot="2026-12-02T11:00Z"), datetime.now(UTC)) is None


def test_another_text_for_a_taken_slot_overwrites_nothing(bot: Bot) -> None:
    publisher = bot.publisher()
    publisher.publish(post("the first word"))
    with pytest.raises(PublishError) as info:
        publisher.publish(post("a second thought"))
    assert "holds a different post" in info.value.message
    assert not info.value.transient
    (record,) = bot.records()
    assert record["value"]["text"] == "the first word"


def test_self_labels_only_as_configured(bot: Bot) -> None:
    labelled = bot.publisher(self_labels=("graphic-media",)).publish(post("the abyss gazes"))
    (record,) = bot.records()
    assert record["uri"] == labelled.remote_id
    assert record["value"]["labels"]["values"] == [{"val": "graphic-media"}]


def test_the_limit_is_300_graphemes_as_the_server_counts_them(bot: Bot) -> None:
    publisher = bot.publisher()
    thumbs = "👍🏽" * 300  # 600 code points, 2400 bytes, 300 graphemes
    assert publisher.length(thumbs) == publisher.max_chars() == 300
    publisher.publish(post(thumbs))
    with pytest.raises(PublishError) as info:
        publisher.publish(post(thumbs + "!", slot="2026-12-02T11:00Z"))
    assert publisher.length(thumbs + "!") == 301
    assert info.value.too_long and not info.value.transient
    assert len(bot.records()) == 1


# --- sessions: kept, refreshed, renewed ------------------------------------------------------


def _jwt(payload: dict[str, Any], secret: bytes = JWT_SECRET) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part({"typ": "at+jwt", "alg": "HS256"})
    body = part(payload)
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _tamper_kept_session(path: Path, make_access: Callable[[dict[str, Any]], str]) -> None:
    """Replace the access token in a kept session file (atproto's session string)."""
    from atproto_client.client.session import Session

    session = Session.decode(path.read_text())
    session.access_jwt = make_access(_claims(session.access_jwt))
    path.write_text(session.encode())


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda c: _jwt({**c, "iat": c["iat"] - 7300, "exp": c["iat"] - 100}), id="expired"),
        pytest.param(lambda c: _jwt(c, secret=b"not-the-secret"), id="invalid"),
    ],
)  # fmt: skip
def test_a_refused_access_token_is_refreshed_without_a_login(
    bot: Bot, token: Callable[[dict[str, Any]], str]
) -> None:
    first = bot.publisher()
    first.publish(post("before"))
    session_file = bot.home / "sessions" / f"{bot.account.handle}.session"
    _tamper_kept_session(session_file, token)
    forget_sessions()  # a new process: only the file remains
    kept = session_file.read_text()

    # A wrong app password: a login would fail, so only a refresh can make this post.
    later = bot.publisher(password="wrong-wrong-wrong-wrong")
    later.publish(post("after", slot="2026-12-02T11:00Z"))

    assert later.logins == 0
    assert session_file.read_text() != kept  # the refreshed session is kept for next time
    assert len(bot.records()) == 2


def test_a_revoked_session_logs_in_again(bot: Bot) -> None:
    first = bot.publisher()
    first.publish(post("before"))
    session_file = bot.home / "sessions" / f"{bot.account.handle}.session"
    from atproto_client.client.session import Session

    session = Session.decode(session_file.read_text())
    revoke = httpx.post(f"{bot.network.pds_url}/xrpc/com.atproto.server.deleteSession",
                        headers={"Authorization": f"Bearer {session.refresh_jwt}"}, timeout=10)  # fmt: skip
    assert revoke.status_code == 200, revoke.text
    _tamper_kept_session(session_file, lambda c: _jwt(c, secret=b"not-the-secret"))
    forget_sessions()

    later = bot.publisher()
    later.publish(post("after", slot="2026-12-02T11:00Z"))
    assert later.logins == 1
    assert len(bot.records()) == 2


def test_a_wrong_app_password_is_one_line_naming_the_variable(bot: Bot) -> None:
    with pytest.raises(PublishError) as info:
        bot.publisher(password="nope-nope-nope-nope").publish(post("never"))
    message = str(info.value)
    assert "BLUESKY_APP_PASSWORD" in message and "App passwords" in message
    assert "nope-nope" not in message and "\n" not in message
    assert info.value.status_code == 401 and not info.value.transient
    assert bot.records() == []


# --- the daemon's path: `bot run`, killed after the server accepted --------------------------


def _config(bot: Bot, home: Path, **extra: str) -> Path:
    model = home / "models" / "tiny"
    if not model.exists():
        import shutil

        shutil.copytree(TINY, model)
    lines = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    path = home / "config.yaml"
    path.write_text(
        f"""\
lease_seconds: 1
store: revenant.db
personas:
  tiny:
    model: {model}
    candidates: 16
    max_rounds: 6
    filters: {{min_chars: 3, default_blocklist: false, novelty_words: 50}}
    schedule: {{interval_minutes: 60, first_run_seconds: 0}}
    publisher: bluesky
    bluesky:
      handle: {bot.account.handle}
      pds_url: {bot.network.pds_url}
{lines}""",
        encoding="utf-8",
    )
    return path


def _run(bot: Bot, home: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVENANT_")}
    env.update(REVENANT_HOME=str(home), REVENANT_CONFIG=str(home / "config.yaml"),
               BLUESKY_APP_PASSWORD=bot.app_password)  # fmt: skip
    if crash_at:
        env["REVENANT_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "bot", "-q", "run", "--once"], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("crash_at", ["during_send", "after_accept"])
def test_bot_run_killed_around_the_send_posts_the_slot_once(bot: Bot, crash_at: str) -> None:
    home = bot.home / "daemon"
    home.mkdir()
    _config(bot, home)
    crashed = _run(bot, home, crash_at=crash_at)
    assert crashed.returncode == -9, crashed.stderr
    time.sleep(1.2)  # the crashed holder's lease (1 s) runs out
    again = _run(bot, home)
    assert again.returncode == 0, again.stderr

    records = bot.records()
    import sqlite3

    db = sqlite3.connect(home / "revenant.db")
    rows = db.execute("SELECT slot_key, text, remote_id FROM posts").fetchall()
    slots = dict(db.execute("SELECT slot_key, status FROM slots").fetchall())
    db.close()
    assert len(records) == len(rows) == 1, (records, rows)
    assert rows[0][2] == records[0]["uri"] and rows[0][1] == records[0]["value"]["text"]
    assert list(slots.values()) == ["posted"]
    (kept,) = (home / "sessions").iterdir()  # the session was kept across the crash...
    assert kept.stat().st_mode & 0o777 == 0o600  # ...readable by its owner alone


# --- replies ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _replier(bot: Bot, store: SQLiteStore, clock: Clock, **replies: Any) -> Replier:
    settings = cfg.PersonaSettings(
        name="tiny",
        model=TINY,
        candidates=16,
        max_rounds=6,
        publisher="bluesky",
        publisher_settings={"bluesky": BlueskySettings(handle=bot.account.handle,
                                                       pds_url=bot.network.pds_url)},
        filters=cfg.Filters(min_chars=3, default_blocklist=False, novelty_words=50),
        replies=cfg.Replies(enabled=True, max_age_minutes=180, **replies),
    )  # fmt: skip
    publisher = bot.publisher()
    runner = Persona(settings, store=store, publisher=publisher, rng=np.random.default_rng(7))
    return Replier(runner, publisher, store, now=clock)


def _client(network: Any, account: Any) -> Client:
    client = Client(base_url=network.pds_url)
    client.login(account.handle, account.password)  # send_post needs the profile (client.me)
    return client


def _mention(client: Client, bot: Bot, words: str) -> Any:
    text = f"@{bot.account.handle} {words}"
    return client.send_post(text, facets=client.detect_facets(text))


def test_a_mention_is_answered_once_in_its_thread(
    bsky_network: Any, bot: Bot, tmp_path: Path
) -> None:
    alice = bsky_network.create_account("alice")
    client = _client(bsky_network, alice)
    mention = _mention(client, bot, "tell me of the sea")
    bsky_network.process_all()
    store = SQLiteStore(tmp_path / "state.db")
    clock = Clock()

    results = _replier(bot, store, clock).poll()

    assert [r.outcome for r in results] == ["replied"], results
    (reply,) = bot.records()
    refs = reply["value"]["reply"]
    assert refs["parent"] == {"uri": mention.uri, "cid": mention.cid}
    assert refs["root"] == {"uri": mention.uri, "cid": mention.cid}
    assert not reply["value"]["text"].startswith("@")  # the reference reaches alice
    assert results[0].receipt is not None and results[0].receipt.remote_id == reply["uri"]
    bsky_network.process_all()
    assert _replier(bot, store, clock).poll() == []  # answered once; nothing new
    assert len(bot.records()) == 1

    # alice answers the bot's reply: a `reply` notification, answered in the same thread
    from atproto import models

    parent = models.create_strong_ref(models.ComAtprotoRepoStrongRef.Main(uri=reply["uri"],
                                                                          cid=reply["cid"]))  # fmt: skip
    root = models.create_strong_ref(mention)
    client.send_post("and of the mountains?",
                     reply_to=models.AppBskyFeedPost.ReplyRef(parent=parent, root=root))  # fmt: skip
    bsky_network.process_all()
    second = _replier(bot, store, clock).poll()
    assert [r.outcome for r in second] == ["replied"], second
    answer = next(r for r in bot.records() if r["uri"] != reply["uri"])
    assert answer["value"]["reply"]["root"]["uri"] == mention.uri
    store.close()


def test_bots_and_nobot_profiles_are_not_answered(
    bsky_network: Any, bot: Bot, tmp_path: Path
) -> None:
    other_bot = bsky_network.create_account("otherbot")
    shy = bsky_network.create_account("shy")
    for account, description in ((other_bot, "Automated account: posts are generated."),
                                 (shy, "I paint fens. #nobot")):  # fmt: skip
        client = _client(bsky_network, account)
        client.com.atproto.repo.put_record({"repo": account.did, "collection": "app.bsky.actor.profile",
                                            "rkey": "self", "record": {"$type": "app.bsky.actor.profile",
                                                                       "description": description}})  # fmt: skip
        _mention(client, bot, "hello there")
    bsky_network.process_all()
    store = SQLiteStore(tmp_path / "state.db")

    results = _replier(bot, store, Clock()).poll()

    assert sorted((r.acct, r.reason) for r in results) == [
        (other_bot.handle, "bot_account"), (shy.handle, "nobot")]  # fmt: skip
    assert bot.records() == []
    store.close()


def test_deep_threads_and_busy_accounts_get_no_reply(
    bsky_network: Any, bot: Bot, tmp_path: Path
) -> None:
    from atproto import models

    own = bot.publisher().publish(post("Stones remember rain."))
    (record,) = bot.records()
    alice = bsky_network.create_account("alice")
    client = _client(bsky_network, alice)
    ref = models.create_strong_ref(models.ComAtprotoRepoStrongRef.Main(uri=own.remote_id,
                                                                       cid=record["cid"]))  # fmt: skip
    client.send_post("do they?", reply_to=models.AppBskyFeedPost.ReplyRef(parent=ref, root=ref))
    bsky_network.process_all()
    store = SQLiteStore(tmp_path / "state.db")
    clock = Clock()

    (deep,) = _replier(bot, store, clock, max_thread_depth=0).poll()  # one post above it

    assert (deep.acct, deep.outcome, deep.reason) == (alice.handle, "skipped", "thread_too_deep")
    for words in ("first question", "second question"):
        _mention(client, bot, words)
    bsky_network.process_all()
    results = _replier(bot, store, clock, per_account_per_hour=1).poll()
    assert [(r.outcome, r.reason) for r in results] == [
        ("replied", None),
        ("skipped", "account_limit"),
    ]
    assert len(bot.records()) == 2  # the post and one reply
    store.close()


def test_mentions_beyond_the_scan_cap_are_reported_not_dropped_silently(
    bsky_network: Any,
    bot: Bot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bluesky lists notifications newest first, so a poll reads back to its cursor, at
    most MAX_SCAN of them: older mentions past that cap are never read. The log and
    `bot status` (a replies_missed failure) say so."""
    from bot.publishers.bluesky import kind

    alice = bsky_network.create_account("alice")
    client = _client(bsky_network, alice)
    _mention(client, bot, "first")
    bsky_network.process_all()
    store = SQLiteStore(tmp_path / "state.db")
    clock = Clock()
    clock.offset = timedelta(days=1)  # every mention is too old: skipped, nothing composed
    assert [r.reason for r in _replier(bot, store, clock).poll()] == ["too_old"]  # the cursor
    for words in ("second", "third", "fourth"):
        _mention(client, bot, words)
    bsky_network.process_all()
    monkeypatch.setattr(kind, "PAGE", 1)
    monkeypatch.setattr(kind, "MAX_SCAN", 2)  # reads back "fourth" and "third" only

    with caplog.at_level(logging.WARNING):
        results = _replier(bot, store, clock).poll()

    assert [r.reason for r in results] == ["too_old", "too_old"]
    assert "event=mentions_missed" in caplog.text
    assert store.failure_counts("tiny") == {"replies_missed": 1}
    (failure,) = store.recent_failures("tiny", 1)
    assert "not read" in failure.error
    store.close()


def test_a_thread_that_is_gone_reads_as_not_found(bot: Bot) -> None:
    """A mention deleted before its thread is read is `no_status` to the Replier (404)."""
    from bot.publishers.bluesky.kind import BlueskyInbox

    inbox = BlueskyInbox(bot.publisher())
    with pytest.raises(PublishError) as info:
        inbox.thread_depth(f"at://{bot.account.did}/app.bsky.feed.post/3n3nxa5nves2b")
    assert info.value.status_code == 404 and not info.value.transient


# --- bot check --online, bot setup -------------------------------------------------------------


def test_check_online_then_setup_says_the_account_is_automated(
    bot: Bot, write_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", bot.app_password)
    owner = _client(bot.network, bot.account)  # the owner named the account by hand
    owner.com.atproto.repo.put_record({"repo": bot.account.did, "collection": "app.bsky.actor.profile",
                                       "rkey": "self", "record": {"$type": "app.bsky.actor.profile",
                                                                  "displayName": "Ada"}})  # fmt: skip
    write_config(
        f"""
        personas:
          ada:
            model: {TINY}
            publisher: bluesky
            bluesky:
              handle: {bot.account.handle}
              pds_url: {bot.network.pds_url}
        """
    )
    runner = CliRunner()
    before = runner.invoke(cli, ["check", "--online"])
    assert before.exit_code == 0, before.output
    assert f"account: {bot.account.handle} at {bot.network.pds_url}" in before.output
    assert "profile does NOT say it is automated (run `bot setup`)" in before.output
    assert "instance limit: 300 graphemes per post" in before.output
    assert bot.app_password not in before.output

    setup = runner.invoke(cli, ["setup", "--note", "Nietzsche, generated."])
    assert setup.exit_code == 0, setup.output
    assert "described as automated in its profile (read back), note set" in setup.output
    again = runner.invoke(cli, ["setup", "--note", "Nietzsche, generated."])  # idempotent
    assert again.exit_code == 0, again.output

    bot.network.process_all()
    after = runner.invoke(cli, ["check", "--online"])
    assert "its profile says it is automated" in after.output, after.output
    profile = httpx.get(f"{bot.network.pds_url}/xrpc/com.atproto.repo.getRecord",
                        params={"repo": bot.account.did, "collection": "app.bsky.actor.profile",
                                "rkey": "self"}, timeout=10).json()  # fmt: skip
    assert profile["value"]["description"].startswith("Nietzsche, generated. Automated account")
    assert profile["value"]["displayName"] == "Ada"  # every other field of the profile kept


# --- a music persona: the score as an image, no sound -----------------------------------------


@pytest.mark.skipif(bool(__import__("bot.music.tools", fromlist=["missing"]).missing()),
                    reason="needs the music tools (apt; .ci/run installs them)")  # fmt: skip
def test_a_tune_goes_to_bluesky_with_its_score_and_without_sound(bot: Bot, tmp_path: Path) -> None:
    from tests.fakes.tune_persona import make_tune_persona

    model = make_tune_persona(tmp_path / "models" / "tunes")
    settings = cfg.PersonaSettings(
        name="tunes", model=model, prompts=(REEL,), candidates=2, max_rounds=1,
        vocabulary="any", filters=cfg.Filters(max_chars=1500), publisher="bluesky",
        publisher_settings={"bluesky": BlueskySettings(handle=bot.account.handle,
                                                       pds_url=bot.network.pds_url)},
    )  # fmt: skip
    store = SQLiteStore(tmp_path / "state.db")
    persona = Persona(settings, store=store, publisher=bot.publisher(),
                      rng=np.random.default_rng(1), now=lambda: datetime.now(UTC))  # fmt: skip
    result = persona.wake("2026-12-02T14:00Z", wait=lambda s: False)
    store.close()

    assert result.outcome == "posted", result
    (record,) = bot.records()
    value = record["value"]
    assert value["text"].startswith("The Test Reel")
    assert len(value["text"]) <= 300
    (image,) = value["embed"]["images"]  # the score; Bluesky takes no audio
    assert value["embed"]["$type"] == "app.bsky.embed.images"
    assert image["image"]["mimeType"] == "image/png" and image["image"]["size"] > 1000
    assert "\u201cThe Test Reel\u201d" in image["alt"]
