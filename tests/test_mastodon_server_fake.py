"""The loopback Mastodon fixture does what its docstring promises (other tests rely on it)."""

from __future__ import annotations

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
