"""Replies (issue 8) against mastodon-mock over loopback, through the real Mastodon.py.

The tiny committed persona writes gibberish; the filters are lax enough that some of
its candidates survive (min_chars small, no default blocklist, loose novelty)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bot import config as cfg
from bot.core.errors import ConfigError, PublishError
from bot.core.post import Post, Receipt
from bot.posting.mentions import has_nobot, mention_prompt, reply_visibility
from bot.posting.persona import Persona
from bot.posting.replies import Replier
from bot.publishers.mastodon.client import MastodonPublisher
from bot.publishers.mastodon.kind import MastodonSettings
from bot.publishers.outbox import Outbox
from bot.store import SQLiteStore

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]

TINY = Path(__file__).parent / "data" / "tiny_persona"


class Clock:
    """Real time plus a settable offset (mock statuses carry real timestamps)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def settings(server: MastodonServer, **replies: Any) -> cfg.PersonaSettings:
    return cfg.PersonaSettings(
        name="tiny",
        model=TINY,
        candidates=16,
        max_rounds=6,
        publisher="mastodon",
        publisher_settings={"mastodon": MastodonSettings(base_url=server.base_url)},
        filters=cfg.Filters(min_chars=3, default_blocklist=False, novelty_words=50),
        replies=cfg.Replies(enabled=True, **replies),
    )


class Rig:
    """A persona, its publisher and store, and a way to build Repliers (restarts)."""

    def __init__(self, server: MastodonServer, tmp_path: Path, **replies: Any) -> None:
        self.server = server
        self.settings = settings(server, **replies)
        self.clock = Clock()
        self.store = SQLiteStore(tmp_path / "state" / "revenant.db", now=self.clock)

    def publisher(self, cls: type[MastodonPublisher] = MastodonPublisher) -> MastodonPublisher:
        return cls(self.server.base_url, self.server.bot.token or "", settle_seconds=0)

    def replier(self, publisher: MastodonPublisher | None = None) -> Replier:
        publisher = publisher or self.publisher()
        runner = Persona(
            self.settings, store=self.store, publisher=publisher, rng=np.random.default_rng(7)
        )
        return Replier(runner, publisher, self.store, now=self.clock)

    def replies(self) -> list[Any]:
        """Our bot's statuses on the server, oldest first."""
        return list(reversed(self.server.statuses()))


