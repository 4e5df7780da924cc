"""The loopback Mastodon fixture does what its docstring promises (other tests rely on it)."""

from __future__ import annotations

import contextlib
import time

import pytest

pytest_plugins = ["tests.fakes.mastodon_server"]


def test_create_account_with_note_and_bot_flag(mastodon_server):
    carol = mastodon_server.create_account("carol", note="no bots please #nobot", bot=True)
    me = mastodon_server.client(carol).account_verify_credentials()
    assert (me.username, me.bot) == ("carol", True)
    assert "#nobot" in me.note
    assert mastodon_server.account("carol") == carol
    assert mastodon_server.robot.token and mastodon_server.client(mastodon_server.robot).me().bot


def test_a_mention_reaches_our_notifications(mastodon_server):
    status = mastodon_server.mention(mastodon_server.alice, "say something")
    assert status.content.startswith("<p>@revenant say something")
    [note] = mastodon_server.client().notifications(types=["mention"])
    assert (note.account.acct, str(note.status.id)) == ("alice", str(status.id))


def test_statuses_lists_every_visibility_across_pages(mastodon_server):
    client = mastodon_server.client()
    for i in range(45):
        client.status_post(f"n{i}", visibility=("public", "unlisted", "private", "direct")[i % 4])
    texts = [s.content for s in mastodon_server.statuses()]
    assert len(texts) == 45
    assert "n44" in texts[0]  # newest first


def test_reset_wipes_statuses_and_faults(mastodon_server):
    mastodon_server.post_as(mastodon_server.bob, "before")
    mastodon_server.inject_error(500, count=None)
    mastodon_server.inject_late_response(5.0, count=None)
    mastodon_server.reset()
    assert mastodon_server.statuses(mastodon_server.bob) == []
    assert mastodon_server.control("GET", "/faults") == []
    assert mastodon_server.post_as(mastodon_server.bob, "after").id


def test_ignoring_keys_makes_a_retry_a_second_status(mastodon_server):
    client = mastodon_server.client()
    client.status_post("once", idempotency_key="k")
    client.status_post("once", idempotency_key="k")
    assert len(mastodon_server.statuses()) == 1  # the mock honours the key by default
    mastodon_server.ignore_idempotency_keys()
    client.status_post("twice", idempotency_key="k2")
    client.status_post("twice", idempotency_key="k2")
    assert len(mastodon_server.statuses()) == 3


def test_a_stalled_request_is_applied_after_the_client_gave_up(mastodon_server):
    import pytest
    from mastodon import MastodonNetworkError

    from tests.fakes.mastodon_server import make_client

    mastodon_server.inject_stall(1.0)
    client = make_client(mastodon_server, mastodon_server.bot.token, timeout=0.3)
    with pytest.raises(MastodonNetworkError):
        client.status_post("late but there")
    assert mastodon_server.statuses() == []  # not yet: the server is stalled
    mastodon_server.drain()
    [status] = mastodon_server.statuses()
    assert "late but there" in status.content


@pytest.mark.slow
def test_clients_that_time_out_do_not_wedge_the_server(mastodon_server):
    """Ten clients giving up after 10..100 ms for a few seconds, then one patient post.
    mastodon-mock's own pooled engine ran dry here and stalled every request for 30 s at a
    time (the suite's intermittent "hang"); the server this module runs stays available."""
    import random
    import threading

    from tests.fakes.mastodon_server import make_client

    server = mastodon_server
    stop = time.monotonic() + 6

    def impatient(seed: int) -> None:
        rng = random.Random(seed)
        client = make_client(server, server.bot.token, timeout=rng.choice([0.01, 0.03, 0.1]))
        n = 0
        while time.monotonic() < stop:
            n += 1
            with contextlib.suppress(Exception):
                if n % 3 == 0:
                    client.status_post(f"impatient {seed} {n}")
                elif n % 3 == 1:
                    client.account_statuses(server.bot.id, limit=40)
                else:
                    client.notifications()

    threads = [threading.Thread(target=impatient, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    patient = make_client(server, server.bot.token, timeout=20)
    assert patient.status_post("still here").id
    server.reset()  # the control plane answers too
