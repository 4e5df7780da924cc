"""MastodonPublisher through the real Mastodon.py client against mastodon-mock on loopback.

Nothing in the client is patched: faults (429, 5xx, slow answers) are injected on the
server's control plane. Where mastodon-mock differs from a real Mastodon (rate-limit
header formats, instance limits), the real response shapes from Mastodon's API docs are
served through the fault plane or parsed directly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core.errors import PublishError
from bot.core.post import Post, Receipt
from bot.posting.delivery import publish_with_retries
from bot.publishers.mastodon.client import (
    DEFAULT_MAX_CHARS,
    SCOPES_TEXT,
    MastodonPublisher,
    retry_after_seconds,
    status_length,
)

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]  # the mastodon_server fixture

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_publisher(
    server: MastodonServer, token: str | None = None, request_timeout_seconds: float = 5.0
) -> MastodonPublisher:
    return MastodonPublisher(
        server.base_url,
        token or server.bot.token or "",
        request_timeout_seconds=request_timeout_seconds,
    )


def post(
    text: str = "the sea remembers", key: str = "ada:2025-01-01T10:00Z", **kwargs: object
) -> Post:
    return Post(persona="ada", text=text, idempotency_key=key, **kwargs)  # type: ignore[arg-type]


class Recorder:
    """An injectable `sleep` that records instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


# --- publishing --------------------------------------------------------------------------


def test_publish_sends_visibility_spoiler_language_and_sensitive(mastodon_server):
    publisher = make_publisher(mastodon_server)
    receipt = publisher.publish(
        post(visibility="private", spoiler_text="ghosts", language="fr", sensitive=True)
    )

    [status] = mastodon_server.statuses()
    assert receipt == Receipt("mastodon", str(status.id), status.url)
    assert (status.visibility, status.spoiler_text, status.language) == ("private", "ghosts", "fr")
    assert status.sensitive is True
    assert "the sea remembers" in status.content


def test_publish_defaults_to_unlisted(mastodon_server):
    make_publisher(mastodon_server).publish(post())
    [status] = mastodon_server.statuses()
    assert status.visibility == "unlisted"


def test_publish_replies_in_thread(mastodon_server):
    mention = mastodon_server.mention(mastodon_server.alice, "a poem please")
    make_publisher(mastodon_server).publish(
        post("@alice here", in_reply_to_id=str(mention.id), visibility="direct")
    )
    [reply] = mastodon_server.statuses()
    assert str(reply.in_reply_to_id) == str(mention.id)


def test_same_idempotency_key_twice_is_one_status(mastodon_server):
    publisher = make_publisher(mastodon_server)
    first = publisher.publish(post(key="ada:slot-1"))
    again = publisher.publish(post(key="ada:slot-1"))
    other = publisher.publish(post(key="ada:slot-2"))

    assert again == first
    assert other.remote_id != first.remote_id
    assert len(mastodon_server.statuses()) == 2


# --- failures ----------------------------------------------------------------------------


