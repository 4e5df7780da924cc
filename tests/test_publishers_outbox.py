"""The outbox publisher: JSONL format, receipts, idempotency (also across processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.errors import PublishError
from bot.core.post import Post, Publisher
from bot.publishers.outbox import Outbox

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox", now=lambda: datetime(2025, 1, 1, 10, 0, 3, tzinfo=UTC))


def test_round_trip(outbox: Outbox) -> None:
    post = Post(
        persona="ada",
        text="Man is a rope.",
        idempotency_key="ada:2025-01-01T10:00Z",
        spoiler_text="bot",
        language="en",
    )
    receipt = outbox.publish(post)
    path = outbox.directory / "ada.jsonl"
    assert receipt.publisher == "outbox"
    assert receipt.remote_id == "ada-1"
    assert receipt.url == f"{path.resolve().as_uri()}#ada-1"
    [line] = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {
        "id": "ada-1",
        "text": "Man is a rope.",
        "idempotency_key": "ada:2025-01-01T10:00Z",
        "visibility": "unlisted",
        "spoiler_text": "bot",
        "language": "en",
        "sensitive": False,
        "in_reply_to_id": None,
        "created_at_utc": "2025-01-01T10:00:03Z",
    }
    assert outbox.read("ada") == [json.loads(line)]
    assert outbox.read("nobody") == []


def test_idempotent(outbox: Outbox) -> None:
    first = outbox.publish(Post(persona="ada", text="one", idempotency_key="k1"))
    again = outbox.publish(Post(persona="ada", text="one, retried", idempotency_key="k1"))
    second = outbox.publish(Post(persona="ada", text="two", idempotency_key="k2"))
    assert again == first
    assert second.remote_id == "ada-2"
    assert [e["text"] for e in outbox.read("ada")] == ["one", "two"]


def test_torn_last_line_is_skipped(outbox: Outbox) -> None:
    outbox.publish(Post(persona="ada", text="one", idempotency_key="k1"))
    path = outbox.directory / "ada.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "ada-2", "text": "cut off by a cra')  # a crash mid-write
    outbox.publish(Post(persona="ada", text="two", idempotency_key="k2"))
    assert [e["text"] for e in outbox.read("ada")] == ["one", "two"]


def test_is_a_publisher(outbox: Outbox) -> None:
    publisher: Publisher = outbox
    assert publisher.name == "outbox"
    assert publisher.max_chars() == 500


def test_unwritable_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the folder should be")
    with pytest.raises(PublishError) as info:
        Outbox(tmp_path / "blocked").publish(Post(persona="ada", text="x", idempotency_key="k"))
    assert "\n" not in str(info.value)
    assert info.value.transient is False


def test_persona_name_cannot_escape(outbox: Outbox) -> None:
    with pytest.raises(PublishError):
        outbox.publish(Post(persona="../etc", text="x", idempotency_key="k"))


PUBLISH_SCRIPT = """
import sys
from bot.core.post import Post
from bot.publishers.outbox import Outbox
receipt = Outbox(sys.argv[1]).publish(Post(persona="ada", text="hi", idempotency_key="slot-1"))
sys.stdout.write(receipt.remote_id)
"""


def test_idempotent_across_processes(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISH_SCRIPT, str(tmp_path / "outbox")],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs.append(out)
    assert outs == ["ada-1"] * 3
    assert len(Outbox(tmp_path / "outbox").read("ada")) == 1
