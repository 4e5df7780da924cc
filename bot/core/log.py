"""Logging: one line per event, `key=value` for people, JSON lines for machines.

    event(log, "posted", persona="ada", slot="2025-01-01T10:00Z", url=receipt.url)
    -> ts=2025-01-01T10:00:03Z level=info logger=bot.posting.persona event=posted persona=ada ...

`setup_logging()` is called once by `cli.py`; library modules only do
`log = logging.getLogger(__name__)` and call `event()`. Every secret the config resolves
is registered here (`register_secret`), and a filter on our handler replaces it with `***`
in messages and tracebacks, so a token never reaches a log line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

MASK = "***"
_MIN_SECRET_CHARS = 4  # masking "ab" everywhere would mangle every line and protect nothing

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """From now on, `value` is masked in every log line and every CLI error."""
    if len(value) >= _MIN_SECRET_CHARS:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first)."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def format_value(value: Any) -> str:
    """One logfmt value: bare when safe, JSON-quoted when it has spaces, quotes or `=`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value)
    if text == "" or any(ch.isspace() or ch in '"=\\' for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_fields(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in fields.items())


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event as `event=NAME k=v ...`; JSON output keeps the fields as fields."""
    if logger.isEnabledFor(level):
        payload = {"event": name, **fields}
        logger.log(level, "%s", format_fields(payload), extra={"revenant_fields": payload})


class RedactFilter(logging.Filter):
    """Masks registered secrets in the message, its arguments and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        fields = getattr(record, "revenant_fields", None)
        if isinstance(fields, dict):
            record.revenant_fields = {k: _redact_any(v) for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_any(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=... logger=... event=...`; plain messages become `msg="..."`."""

    def format(self, record: logging.LogRecord) -> str:
        head = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "revenant_fields", None)
        if isinstance(fields, dict):
            line = f"{format_fields(head)} {format_fields(fields)}"
        else:
            line = format_fields({**head, "msg": record.getMessage()})
        if record.exc_text:  # tracebacks stay readable: indented lines after the event
            line += "\n" + "\n".join("  " + part for part in record.exc_text.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, then the event's fields (or msg)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "revenant_fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        else:
            data["msg"] = record.getMessage()
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (CliRunner and pytest swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_handler: logging.Handler | None = None


def setup_logging(
    level: int | str = logging.INFO, *, json_lines: bool = False, stream: IO[str] | None = None
) -> logging.Handler:
    """Route the root logger to one stderr handler (replacing ours from an earlier call)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # The HTTP clients under the Bluesky SDK log every request at INFO: a line per post,
    # notification page or scraped page. Shown with DEBUG (-v) only.
    quiet = logging.WARNING if root.getEffectiveLevel() > logging.DEBUG else logging.NOTSET
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
    _handler = handler
    return handler
