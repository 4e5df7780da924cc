"""The XRPC calls the Bluesky client makes, and the SDK's errors read and translated into
PublishErrors. Used by client.py."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atproto import Client
from atproto_client.exceptions import (
    InvokeTimeoutError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
)
from atproto_client.models.dot_dict import DotDict
from atproto_core.exceptions import AtProtocolError

from bot.core.errors import PublishError


def translate_error(
    err: AtProtocolError, action: str, pds_url: str, identifier: str, password_env: str,
    *, write: bool,
) -> PublishError:  # fmt: skip
    """One SDK error -> one PublishError: transient (kept for the next wake) or not, and
    whether a write may have reached the server (maybe_sent)."""
    where = urlsplit(pds_url).netloc or pds_url
    if isinstance(err, InvokeTimeoutError):
        return PublishError(f"Bluesky timed out ({action}, {where})",
                            "kept for the next wake", transient=True,
                            maybe_sent=write)  # fmt: skip
    response = err.response if isinstance(err, RequestErrorBase) else None
    if response is None:
        return PublishError(
            f"cannot reach Bluesky at {where} ({action}: {type(err).__name__})",
            "check the network and bluesky.pds_url; kept for the next wake",
            transient=True,
            maybe_sent=write,
        )
    status = response.status_code
    detail = _detail(err)
    if isinstance(err, RateLimitExceededError) or status == 429:
        retry = err.retry_after if isinstance(err, RateLimitExceededError) else None
        reset = err.reset_at if isinstance(err, RateLimitExceededError) else None
        if retry is None and reset is not None:
            retry = max(0.0, (reset - datetime.now(UTC)).total_seconds())
        return PublishError(f"Bluesky rate limit ({action}): {detail}",
                            "waiting for the reset", transient=True, status_code=429,
                            retry_after=retry)  # fmt: skip
    if status in (401, 403):
        return PublishError(
            f"Bluesky refused to {action} for {identifier}: {detail}",
            f"check {password_env} (an app password) and the handle",
            status_code=status,
        )
    if status >= 500 or isinstance(err, NetworkError):
        return PublishError(f"Bluesky server error {status} ({action}): {detail}",
                            "kept for the next wake", transient=True, status_code=status,
                            maybe_sent=write)  # fmt: skip
    if _error_name(err) == "NotFound":  # a post that is gone, as Mastodon's 404
        status = 404
    return PublishError(f"Bluesky refused to {action}: {detail}",
                        "see the server's message", status_code=status)  # fmt: skip


def _query(client: Client, nsid: str, params: dict[str, Any]) -> Any:
    response = client.invoke_query(nsid, params=DotDict(params))
    return response.content


def _procedure(client: Client, nsid: str, body: dict[str, Any]) -> Any:
    response = client.invoke_procedure(
        nsid, content=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return response.content if response.content else {}


def _upload(client: Client, data: bytes, mime: str) -> Any:
    response = client.invoke_procedure(
        "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime}
    )
    return response.content


def _typed_facets(facets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The SDK's facet models as lexicon JSON: `$type` on each feature."""
    out = []
    for facet in facets:
        features = []
        for feature in facet.get("features") or ():
            feature = dict(feature)
            kind = feature.pop("py_type", None) or feature.get("$type")
            if kind:
                feature["$type"] = kind
            features.append(feature)
        out.append({"index": facet["index"], "features": features})
    return out


def _error_name(err: AtProtocolError) -> str:
    response = err.response if isinstance(err, RequestErrorBase) else None
    content = getattr(response, "content", None)
    name = getattr(content, "error", None)
    if name is None and isinstance(content, dict):
        name = content.get("error")
    return str(name or "")


def _detail(err: AtProtocolError) -> str:
    response = err.response if isinstance(err, RequestErrorBase) else None
    content = getattr(response, "content", None)
    name = getattr(content, "error", None)
    message = getattr(content, "message", None)
    if isinstance(content, dict):
        name, message = content.get("error"), content.get("message")
    parts = [str(p) for p in (name, message) if p]
    return ": ".join(parts) or str(getattr(response, "status_code", "")) or type(err).__name__


def _is_length_refusal(message: str) -> bool:
    return bool(re.search(r"grapheme|too long|must not be longer", message, re.IGNORECASE))


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner alone, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def _uploader(data: bytes, mime: str) -> Callable[[Client], Any]:
    return lambda client: _upload(client, data, mime)
