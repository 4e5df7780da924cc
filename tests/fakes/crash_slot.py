"""Run one slot the way the daemon does, and optionally die at the worst moment.

    python -m tests.fakes.crash_slot BASE_URL RECORD.json SLOT_KEY [--crash-after-publish]

The slot's life, recorded in a tiny JSON file (a stand-in for bot/store.py until the
integration moves this onto the real store): claim the slot (state "claimed", with its
idempotency key), publish, record the receipt (state "posted"). With
`--crash-after-publish` the process calls `os._exit(17)` after the server accepted the
post and before the receipt is recorded: no cleanup, no flush, like a kill -9 or a
power cut. A re-run finds the slot claimed but unposted and publishes again with the
stored key, so the server hands back the status it already created.

The token comes from MASTODON_ACCESS_TOKEN, as in production.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bot.core.post import Post
from bot.posting.delivery import publish_with_retries
from bot.publishers.mastodon.client import MastodonPublisher

CRASH_EXIT_CODE = 17


def _load(path: Path) -> dict[str, dict[str, str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, record: dict[str, dict[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)  # atomic: a crash leaves the old file or the new one


def main(argv: list[str]) -> int:
    base_url, record_path, slot_key = argv[0], Path(argv[1]), argv[2]
    crash = "--crash-after-publish" in argv[3:]
    record = _load(record_path)
    slot = record.get(slot_key)
    if slot is not None and slot["state"] == "posted":
        return 0  # done before: never publish a slot twice
    if slot is None:  # claim first, so the key is durable before anything is sent
        slot = {"state": "claimed", "idempotency_key": f"ada:{slot_key}"}
        record[slot_key] = slot
        _save(record_path, record)

    publisher = MastodonPublisher(
        base_url, os.environ["MASTODON_ACCESS_TOKEN"], request_timeout_seconds=5
    )
    post = Post(
        persona="ada", text=f"a thought for {slot_key}", idempotency_key=slot["idempotency_key"]
    )
    receipt = publish_with_retries(publisher, post, sleep=lambda _s: None)
    if crash:
        os._exit(CRASH_EXIT_CODE)  # the server has the post; the record does not

    slot.update(state="posted", remote_id=receipt.remote_id, url=receipt.url or "")
    _save(record_path, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
