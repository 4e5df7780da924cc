"""Posts with media: the outbox keeps the files next to its JSONL; Mastodon gets two
attachments with alt text, once, through the real Mastodon.py client against the
loopback server, which processes uploads asynchronously (202, then 206, then ready) as
Mastodon does, also when the upload or the status is retried."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.core.errors import PublishError
from bot.core.post import Media, Post
from bot.publishers.mastodon.client import MastodonPublisher
from bot.publishers.outbox import Outbox

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]

OGG = b"OggS" + bytes(200)  # the server stores bytes; their content is not looked at
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.fixture
def media(tmp_path: Path) -> tuple[Media, Media]:
    audio, image = tmp_path / "tune.ogg", tmp_path / "tune.png"
    audio.write_bytes(OGG)
    image.write_bytes(PNG)
    return (Media(audio, "Audio: the tune \u201cThe Test Reel\u201d on a fiddle.", "audio/ogg"),
            Media(image, "Sheet music of \u201cThe Test Reel\u201d.", "image/png"))  # fmt: skip


def tune_post(media: tuple[Media, ...], key: str = "revenant:tunes:2026-12-02T14:00Z") -> Post:
    return Post(persona="tunes", text="The Test Reel (reel in G)", idempotency_key=key,
                media=media)  # fmt: skip


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def publisher(server: MastodonServer, sleep: Sleeps, timeout: float = 5.0) -> MastodonPublisher:
    return MastodonPublisher(server.base_url, server.bot.token or "", sleep=sleep,
                             request_timeout_seconds=timeout)  # fmt: skip


def attachments(server: MastodonServer) -> list[list[tuple[str, str]]]:
    """Per status of our account: (type, description) of each attachment."""
    return [[(m["type"], m["description"]) for m in s["media_attachments"]]
            for s in server.statuses()]  # fmt: skip


def test_outbox_keeps_the_files_next_to_its_jsonl(
    tmp_path: Path, media: tuple[Media, Media]
) -> None:
    outbox = Outbox(tmp_path / "outbox")
    first = outbox.publish(tune_post(media))
    again = outbox.publish(tune_post(media))  # a retry: nothing new written
    assert first == again
    entry = json.loads((tmp_path / "outbox" / "tunes.jsonl").read_text(encoding="utf-8"))
    assert [m["file"] for m in entry["media"]] == ["tunes.media/tunes-1.1.ogg",
                                                  "tunes.media/tunes-1.2.png"]  # fmt: skip
    assert entry["media"][0]["description"].startswith("Audio: the tune")
    assert (tmp_path / "outbox" / "tunes.media" / "tunes-1.1.ogg").read_bytes() == OGG
    assert (tmp_path / "outbox" / "tunes.media" / "tunes-1.2.png").read_bytes() == PNG
    assert sorted(p.name for p in (tmp_path / "outbox" / "tunes.media").iterdir()) == [
        "tunes-1.1.ogg", "tunes-1.2.png"]  # fmt: skip


def test_two_attachments_with_alt_text_after_processing(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    mastodon_server.process_media(polls=2)
    sleeps = Sleeps()
    receipt = publisher(mastodon_server, sleeps).publish(tune_post(media))
    assert attachments(mastodon_server) == [[("audio", media[0].description),
                                             ("image", media[1].description)]]  # fmt: skip
    assert mastodon_server.statuses()[0]["id"] == receipt.remote_id
    assert mastodon_server.media_uploads == 2
    assert len(sleeps.calls) == 4  # two looks "still processing" per file, then ready


def test_a_retried_status_reuses_its_uploads(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    mastodon_server.process_media(polls=1)
    pub = publisher(mastodon_server, Sleeps())
    mastodon_server.inject_error(503)  # the status, not the uploads
    with pytest.raises(PublishError) as failed:
        pub.publish(tune_post(media))
    assert failed.value.transient
    pub.publish(tune_post(media))
    assert len(attachments(mastodon_server)) == 1
    assert len(attachments(mastodon_server)[0]) == 2
    assert mastodon_server.media_uploads == 2  # not uploaded again


def test_a_post_composed_again_gets_its_own_media_not_the_refused_ones(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    """Refused for length, the slot is composed again: another tune, rendered into the
    same files, under the same key. It goes out with its own sound, score and alt text."""
    pub = publisher(mastodon_server, Sleeps())
    mastodon_server.inject_error(
        422, body={"error": "Validation failed: Text character limit of 500 exceeded"}
    )
    with pytest.raises(PublishError) as refused:
        pub.publish(tune_post(media))
    assert refused.value.too_long
    media[0].path.write_bytes(OGG + b"a jig")
    media[1].path.write_bytes(PNG + b"a jig")
    jig = (Media(media[0].path, "Audio: the tune \u201cThe Second Jig\u201d.", "audio/ogg"),
           Media(media[1].path, "Sheet music of \u201cThe Second Jig\u201d.", "image/png"))  # fmt: skip
    pub.publish(Post(persona="tunes", text="The Second Jig (jig in D)",
                     idempotency_key=tune_post(media).idempotency_key, media=jig))  # fmt: skip
    assert attachments(mastodon_server) == [[("audio", jig[0].description),
                                             ("image", jig[1].description)]]  # fmt: skip
    assert mastodon_server.media_uploads == 4


def test_a_lost_status_answer_does_not_post_twice(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    pub = publisher(mastodon_server, Sleeps(), timeout=0.5)
    mastodon_server.inject_late_response(2.0)  # created, but the answer comes too late
    with pytest.raises(PublishError) as lost:
        pub.publish(tune_post(media))
    assert lost.value.maybe_sent
    mastodon_server.drain()
    pub.publish(tune_post(media))  # the same idempotency key: the server's first status
    assert [len(a) for a in attachments(mastodon_server)] == [2]


def test_a_failed_upload_is_retried_and_attached_once(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    mastodon_server.process_media(polls=1)
    pub = publisher(mastodon_server, Sleeps(), timeout=0.5)
    mastodon_server.inject_late_response(2.0, path="/api/v2/media")  # stored, answer lost
    with pytest.raises(PublishError) as failed:
        pub.publish(tune_post(media))
    assert failed.value.transient and not failed.value.maybe_sent  # no status was sent
    mastodon_server.drain()
    pub.publish(tune_post(media))
    assert attachments(mastodon_server) == [[("audio", media[0].description),
                                             ("image", media[1].description)]]  # fmt: skip


def test_media_that_never_finish_processing_keep_the_slot(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    mastodon_server.process_media(polls=1000)
    pub = MastodonPublisher(mastodon_server.base_url, mastodon_server.bot.token or "",
                            media_wait_seconds=0.0, sleep=Sleeps())  # fmt: skip
    with pytest.raises(PublishError, match="still processing media") as slow:
        pub.publish(tune_post(media))
    assert slow.value.transient and not slow.value.maybe_sent
    assert mastodon_server.statuses() == []


def test_a_file_over_the_instances_limit_is_refused_before_uploading(
    mastodon_server: MastodonServer, media: tuple[Media, Media]
) -> None:
    # A real Mastodon's /api/v2/instance shape, with a small image limit.
    instance = {"domain": "mastodon.example", "configuration": {
        "statuses": {"max_characters": 500},
        "media_attachments": {"image_size_limit": 100, "video_size_limit": 41943040}}}  # fmt: skip
    mastodon_server.inject_error(200, path="/api/v2/instance/", methods=["GET"], body=instance,
                                 count=None)  # fmt: skip
    with pytest.raises(
        PublishError, match=r"takes image files up to 100 bytes; tune.png has 208"
    ) as big:
        publisher(mastodon_server, Sleeps()).publish(tune_post(media))
    assert not big.value.transient  # retrying cannot help
    assert mastodon_server.media_uploads == 0 and mastodon_server.statuses() == []


V1_INSTANCE = {"uri": "other.example", "configuration": {"statuses": {"max_characters": 700}}}


@pytest.mark.parametrize(
    "answers",
    [
        # the server fails every instance page: ours, and the one Mastodon.py reads
        [(503, "/api/v*/instance*", None)],
        # a server that answers only /api/v1/instance: ours reads it, Mastodon.py cannot
        [(404, "/api/v*/instance/", None), (200, "/api/v1/instance", V1_INSTANCE)],
    ],
    ids=["instance_failing", "instance_without_the_slash_only"],
)
def test_a_failing_instance_endpoint_keeps_the_slot_for_media(
    mastodon_server: MastodonServer,
    media: tuple[Media, Media],
    answers: list[tuple[int, str, dict[str, object] | None]],
) -> None:
    """Before an upload Mastodon.py asks the instance for its version; when that fails it
    asks again from inside its own check, until RecursionError. The slot is kept (a
    transient PublishError), nothing is sent, and it posts once the instance answers."""
    for status, path, body in answers:
        mastodon_server.inject_error(status, path=path, methods=["GET"], count=None, body=body)
    pub = publisher(mastodon_server, Sleeps())
    with pytest.raises(PublishError) as failed:
        pub.publish(tune_post(media))
    assert failed.value.transient and not failed.value.maybe_sent
    assert "version" in failed.value.message
    assert mastodon_server.media_uploads == 0 and mastodon_server.statuses() == []
    mastodon_server.clear_faults()
    pub.publish(tune_post(media))
    assert [len(a) for a in attachments(mastodon_server)] == [2]