def test_bad_token_is_permanent_and_names_the_env_var_not_the_token(mastodon_server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "s3cret-token-that-must-not-leak"
    publisher = make_publisher(mastodon_server, token)

    with pytest.raises(PublishError) as excinfo:
        publish_with_retries(publisher, post(), sleep=Recorder())

    err = excinfo.value
    assert err.transient is False
    assert err.status_code == 401
    assert "MASTODON_ACCESS_TOKEN" in str(err)
    assert f"with the scopes {SCOPES_TEXT}," in err.hint  # the README's one list (#21)
    assert "bot check --online" in err.hint
    for text in (str(err), repr(err), repr(publisher), caplog.text):
        assert token not in text
    assert mastodon_server.statuses() == []


def test_token_env_name_in_hint_follows_config(mastodon_server):
    publisher = MastodonPublisher(mastodon_server.base_url, "nope", token_env="ADA_MASTODON_TOKEN")
    with pytest.raises(PublishError, match="ADA_MASTODON_TOKEN"):
        publisher.publish(post())


def test_token_may_be_a_secret_wrapper(mastodon_server):
    from bot.config import Secret  # the wrapper config.resolve_token really returns

    publisher = MastodonPublisher(mastodon_server.base_url, Secret(mastodon_server.bot.token))
    assert publisher.publish(post()).remote_id
    assert mastodon_server.bot.token not in repr(publisher)


def test_forbidden_is_permanent_with_the_scopes_hint(mastodon_server):
    mastodon_server.inject_error(
        403, body={"error": "This action is outside the authorized scopes"}
    )
    with pytest.raises(PublishError) as excinfo:
        make_publisher(mastodon_server).publish(post())
    assert (excinfo.value.transient, excinfo.value.status_code) == (False, 403)
    assert "outside the authorized scopes" in excinfo.value.message
    assert "write:statuses" in excinfo.value.hint


def test_server_error_may_have_posted_so_it_is_looked_for_not_retried(mastodon_server):
    # A 5xx may come after the server made the status: never re-sent blindly (a server
    # that ignores the key would post it twice); the caller looks with `find` first.
    mastodon_server.inject_error(500, count=1)
    sleep, attempts = Recorder(), []
    publisher = make_publisher(mastodon_server)

    with pytest.raises(PublishError) as excinfo:
        publish_with_retries(
            publisher,
            post(),
            sleep=sleep,
            on_attempt=lambda n, err: attempts.append((n, err and err.status_code)),
        )

    assert (excinfo.value.transient, excinfo.value.maybe_sent) == (True, True)
    assert attempts == [(1, 500)] and sleep.delays == []
    assert publisher.find(post(), datetime.now(UTC) - timedelta(minutes=1)) is None
    assert mastodon_server.statuses() == []


def test_timeout_after_the_server_accepted_is_found_not_posted_twice(mastodon_server):
    # The server creates the status at once but answers after the client's timeout: the
    # status is found among the account's own, so nothing is sent again.
    mastodon_server.inject_late_response(1.0)
    publisher = make_publisher(mastodon_server, request_timeout_seconds=0.3)
    since = datetime.now(UTC)

    with pytest.raises(PublishError) as excinfo:
        publish_with_retries(publisher, post(), sleep=Recorder())
    assert excinfo.value.maybe_sent
    mastodon_server.drain()

    receipt = publisher.find(post(), since)

    [status] = mastodon_server.statuses()
    assert receipt is not None and receipt.remote_id == str(status.id)
    other = Post(persona="ada", text="another text", idempotency_key="k2")
    assert publisher.find(other, since) is None
    assert publisher.find(post(), datetime.now(UTC) + timedelta(hours=1)) is None  # too new


def test_unreachable_server_is_transient():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    publisher = MastodonPublisher(f"http://127.0.0.1:{port}", "tok", request_timeout_seconds=1)
    with pytest.raises(PublishError) as excinfo:
        publisher.publish(post())
    assert excinfo.value.transient is True
    assert excinfo.value.status_code is None
    assert "tok" not in str(excinfo.value).replace("127.0.0.1", "")


@pytest.mark.parametrize("shape", ["mock", "mastodon"])
def test_rate_limit_is_transient_with_retry_after(mastodon_server, shape):
    mastodon_server.inject_rate_limit(reset_in_seconds=120, shape=shape)
    with pytest.raises(PublishError) as excinfo:
        make_publisher(mastodon_server).publish(post())
    err = excinfo.value
    assert (err.transient, err.status_code) == (True, 429)
    assert err.retry_after is not None
    assert 110 <= err.retry_after <= 122  # the server's Date header has 1 s resolution


def test_rate_limit_far_away_is_raised_at_once_to_keep_the_slot(mastodon_server):
    mastodon_server.inject_rate_limit(reset_in_seconds=600, count=None)
    sleep = Recorder()
    with pytest.raises(PublishError) as excinfo:
        publish_with_retries(make_publisher(mastodon_server), post(), sleep=sleep)
    assert excinfo.value.status_code == 429
    assert sleep.delays == []  # never a thread asleep for minutes
    assert mastodon_server.statuses() == []


def test_rate_limit_resetting_soon_is_waited_out_then_posted(mastodon_server):
    mastodon_server.inject_rate_limit(reset_in_seconds=5, shape="mastodon")
    sleep = Recorder()
    receipt = publish_with_retries(
        make_publisher(mastodon_server), post(), sleep=sleep, max_delay_seconds=30
    )
    assert len(sleep.delays) == 1
    assert 3 <= sleep.delays[0] <= 8
    assert [str(s.id) for s in mastodon_server.statuses()] == [receipt.remote_id]


def test_unprocessable_is_permanent_with_the_servers_message(mastodon_server):
    with pytest.raises(PublishError) as excinfo:
        publish_with_retries(make_publisher(mastodon_server), post("x" * 501), sleep=Recorder())
    err = excinfo.value
    assert (err.transient, err.status_code) == (False, 422)
    assert "Text is too long" in err.message


def test_unprocessable_real_mastodon_message_is_kept(mastodon_server):
    # Mastodon 4.x's wording, from a real 422 body.
    message = "Validation failed: Text character limit of 500 exceeded"
    mastodon_server.inject_error(422, body={"error": message})
    with pytest.raises(PublishError) as excinfo:
        make_publisher(mastodon_server).publish(post())
    assert message in excinfo.value.message


# --- instance limit ----------------------------------------------------------------------

# The documented GET /api/v2/instance shape (docs.joinmastodon.org/methods/instance/#v2),
# trimmed, with a larger limit than the mock's constant 500.
V2_INSTANCE = {
    "domain": "mastodon.example",
    "title": "Mastodon",
    "version": "4.3.0",
    "source_url": "https://github.com/mastodon/mastodon",
    "description": "A test instance",
    "usage": {"users": {"active_month": 1}},
    "thumbnail": {"url": "https://mastodon.example/thumb.png"},
    "languages": ["en"],
    "configuration": {
        "urls": {"streaming": "wss://mastodon.example"},
        "accounts": {"max_featured_tags": 10},
        "statuses": {
            "max_characters": 5000,
            "max_media_attachments": 4,
            "characters_reserved_per_url": 23,
        },
    },
    "registrations": {"enabled": False, "approval_required": False, "message": None},
    "contact": {"email": "admin@mastodon.example", "account": None},
    "rules": [],
}


def faults_remaining(server: MastodonServer) -> list[int | None]:
    return [rule["remaining"] for rule in server.control("GET", "/faults")]


def test_max_chars_reads_the_instance(mastodon_server):
    assert make_publisher(mastodon_server).max_chars() == 500  # the mock's limit


def test_max_chars_reads_v2_once_and_caches_it(mastodon_server):
    mastodon_server.inject_error(200, path="/api/v2/instance/", methods=["GET"], body=V2_INSTANCE)
    publisher = make_publisher(mastodon_server)
    assert publisher.max_chars() == 5000

    mastodon_server.inject_error(500, path="/api/v*/instance/", methods=["GET"], count=5)
    assert publisher.max_chars() == 5000
    assert faults_remaining(mastodon_server) == [5]  # no second request was made


def test_max_chars_falls_back_to_v1(mastodon_server):
    mastodon_server.inject_error(404, path="/api/v2/instance/", methods=["GET"])
    v1 = {
        "uri": "old.example",
        "title": "Old",
        "configuration": {"statuses": {"max_characters": 700}},
    }
    mastodon_server.inject_error(200, path="/api/v1/instance/", methods=["GET"], body=v1)
    assert make_publisher(mastodon_server).max_chars() == 700


def test_max_chars_reads_legacy_max_toot_chars(mastodon_server):
    mastodon_server.inject_error(404, path="/api/v2/instance/", methods=["GET"])
    legacy = {"uri": "pleroma.example", "title": "Pleroma", "max_toot_chars": 5000}
    mastodon_server.inject_error(200, path="/api/v1/instance/", methods=["GET"], body=legacy)
    assert make_publisher(mastodon_server).max_chars() == 5000


def test_max_chars_reads_v1_without_the_slash(mastodon_server):
    """Some servers answer `GET /api/v1/instance` but not Mastodon.py's `/api/v1/instance/`."""
    mastodon_server.inject_error(404, path="/api/v*/instance/", methods=["GET"], count=2)
    v1 = {"uri": "other.example", "configuration": {"statuses": {"max_characters": 700}}}
    mastodon_server.inject_error(200, path="/api/v1/instance", methods=["GET"], body=v1)
    assert make_publisher(mastodon_server).max_chars() == 700


def test_a_refusal_for_length_is_learnt(mastodon_server):
    mastodon_server.inject_error(
        422, body={"error": "Validation failed: Text character limit of 300 exceeded"}
    )
    publisher = make_publisher(mastodon_server)
    with pytest.raises(PublishError) as excinfo:
        publisher.publish(post("x" * 400))
    assert excinfo.value.too_long and not excinfo.value.maybe_sent
    assert publisher.max_chars() == 300  # the limit the server named
    mastodon_server.inject_error(422, body={"error": "Text is too long"})
    with pytest.raises(PublishError):
        publisher.publish(post("y" * 250, key="k2"))
    assert publisher.max_chars() == 249  # no number given: one below what was refused


def test_takahes_400_for_length_is_learnt_too(mastodon_server):
    """Takahē refuses an over-length status with 400, not 422: learnt all the same."""
    mastodon_server.inject_error(400, body={"error": "Status is too long"})
    publisher = make_publisher(mastodon_server)
    with pytest.raises(PublishError) as excinfo:
        publisher.publish(post("x" * 450))
    assert (excinfo.value.status_code, excinfo.value.too_long) == (400, True)
    assert publisher.max_chars() == 449  # the next compose fits under what was refused
    mastodon_server.inject_error(400, body={"error": "Invalid visibility"})
    with pytest.raises(PublishError) as other:
        publisher.publish(post("y" * 100, key="k2"))
    assert not other.value.too_long and publisher.max_chars() == 449  # not about length


def test_length_counts_the_content_warning(mastodon_server):
    publisher = make_publisher(mastodon_server)
    assert publisher.length("a" * 453, "b" * 69) == 522


def test_max_chars_falls_back_to_500_and_asks_again_later(mastodon_server):
    mastodon_server.inject_error(500, path="/api/v*/instance*", methods=["GET"], count=3)
    publisher = make_publisher(mastodon_server)
    assert publisher.max_chars() == DEFAULT_MAX_CHARS == 500

    mastodon_server.inject_error(200, path="/api/v2/instance/", methods=["GET"], body=V2_INSTANCE)
    assert publisher.max_chars() == 5000  # a server error is not cached


def test_max_chars_500_is_kept_when_the_instance_has_no_such_page(mastodon_server):
    mastodon_server.inject_error(404, path="/api/v*/instance*", methods=["GET"], count=3)
    publisher = make_publisher(mastodon_server)
    assert publisher.max_chars() == 500
    mastodon_server.inject_error(200, path="/api/v2/instance/", methods=["GET"], body=V2_INSTANCE)
    assert publisher.max_chars() == 500  # the server said so: cached


# --- length as Mastodon counts it --------------------------------------------------------


def test_status_length_counts_a_url_as_23():
    url = "https://example.com/" + "a" * 80
    assert status_length(f"read {url}") == len("read ") + 23


def test_status_length_counts_remote_mentions_by_username():
    assert status_length("@alice@social.example hi") == len("@alice hi")


def test_status_length_counts_graphemes_and_the_spoiler():
    assert status_length("👩‍👩‍👧", spoiler_text="cw") == 1 + 2


# --- rate-limit headers, real shapes -----------------------------------------------------


def test_retry_after_from_mastodons_iso_reset_and_date():
    # Rack::Attack in Mastodon: ISO 8601 with microseconds, no Retry-After.
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2020-09-08T13:25:00.019685Z",
        "Date": "Tue, 08 Sep 2020 13:20:00 GMT",
    }
    # The server's Date is the reference, whatever the local clock says.
    assert retry_after_seconds(headers, now=0.0) == pytest.approx(300.019685)


