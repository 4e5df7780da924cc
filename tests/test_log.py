"""Logging: key=value and JSON lines, and a Secret's value never reaches a log or an error."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.commands.app import BotGroup
from bot.commands.cli import cli
from bot.config import load_config
from bot.core.errors import ConfigError
from bot.core.log import event, format_value, register_secret, setup_logging
from bot.publishers.mastodon.kind import resolve_token

TOKEN = "Tk9xLm2Qw8Er4Ty6Ui0Op3As5Df7Gh1Jk2Lz4Xc6Vb8"
log = logging.getLogger("bot.test")


@pytest.fixture
def capture() -> Iterator[Callable[..., io.StringIO]]:
    handlers: list[logging.Handler] = []

    def start(*, json_lines: bool = False) -> io.StringIO:
        stream = io.StringIO()
        handlers.append(setup_logging(logging.DEBUG, json_lines=json_lines, stream=stream))
        return stream

    yield start
    for handler in handlers:
        logging.getLogger().removeHandler(handler)


def test_event_is_one_key_value_line(capture: Callable[..., io.StringIO]) -> None:
    out = capture()
    event(
        log,
        "posted",
        persona="ada",
        slot="2025-01-01T10:00Z",
        text="Man is a rope",
        ok=True,
        url=None,
    )
    [line] = out.getvalue().splitlines()
    assert line.startswith("ts=")
    assert line.endswith(
        " level=info logger=bot.test event=posted persona=ada slot=2025-01-01T10:00Z "
        'text="Man is a rope" ok=true url=null'
    )


def test_plain_messages_and_quoting(capture: Callable[..., io.StringIO]) -> None:
    out = capture()
    log.warning("slot %s skipped", "k1")
    assert out.getvalue().rstrip().endswith('level=warning logger=bot.test msg="slot k1 skipped"')
    assert format_value('say "hi"\nthere') == '"say \\"hi\\"\\nthere"'
    assert format_value("a=b") == '"a=b"'
    assert format_value("") == '""'


def test_json_lines(capture: Callable[..., io.StringIO]) -> None:
    out = capture(json_lines=True)
    event(log, "rejected", persona="ada", reasons={"too_short": 3}, n=3)
    data = json.loads(out.getvalue())
    assert data["event"] == "rejected" and data["n"] == 3
    assert data["reasons"] == {"too_short": 3}
    assert data["level"] == "info" and data["logger"] == "bot.test"


def test_registered_secret_is_masked_everywhere(capture: Callable[..., io.StringIO]) -> None:
    register_secret(TOKEN)
    for as_json in (False, True):
        out = capture(json_lines=as_json)
        event(log, "connect", token=TOKEN, header=f"Bearer {TOKEN}")
        log.info("Authorization: Bearer %s", TOKEN)
        try:
            raise RuntimeError(f"request failed with token {TOKEN}")
        except RuntimeError:
            log.exception("publish failed")
        text = out.getvalue()
        assert TOKEN not in text
        assert "***" in text and "publish failed" in text


def test_token_resolved_from_config_never_logged(
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
    capture: Callable[..., io.StringIO],
) -> None:
    make_persona("ada")
    write_config(
        "personas: {ada: {publisher: mastodon, mastodon: {base_url: 'https://x.example'}}}"
    )
    secret = resolve_token(load_config().persona("ada"), env={"MASTODON_ACCESS_TOKEN": TOKEN})
    out = capture()
    log.debug("client %r token %s", secret, secret.reveal())
    assert TOKEN not in out.getvalue()
    assert "Secret(***)" in out.getvalue()


def test_secret_never_in_cli_error_output() -> None:
    register_secret(TOKEN)

    @click.group(cls=BotGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise ConfigError(f"instance refused token {TOKEN}", "make a new token")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 1
    assert result.stderr == "Error: instance refused token *** (make a new token)\n"


def test_bot_check_with_token_does_not_print_it(
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_persona("ada")
    write_config(
        "personas: {ada: {publisher: mastodon, mastodon: {base_url: 'https://x.example'}}}"
    )
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    result = CliRunner().invoke(cli, ["-v", "--log-json", "check"])
    assert result.exit_code == 0, result.output
    assert "token from $MASTODON_ACCESS_TOKEN" in result.output
    assert TOKEN not in result.output


def test_http_client_request_lines_show_only_with_debug() -> None:
    """The Bluesky SDK's httpx logs each request at INFO; a daemon's log stays one line per
    event unless -v asks for the detail."""
    from bot.core.log import setup_logging

    setup_logging("INFO", stream=io.StringIO())
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    setup_logging("DEBUG", stream=io.StringIO())
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
    setup_logging("INFO", stream=io.StringIO())