@pytest.fixture
def rig(mastodon_server: MastodonServer, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(mastodon_server, tmp_path, max_age_minutes=180)
    yield r
    r.store.close()


def plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def notification_ids(server: MastodonServer) -> list[str]:
    page = server.client().notifications(types=["mention"], limit=40)
    return sorted((str(n["id"]) for n in page), key=int)


# --- the reply itself --------------------------------------------------------------------


def test_mention_gets_a_threaded_reply_to_the_author_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = rig.server
    prompts: list[str | None] = []
    compose = Persona.compose

    def spy(self: Persona, **kwargs: Any) -> Any:
        prompts.append(kwargs.get("prompt"))
        return compose(self, **kwargs)

    monkeypatch.setattr(Persona, "compose", spy)
    mention = server.mention(server.alice, "@bob tell me of the sea https://example.com/x")

    results = rig.replier().poll()

    assert [r.outcome for r in results] == ["replied"]
    assert prompts == ["tell me of the sea"]  # mentions and links removed, text primes
    (reply,) = rig.replies()
    assert str(reply["in_reply_to_id"]) == str(mention["id"])
    text = plain(reply["content"])
    assert text.startswith("@alice ")
    assert "@bob" not in text and "@revenant" not in text
    assert [m["acct"] for m in reply["mentions"]] == ["alice"]
    assert reply["visibility"] == "unlisted"  # public mention, persona unlisted
    (row,) = rig.store.recent_posts("tiny")
    assert row.kind == "reply" and row.remote_id == str(reply["id"])
    nid = notification_ids(server)[0]
    assert rig.store.mention_outcome("tiny", nid) == "replied"
    assert rig.store.get_cursor("replies:tiny") == nid
    assert rig.replier().poll() == []  # answered once; nothing new
    assert len(rig.replies()) == 1


def test_direct_mention_gets_a_direct_reply(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "a secret for you", visibility="direct")
    assert [r.outcome for r in rig.replier().poll()] == ["replied"]
    (reply,) = rig.replies()
    assert reply["visibility"] == "direct"


def test_followers_only_mention_gets_at_most_private(rig: Rig) -> None:
    rig.settings = replace(rig.settings, visibility="public")  # even a public persona
    rig.server.mention(rig.server.alice, "just for followers", visibility="private")
    rig.replier().poll()
    (reply,) = rig.replies()
    assert reply["visibility"] == "private"


@pytest.mark.parametrize(
    "mention, persona, expected",
    [
        ("public", "public", "unlisted"),  # mstdn-ebooks: never public by default
        ("public", "unlisted", "unlisted"),
        ("public", "private", "private"),
        ("unlisted", "public", "unlisted"),
        ("private", "public", "private"),
        ("private", "unlisted", "private"),
        ("direct", "public", "direct"),
        ("limited", "public", "direct"),  # unknown: the most private
    ],
)
def test_reply_visibility_is_never_more_public(mention: str, persona: Any, expected: str) -> None:
    assert reply_visibility(mention, persona) == expected


def test_reply_visibility_cap_can_be_raised() -> None:
    assert reply_visibility("public", "public", cap="public") == "public"


def test_mention_prompt_from_real_mastodon_html() -> None:
    # The shape Mastodon itself sends (mastodon-mock has no mention/link markup).
    html = (
        '<p><span class="h-card" translate="no"><a href="https://ex.social/@revenant" '
        'class="u-url mention">@<span>revenant</span></a></span> write me a '
        '<a href="https://ex.social/tags/poem" class="mention hashtag" rel="tag">#<span>poem'
        '</span></a> about <a href="https://example.com/a/b" rel="nofollow noopener" '
        'target="_blank"><span class="invisible">https://</span><span class="">example.com'
        '/a/b</span></a> and <span class="h-card"><a href="https://o.social/@bob" '
        'class="u-url mention">@<span>bob</span></a></span></p>'
    )
    assert mention_prompt(html) == "write me a #poem about and"


# --- who is not answered -----------------------------------------------------------------


def test_bot_account_gets_no_reply(rig: Rig) -> None:
    rig.server.mention(rig.server.robot, "beep boop")
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [("skipped", "bot_account")]
    assert rig.replies() == []
    assert rig.store.mention_skip_counts("tiny") == {"bot_account": 1}
    assert rig.store.get_cursor("replies:tiny") == results[0].notification_id  # moved past


def test_allowlisted_bot_is_answered(mastodon_server: MastodonServer, tmp_path: Path) -> None:
    rig = Rig(mastodon_server, tmp_path, bot_allowlist=("@Robot",))
    mastodon_server.mention(mastodon_server.robot, "beep boop")
    assert [r.outcome for r in rig.replier().poll()] == ["replied"]
    assert plain(rig.replies()[0]["content"]).startswith("@robot ")


def test_nobot_in_profile_gets_no_reply(rig: Rig) -> None:
    carol = rig.server.create_account("carol", note="<p>Human. #NoBot please</p>")
    rig.server.mention(carol, "hello")
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [("skipped", "nobot")]
    assert rig.replies() == []


@pytest.mark.parametrize(
    "account, expected",
    [
        ({"note": "", "fields": [{"name": "bots", "value": "#nobot"}]}, True),
        ({"note": "", "fields": [{"name": "#nobot", "value": ""}]}, True),
        ({"note": '<a href="/tags/nobot" class="mention hashtag">#<span>nobot</span></a>'}, True),
        ({"display_name": "Eve #nobot", "note": ""}, True),
        ({"note": "I like #nobots and #bots", "fields": []}, False),
        ({"note": "", "fields": None}, False),
    ],
)
def test_has_nobot(account: dict[str, Any], expected: bool) -> None:
    assert has_nobot(account) is expected


def test_old_mention_is_skipped(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "are you there?")
    rig.clock.offset = timedelta(hours=4)  # max_age_minutes is 180
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [("skipped", "too_old")]
    assert rig.replies() == []


def test_twenty_mentions_from_one_account_are_capped(rig: Rig) -> None:
    for i in range(20):
        rig.server.mention(rig.server.alice, f"number {i}")
    results = rig.replier().poll()
    assert len(results) == 20
    assert [r.outcome for r in results[:3]] == ["replied"] * 3
    assert {(r.outcome, r.reason) for r in results[3:]} == {("skipped", "account_limit")}
    assert len(rig.replies()) == 3
    assert rig.store.mention_skip_counts("tiny") == {"account_limit": 17}
    # An hour later the author may be answered again.
    rig.clock.offset = timedelta(minutes=61)
    rig.server.mention(rig.server.alice, "one more")
    assert [r.outcome for r in rig.replier().poll()] == ["replied"]


def test_other_accounts_have_their_own_limit(rig: Rig) -> None:
    for _ in range(4):
        rig.server.mention(rig.server.alice, "again")
    rig.server.mention(rig.server.bob, "me too")
    outcomes = [(r.acct, r.outcome) for r in rig.replier().poll()]
    assert outcomes[-1] == ("bob", "replied")
    assert outcomes.count(("alice", "replied")) == 3


def test_deep_thread_is_not_answered(mastodon_server: MastodonServer, tmp_path: Path) -> None:
    rig = Rig(mastodon_server, tmp_path, max_thread_depth=1)
    server = mastodon_server
    top = server.post_as(server.alice, "a thought", visibility="public")
    shallow = server.mention(server.bob, "what do you say?", in_reply_to_id=top["id"])
    deeper = server.post_as(server.alice, "indeed", in_reply_to_id=shallow["id"])
    server.mention(server.bob, "and now?", in_reply_to_id=deeper["id"])
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [
        ("replied", None),  # one post above it
        ("skipped", "thread_too_deep"),  # three posts above it
    ]


# --- exactly once ------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the bot may catch it)."""


def crashing_after(n: int) -> type[MastodonPublisher]:
    """A publisher whose process dies right after the server accepted the n-th reply."""

    class CrashingPublisher(MastodonPublisher):
        calls = 0

        def publish(self, post: Post) -> Receipt:
            receipt = super().publish(post)
            type(self).calls += 1
            if type(self).calls == n:
                raise Crash
            return receipt

    return CrashingPublisher


def test_restart_mid_batch_posts_no_duplicate(rig: Rig) -> None:
    for text in ("first", "second", "third"):
        rig.server.mention(rig.server.alice, text)
    with pytest.raises(Crash):
        rig.replier(rig.publisher(crashing_after(2))).poll()
    assert len(rig.replies()) == 2  # the second reached the server, its record did not
    assert [r.outcome for r in rig.replier().poll()] == ["busy"]  # its lease is still live

    rig.clock.offset += timedelta(seconds=61)  # the dead holder's lease expires
    results = rig.replier().poll()  # restart: new Replier, same store

    assert [r.outcome for r in results] == ["replied", "replied"]
    replies = rig.replies()
    assert len(replies) == 3  # the second was found on the server, not sent again
    mention_ids = [s["id"] for s in reversed(rig.server.statuses(rig.server.alice))]
    assert [str(r["in_reply_to_id"]) for r in replies] == [str(i) for i in mention_ids]
    assert sorted(p.remote_id for p in rig.store.recent_posts("tiny")) == sorted(
        str(r["id"]) for r in replies
    )


def test_handled_mentions_are_never_answered_again(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "hello")
    rig.server.mention(rig.server.robot, "beep")
    rig.replier().poll()
    rig.store.set_cursor("replies:tiny", "0")  # a lost cursor: everything is seen again
    results = rig.replier().poll()
    assert [r.outcome for r in results] == ["already_handled", "already_handled"]
    assert len(rig.replies()) == 1


def test_server_failing_mid_batch_is_retried_next_poll(rig: Rig) -> None:
    server = rig.server
    for text in ("one", "two", "three"):
        server.mention(server.alice, text)

    class FailingSecond(MastodonPublisher):
        calls = 0

        def publish(self, post: Post) -> Receipt:
            type(self).calls += 1
            if type(self).calls == 2:
                server.inject_rate_limit(reset_in_seconds=600)  # the server refuses for now
            return super().publish(post)

    first = rig.replier(rig.publisher(FailingSecond)).poll()

    assert [r.outcome for r in first] == ["replied", "failed"]
    assert len(rig.replies()) == 1
    ids = notification_ids(server)
    assert rig.store.get_cursor("replies:tiny") == ids[0]  # not past the failed one
    assert rig.store.failure_counts("tiny") == {"reply": 1}
    failed = rig.store.slot("tiny", f"reply:{ids[1]}")
    assert failed is not None and failed.status == "failed"

    second = rig.replier().poll()

    assert [r.outcome for r in second] == ["replied", "replied"]
    replies = rig.replies()
    assert len(replies) == 3
    assert len({str(r["in_reply_to_id"]) for r in replies}) == 3
    assert rig.store.get_cursor("replies:tiny") == ids[2]
    retried = rig.store.slot("tiny", f"reply:{ids[1]}")
    assert retried is not None and retried.attempts == 2 and retried.status == "posted"


def test_a_failed_thread_read_leaves_another_holders_reply_alone(rig: Rig) -> None:
    """#26.2: the thread above a mention cannot be read for now (503) while another
    process holds the mention's reply slot: the poll stops, and the slot stays that
    holder's (its writes still land), not turned `failed` under it."""
    server = rig.server
    parent = server.post_as(server.bob, "a thread", visibility="public")
    server.mention(server.alice, "in a thread", in_reply_to_id=parent["id"])
    [nid] = notification_ids(server)
    held = rig.store.claim_slot("tiny", f"reply:{nid}", holder="alive:1")
    assert held is not None
    server.inject_error(503, path="/api/v1/statuses/*/context", methods=["GET"])

    [result] = rig.replier().poll()

    assert result.outcome == "failed"
    row = rig.store.slot("tiny", f"reply:{nid}")
    assert row is not None and (row.status, row.holder) == ("claimed", "alive:1")
    assert rig.store.write_ahead(held, "@alice the other holder's reply", None)
    assert rig.replies() == []


def test_a_5xx_reply_is_looked_for_then_sent_once(rig: Rig) -> None:
    """A 500 may come after the server made the reply: it is looked for among the
    account's statuses first; absent, the same text is sent again, once."""
    rig.server.mention(rig.server.alice, "one")
    rig.server.inject_error(500)
    [result] = rig.replier().poll()
    assert result.outcome == "replied"
    [reply] = rig.replies()
    assert plain(reply["content"]) == result.text
    [row] = rig.store.recent_posts("tiny")
    assert row.text == result.text and row.remote_id == str(reply["id"])


def test_notifications_unavailable_is_quiet_and_recorded(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "hello")
    rig.server.inject_error(503, path="/api/v1/notifications", methods=["GET"])
    assert rig.replier().poll() == []
    assert rig.store.failure_counts("tiny") == {"replies_read": 1}
    assert [r.outcome for r in rig.replier().poll()] == ["replied"]


def test_rejected_token_is_raised_naming_the_variable(rig: Rig) -> None:
    publisher = MastodonPublisher(rig.server.base_url, "not-a-valid-token")
    with pytest.raises(PublishError) as caught:
        rig.replier(publisher).poll()
    assert "MASTODON_ACCESS_TOKEN" in caught.value.message
    assert caught.value.status_code == 401


def test_permanent_refusal_skips_the_mention(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "hello")
    rig.server.mention(rig.server.alice, "again")
    rig.server.inject_error(422, body={"error": "Validation failed: Language is not supported"})
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [
        ("skipped", "publish_refused"),
        ("replied", None),
    ]
    assert "Language is not supported" in (results[0].error or "")
    assert rig.store.failure_counts("tiny") == {"reply": 1}


def test_refusal_for_length_is_learnt_and_the_reply_composed_to_fit(rig: Rig) -> None:
    rig.server.mention(rig.server.alice, "hello")
    rig.server.inject_error(
        422, body={"error": "Validation failed: Text character limit of 60 exceeded"}
    )
    [result] = rig.replier().poll()
    assert result.outcome == "replied"
    [reply] = rig.replies()
    assert len(plain(reply["content"])) <= 60
    row = rig.store.slot("tiny", rig.store.recent_posts("tiny")[0].slot_key)
    assert row is not None and row.text == result.text  # the new text was written ahead


def test_replies_need_the_mastodon_publisher(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db") as store:
        settings_ = cfg.PersonaSettings(name="tiny", model=TINY)
        outbox = Outbox(tmp_path / "outbox")
        with pytest.raises(ConfigError, match="publisher: mastodon"):
            Replier(Persona(settings_, store=store, publisher=outbox), outbox, store)


def test_prompt_failure_is_never_posted(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.core.errors import ModelError

    def broken(self: Persona, **kwargs: Any) -> Any:
        raise ModelError("models/tiny: corrupt", "retrain it")

    monkeypatch.setattr(Persona, "compose", broken)
    rig.server.mention(rig.server.alice, "hello")
    with pytest.raises(ModelError):
        rig.replier().poll()
    assert rig.replies() == []  # no error text goes to the account
    assert rig.store.get_cursor("replies:tiny") is None
    monkeypatch.undo()
    assert [r.outcome for r in rig.replier().poll()] == ["replied"]


def test_server_ignoring_the_type_filter_does_not_stall_the_cursor(rig: Rig) -> None:
    # Mastodon < 3.5 ignores types[]: a page of follows must still move the cursor.
    follow = {"id": "77", "type": "follow", "created_at": "2025-01-01T10:00:00.000Z",
              "account": {"id": "9", "acct": "zed", "username": "zed", "bot": False}}  # fmt: skip
    rig.server.inject_error(200, path="/api/v1/notifications", methods=["GET"], body=[follow])
    assert rig.replier().poll() == []
    assert rig.store.get_cursor("replies:tiny") == "77"


def canned_mention(nid: str, status_id: str, account: dict[str, Any], text: str) -> dict[str, Any]:
    """A mention notification in Mastodon's JSON shape, for cases the mock cannot stage."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": nid,
        "type": "mention",
        "created_at": now,
        "account": account,
        "status": {
            "id": status_id,
            "created_at": now,
            "in_reply_to_id": None,
            "visibility": "public",
            "sensitive": False,
            "spoiler_text": "",
            "content": f"<p>{text}</p>",
            "account": account,
            "mentions": [],
        },
    }


def test_own_post_is_never_answered(rig: Rig) -> None:
    # Mastodon does not notify self-mentions, but a misbehaving server might.
    me = {"id": rig.server.bot.id, "acct": "revenant", "username": "revenant", "bot": True}
    body = [canned_mention("990", "991", me, "@revenant talking to myself")]
    rig.server.inject_error(200, path="/api/v1/notifications", methods=["GET"], body=body)
    results = rig.replier().poll()
    assert [(r.outcome, r.reason) for r in results] == [("skipped", "own_post")]
    assert rig.replies() == []


def test_remote_author_is_addressed_with_the_full_handle(rig: Rig) -> None:
    # dave@remote.example has no token on the mock; answer a canned mention from him.
    target = rig.server.post_as(rig.server.alice, "a status to hang the reply on")
    dave = {"id": "4242", "acct": "dave@remote.example", "username": "dave", "bot": False,
            "note": "", "fields": []}  # fmt: skip
    body = [canned_mention("995", str(target["id"]), dave, "@revenant hello from afar")]
    rig.server.inject_error(200, path="/api/v1/notifications", methods=["GET"], body=body)
    (result,) = rig.replier().poll()
    assert result.outcome == "replied"
    (reply,) = rig.replies()
    assert plain(reply["content"]).startswith("@dave@remote.example ")
    assert str(reply["in_reply_to_id"]) == str(target["id"])


def test_bot_loop_ends_without_read_statuses_scope(
    mastodon_server: MastodonServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A token without read:statuses gets 403 from the thread endpoint; our own records of
    # the exchange still end a loop with an allowlisted bot, and nothing is disabled.
    rig = Rig(mastodon_server, tmp_path, bot_allowlist=("robot",), max_thread_depth=2)
    server = mastodon_server
    server.inject_error(
        403,
        path="/api/v1/statuses/*/context",
        methods=["GET"],
        count=None,
        body={"error": "This action is outside the authorized scopes"},
    )
    server.mention(server.robot, "beep")
    outcomes = []
    for _ in range(3):
        (result,) = rig.replier().poll()
        outcomes.append((result.outcome, result.reason))
        if result.receipt is not None:  # the robot answers our reply at once
            server.mention(server.robot, "boop", in_reply_to_id=result.receipt.remote_id)
    assert outcomes == [
        ("replied", None),  # top level
        ("replied", None),  # two posts above: our reply and the first beep
        ("skipped", "thread_too_deep"),  # four above
    ]
    assert len(rig.replies()) == 2
    assert caplog.text.count("event=thread_unreadable") == 2  # the fallback decided


@pytest.mark.parametrize("status", [410, 422])
def test_a_permanently_unreadable_thread_does_not_block_the_cursor(rig: Rig, status: int) -> None:
    """status_context failing for good on one mention (gone, unprocessable) used to hold
    the cursor there forever; the thread is counted from our own records instead."""
    server = rig.server
    parent = server.post_as(server.bob, "a thread", visibility="public")
    server.mention(server.alice, "in a thread", in_reply_to_id=parent["id"])
    server.mention(server.alice, "top level")
    server.inject_error(
        status, path="/api/v1/statuses/*/context", methods=["GET"], count=None,
        body={"error": "Validation failed"},
    )  # fmt: skip
    first = rig.replier().poll()
    expected = "skipped" if status == 410 else "replied"  # 410: the status is gone
    assert [r.outcome for r in first] == [expected, "replied"]
    assert rig.store.get_cursor("replies:tiny") == notification_ids(server)[-1]
    assert rig.replier().poll() == []  # nothing left, nothing stuck


def test_reply_length_counts_the_content_warning(rig: Rig) -> None:
    """With a 420-character content warning only 80 characters are left for "@alice ..."."""
    rig.settings = replace(rig.settings, spoiler_text="w" * 420)
    rig.server.mention(rig.server.alice, "hello")
    [result] = rig.replier().poll()
    assert result.outcome in ("replied", "skipped")
    for reply in rig.replies():
        assert len(plain(reply["content"])) + len(reply["spoiler_text"]) <= 500
    if result.outcome == "replied":
        assert result.text is not None and len(result.text) <= 80