def test_retry_after_from_iso_reset_without_date():
    headers = {"x-ratelimit-reset": "2020-09-08T13:25:00+00:00"}
    assert retry_after_seconds(headers, now=1599571200.0) == pytest.approx(300.0)  # 13:20Z


def test_retry_after_from_epoch_reset_as_the_mock_sends():
    assert retry_after_seconds({"X-RateLimit-Reset": "1000120"}, now=1000000.0) == 120.0


def test_retry_after_header_wins_seconds_or_http_date():
    assert retry_after_seconds({"Retry-After": "42", "X-RateLimit-Reset": "9"}, now=0) == 42
    headers = {
        "Retry-After": "Tue, 08 Sep 2020 13:21:00 GMT",
        "Date": "Tue, 08 Sep 2020 13:20:00 GMT",
    }
    assert retry_after_seconds(headers) == 60


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, None),
        ({"X-RateLimit-Reset": "soon"}, None),
        ({"Retry-After": "", "X-RateLimit-Reset": ""}, None),
        ({"X-RateLimit-Reset": "2020-09-08T13:25:00Z"}, 0.0),  # already past
    ],
)
def test_retry_after_unknown_or_past(headers, expected):
    assert retry_after_seconds(headers, now=2e9) == expected


# --- bounded retries (a scripted publisher; no network) ----------------------------------


