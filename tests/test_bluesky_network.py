"""tests/fakes/bluesky.py is the real thing: the AT Protocol team's PLC + PDS + AppView on
127.0.0.1, driven through the Python `atproto` SDK over real HTTP. Also pins down what the
PDS answers to the create-only write the Bluesky publisher relies on (putRecord with
swapRecord: null) and how sessions behave."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.fakes.bluesky import Account, BlueskyNetwork

pytest.importorskip("atproto", reason="the atproto SDK is not installed (pip install atproto)")
from atproto import Client, client_utils, models
from atproto_client.exceptions import AtProtocolError, BadRequestError
from atproto_client.models.dot_dict import DotDict

pytest_plugins = ["tests.fakes.bluesky"]
pytestmark = pytest.mark.bluesky

POST = "app.bsky.feed.post"
_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"


def tid() -> str:
    """A record key in the `tid` format posts use (13 chars, base32-sortable, time-based)."""
    n = ((time.time_ns() // 1000) << 10) | 7
    return "".join(_TID_CHARS[(n >> (5 * i)) & 31] for i in reversed(range(13)))


def jwt_claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def login(net: BlueskyNetwork, account: Account) -> Client:
    """The bot's way in: an app password, the client pointed at the PDS. login() reads the
    profile from the AppView; create_account has it indexed already, but retry anyway."""
    password = net.app_password(account)

    def attempt() -> Client:
        client = Client(base_url=net.pds_url)
        client.login(account.handle, password)
        return client

    return net.wait_for(attempt, timeout=15, retry_on=(AtProtocolError,))


def test_servers_listen_on_loopback_only(bsky_network: BlueskyNetwork) -> None:
    addresses = bsky_network.listening_addresses()
    ports = {port for _, port in addresses}
    for url in (bsky_network.pds_url, bsky_network.appview_url, bsky_network.plc_url):
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) in ports
    assert len(addresses) >= 4  # PLC, PDS, AppView, control (and bsync, dataplane, Ozone)
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses


def test_app_password_login_post_and_the_appview_sees_it(bsky_network: BlueskyNetwork) -> None:
    alice = bsky_network.create_account("alice")
    assert alice.handle.endswith(".test") and alice.did.startswith("did:plc:")
    client = login(bsky_network, alice)
    assert client.me is not None and client.me.did == alice.did

    post = client.send_post("the first words of a revenant")
    bsky_network.process_all()

    appview = Client(base_url=bsky_network.appview_url)  # the AppView itself, no login
    feed = appview.app.bsky.feed.get_author_feed({"actor": alice.did}).feed
    assert [(item.post.uri, item.post.record.text) for item in feed] == [
        (post.uri, "the first words of a revenant")
    ]
    # and the PDS proxies the same read to the AppView for a logged-in client
    via_pds = client.get_author_feed(alice.handle).feed
    assert [item.post.cid for item in via_pds] == [post.cid]


def test_mention_and_reply_notifications(bsky_network: BlueskyNetwork) -> None:
    alice = bsky_network.create_account("alice")
    bob = bsky_network.create_account("bob")
    alice_client, bob_client = login(bsky_network, alice), login(bsky_network, bob)
    original = alice_client.send_post("anyone there?")
    mention = bob_client.send_post(
        client_utils.TextBuilder().text("hello ").mention(f"@{alice.handle}", alice.did)
    )
    ref = models.create_strong_ref(original)
    reply = bob_client.send_post(
        "a reply", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref)
    )

    def notifications() -> list[Any]:
        found = alice_client.app.bsky.notification.list_notifications().notifications
        return found if len(found) >= 2 else []

    found = bsky_network.wait_for(notifications)
    assert {(n.reason, n.uri, n.author.did) for n in found} == {
        ("mention", mention.uri, bob.did),
        ("reply", reply.uri, bob.did),
    }
    by_reason = {n.reason: n for n in found}
    assert by_reason["reply"].reason_subject == original.uri
    assert by_reason["mention"].reason_subject is None
    assert by_reason["mention"].record.facets[0].features[0].did == alice.did
    assert by_reason["reply"].record.reply.parent.uri == original.uri

    # the same over plain XRPC with the account's own token (what the JSON looks like)
    raw = bsky_network.call("app.bsky.notification.listNotifications", token=alice.access_jwt)
    assert {n["reason"] for n in raw["notifications"]} == {"mention", "reply"}
    assert {"uri", "cid", "author", "reason", "record", "isRead", "indexedAt"} <= set(
        raw["notifications"][0]
    )


def put_record(
    net: BlueskyNetwork, account: Account, rkey: str, record: dict[str, Any], **extra: Any
) -> Any:
    return net.xrpc(
        "com.atproto.repo.putRecord",
        token=account.access_jwt,
        body={"repo": account.did, "collection": POST, "rkey": rkey, "record": record, **extra},
    )


def head(net: BlueskyNetwork, account: Account) -> Any:
    return net.call("com.atproto.sync.getLatestCommit", params={"did": account.did})


def test_put_record_with_swap_record_null_creates_only(bsky_network: BlueskyNetwork) -> None:
    """putRecord with `"swapRecord": null` (sent as JSON null: the SDK's typed put_record
    drops a None field) writes the record only if the key is free. What the PDS answers:

        create                 200 {uri, cid, commit: {cid, rev}, validationStatus: "valid"}
        identical retry        200 {uri, cid (the same), validationStatus}: NO `commit`,
                               the repository's head (getLatestCommit) unchanged
        different content      400 {"error": "InvalidSwap", "message": "Record was at <cid>"}
        (control: no swapRecord at all overwrites: 200 with a new cid and commit)
    """
    alice = bsky_network.create_account("alice")
    rkey = tid()
    record = {"$type": POST, "text": "once only", "createdAt": "2026-01-01T00:00:00.000Z"}

    created = put_record(bsky_network, alice, rkey, record, swapRecord=None)
    assert created.status == 200, created.body
    assert created.body["uri"] == f"at://{alice.did}/{POST}/{rkey}"
    assert set(created.body) == {"uri", "cid", "commit", "validationStatus"}
    assert created.body["validationStatus"] == "valid"
    after_create = head(bsky_network, alice)
    assert created.body["commit"] == after_create  # {"cid": ..., "rev": ...}

    retried = put_record(bsky_network, alice, rkey, record, swapRecord=None)
    assert retried.status == 200, retried.body
    assert retried.body["uri"] == created.body["uri"]
    assert retried.body["cid"] == created.body["cid"]
    assert "commit" not in retried.body  # a no-op: nothing written
    assert head(bsky_network, alice) == after_create

    changed = put_record(bsky_network, alice, rkey, {**record, "text": "twice"}, swapRecord=None)
    assert changed.status == 400
    assert changed.body == {
        "error": "InvalidSwap",
        "message": f"Record was at {created.body['cid']}",
    }
    assert head(bsky_network, alice) == after_create
    stored = bsky_network.call(
        "com.atproto.repo.getRecord", params={"repo": alice.did, "collection": POST, "rkey": rkey}
    )
    assert stored["value"]["text"] == "once only" and stored["cid"] == created.body["cid"]

    # the control: without swapRecord, putRecord overwrites (so the null above did arrive)
    overwritten = put_record(bsky_network, alice, rkey, {**record, "text": "twice"})
    assert overwritten.status == 200
    assert overwritten.body["cid"] != created.body["cid"] and "commit" in overwritten.body


def test_put_record_swap_record_null_through_the_sdk(bsky_network: BlueskyNetwork) -> None:
    """The SDK way to send the null: invoke_procedure with a DotDict (its typed put_record
    drops None fields, which would turn create-only into overwrite)."""
    alice = bsky_network.create_account("alice")
    client = login(bsky_network, alice)
    rkey = tid()
    record = {"$type": POST, "text": "sdk once", "createdAt": "2026-01-01T00:00:00.000Z"}

    def put(text: str) -> Any:
        return client.invoke_procedure(
            "com.atproto.repo.putRecord",
            data=DotDict(
                {
                    "repo": alice.did,
                    "collection": POST,
                    "rkey": rkey,
                    "record": {**record, "text": text},
                    "swapRecord": None,
                }
            ),
            input_encoding="application/json",
            output_encoding="application/json",
        )

    first, again = put("sdk once"), put("sdk once")
    assert first.status_code == again.status_code == 200
    assert first.content["cid"] == again.content["cid"]
    assert "commit" in first.content and "commit" not in again.content
    with pytest.raises(BadRequestError) as refused:
        put("sdk twice")
    assert refused.value.response.status_code == 400
    assert refused.value.response.content.error == "InvalidSwap"


def test_sessions_and_refresh(bsky_network: BlueskyNetwork) -> None:
    """What the bot's login sees: an app-password session is scoped com.atproto.appPass, its
    access token lives 2 h, its refresh token 90 days; refreshSession (an empty POST with the
    refresh token) rotates the refresh token and is idempotent for a retry with the old one
    (the PDS's grace period); a wrong password is 401 AuthenticationRequired."""
    alice = bsky_network.create_account("alice")
    password = bsky_network.app_password(alice)
    session = bsky_network.call(
        "com.atproto.server.createSession", body={"identifier": alice.handle, "password": password}
    )
    assert session["did"] == alice.did and session["active"] is True
    access, refresh = jwt_claims(session["accessJwt"]), jwt_claims(session["refreshJwt"])
    assert access["scope"] == "com.atproto.appPass"
    assert access["exp"] - access["iat"] == 2 * 3600
    assert refresh["scope"] == "com.atproto.refresh"
    assert refresh["exp"] - refresh["iat"] == 90 * 24 * 3600

    # an app-password session may not mint app passwords
    minted = bsky_network.xrpc(
        "com.atproto.server.createAppPassword", body={"name": "x"}, token=session["accessJwt"]
    )
    assert (minted.status, minted.error) == (400, "InvalidToken")

    renewed = bsky_network.xrpc(
        "com.atproto.server.refreshSession", procedure=True, token=session["refreshJwt"]
    )
    assert renewed.status == 200, renewed.body
    assert renewed.body["refreshJwt"] != session["refreshJwt"]  # a new jti
    # (the access token is HS256 over {scope, aud, sub, iat, exp}: within the same second
    # the "new" one is byte-identical to the old)
    reused = bsky_network.xrpc(
        "com.atproto.server.refreshSession", procedure=True, token=session["refreshJwt"]
    )
    # the old refresh token, used again soon after: the PDS's grace period answers with the
    # same rotation as before, not an error (a retried refresh after a lost reply is safe)
    assert reused.status == 200, reused.body
    new_jti = jwt_claims(renewed.body["refreshJwt"])["jti"]
    assert jwt_claims(reused.body["refreshJwt"])["jti"] == new_jti  # the same next token id
    assert new_jti != refresh["jti"]  # (its iat/exp are re-stamped: the bytes may differ)
    assert jwt_claims(renewed.body["accessJwt"])["scope"] == "com.atproto.appPass"

    wrong = bsky_network.xrpc(
        "com.atproto.server.createSession", body={"identifier": alice.handle, "password": "no"}
    )
    assert (wrong.status, wrong.error) == (401, "AuthenticationRequired")
