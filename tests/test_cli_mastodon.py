"""`bot check --online` and `bot setup` through the CLI against the loopback Mastodon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli

pytest_plugins = ["tests.fakes.mastodon_server"]

TINY = Path(__file__).parent / "data" / "tiny_persona"


@pytest.fixture
def online_config(
    write_config: Callable[[str], Path], mastodon_server, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("REVENANT_TEST_TOKEN", mastodon_server.bot.token)
    return write_config(
        f"""
        personas:
          ada:
            model: {TINY}
            publisher: mastodon
            mastodon:
              base_url: {mastodon_server.base_url}
              access_token_env: REVENANT_TEST_TOKEN
        """
    )


@pytest.mark.usefixtures("online_config")
def test_check_online_then_setup_flags_the_account(mastodon_server) -> None:
    runner = CliRunner()
    before = runner.invoke(cli, ["check", "--online"])
    assert before.exit_code == 0, before.output
    assert "account: revenant" in before.output
    assert "NOT flagged as a bot" in before.output
    assert "instance limit: 500 characters" in before.output
    assert mastodon_server.bot.token not in before.output

    setup = runner.invoke(cli, ["setup", "--note", "Generated text. A bot."])
    assert setup.exit_code == 0, setup.output
    assert "flagged as a bot, note set" in setup.output

    after = runner.invoke(cli, ["check", "--online"])
    assert "flagged as a bot" in after.output and "NOT" not in after.output


@pytest.mark.usefixtures("online_config")
def test_check_online_with_a_bad_token_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVENANT_TEST_TOKEN", "not-a-real-token-0123456789")
    result = CliRunner().invoke(cli, ["check", "--online"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "REVENANT_TEST_TOKEN" in result.stderr
    assert "not-a-real-token" not in result.stderr