class ScriptedPublisher:
    """Raises the scripted errors in order, then succeeds; records the posts it got."""

    name = "scripted"

    def __init__(self, *errors: PublishError) -> None:
        self.errors = list(errors)
        self.posts: list[Post] = []

    def publish(self, p: Post) -> Receipt:
        self.posts.append(p)
        if self.errors:
            raise self.errors.pop(0)
        return Receipt(self.name, "1")

    def max_chars(self) -> int:
        return 500


def transient(**kwargs: object) -> PublishError:
    return PublishError("flaky", transient=True, **kwargs)  # type: ignore[arg-type]


def test_retries_back_off_exponentially_with_jitter_and_a_cap():
    publisher = ScriptedPublisher(*(transient(status_code=503) for _ in range(4)))
    sleep = Recorder()
    publish_with_retries(
        publisher,
        post(),
        attempts=5,
        base_delay_seconds=2,
        max_delay_seconds=10,
        sleep=sleep,
        rand=lambda: 1.0,
    )
    assert sleep.delays == [2, 4, 8, 10]
    low = Recorder()
    publish_with_retries(
        ScriptedPublisher(transient(), transient()),
        post(),
        base_delay_seconds=2,
        sleep=low,
        rand=lambda: 0.0,
    )
    assert low.delays == [1, 2]  # jitter scales each delay by 0.5-1.0
    assert {p.idempotency_key for p in publisher.posts} == {post().idempotency_key}


def test_retries_are_bounded():
    publisher = ScriptedPublisher(*(transient() for _ in range(5)))
    with pytest.raises(PublishError):
        publish_with_retries(publisher, post(), attempts=3, sleep=Recorder())
    assert len(publisher.posts) == 3


def test_permanent_errors_are_not_retried():
    publisher = ScriptedPublisher(PublishError("nope", status_code=422))
    sleep = Recorder()
    with pytest.raises(PublishError):
        publish_with_retries(publisher, post(), sleep=sleep)
    assert (len(publisher.posts), sleep.delays) == (1, [])


def test_rate_limit_without_a_reset_time_is_not_hammered():
    publisher = ScriptedPublisher(transient(status_code=429, retry_after=None))
    sleep = Recorder()
    with pytest.raises(PublishError):
        publish_with_retries(publisher, post(), sleep=sleep)
    assert (len(publisher.posts), sleep.delays) == (1, [])


# --- bot check --online / bot setup ------------------------------------------------------


def test_account_info_shows_account_bot_flag_and_limit(mastodon_server):
    info = make_publisher(mastodon_server).account_info()
    assert (info.acct, info.bot, info.instance_limit) == ("revenant", False, 500)
    assert info.url and info.url.endswith("/@revenant")


def test_account_info_with_a_bad_token_explains_the_fix(mastodon_server):
    with pytest.raises(PublishError, match="MASTODON_ACCESS_TOKEN") as excinfo:
        make_publisher(mastodon_server, "revoked").account_info()
    assert "bot check --online" in excinfo.value.hint


def test_mark_bot_sets_the_flag_and_the_note(mastodon_server):
    info = make_publisher(mastodon_server).mark_bot(note="An LSTM writing in Ada's voice.")
    assert info.bot is True
    me = mastodon_server.client().account_verify_credentials()
    assert me.bot is True
    assert "An LSTM writing in Ada" in me.note


def test_construction_makes_no_request():
    MastodonPublisher("http://127.0.0.1:9", "tok")  # nothing listens there; must not matter


# --- crash safety (issue 6, point 3) -----------------------------------------------------


def run_slot(
    server: MastodonServer, record: Path, *, crash: bool
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tests.fakes.crash_slot", server.base_url, str(record), "slot-7"]
    env = {
        **os.environ,
        "MASTODON_ACCESS_TOKEN": server.bot.token or "",
        "PYTHONPATH": str(REPO_ROOT),
    }
    return subprocess.run(
        argv + (["--crash-after-publish"] if crash else []),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crash_after_the_server_accepted_reposts_nothing(mastodon_server, tmp_path):
    record = tmp_path / "slots.json"

    crashed = run_slot(mastodon_server, record, crash=True)
    assert crashed.returncode == 17, crashed.stderr
    assert json.loads(record.read_text())["slot-7"]["state"] == "claimed"  # receipt lost
    [accepted] = mastodon_server.statuses()

    rerun = run_slot(mastodon_server, record, crash=False)
    assert rerun.returncode == 0, rerun.stderr
    slot = json.loads(record.read_text())["slot-7"]
    assert (slot["state"], slot["remote_id"]) == ("posted", str(accepted.id))
    assert [s.id for s in mastodon_server.statuses()] == [accepted.id]  # one status

    assert run_slot(mastodon_server, record, crash=False).returncode == 0  # done: no-op
    assert len(mastodon_server.statuses()) == 1


def test_find_sees_a_direct_reply_in_its_thread(mastodon_server):
    mention = mastodon_server.mention(mastodon_server.alice, "psst", visibility="direct")
    publisher = make_publisher(mastodon_server)
    since = datetime.now(UTC) - timedelta(minutes=1)
    reply = post("@alice a secret", key="r1", visibility="direct", in_reply_to_id=str(mention.id))
    sent = publisher.publish(reply)
    mastodon_server.inject_error(
        200, path=f"/api/v1/accounts/{mastodon_server.bot.id}/statuses", methods=["GET"], body=[]
    )  # an account list that leaves direct statuses out
    found = publisher.find(reply, since)
    assert found is not None and found.remote_id == sent.remote_id
