"""`bot check --online` and `bot setup` through the CLI against the loopback Mastodon."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli

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


@pytest.fixture
def unreachable_config(
    write_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """ada posts to a Mastodon on a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REVENANT_TEST_TOKEN", "a-token-for-nowhere-0123456789")
    return write_config(
        f"""
        personas:
          ada:
            model: {TINY}
            publisher: mastodon
            mastodon:
              base_url: http://127.0.0.1:{port}
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
    assert "flagged as a bot (read back), note set" in setup.output

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


@pytest.mark.usefixtures("online_config")
def test_setup_reads_the_flag_back_and_says_when_the_server_ignored_it(mastodon_server) -> None:
    # The server answers 200 with bot=true but changes nothing (it ignores the field).
    me = mastodon_server.client().account_verify_credentials()
    mastodon_server.inject_error(
        200, path="/api/v1/accounts/update_credentials", methods=["PATCH"],
        body={**{k: v for k, v in me.items() if k != "created_at"}, "bot": True},
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["setup"])
    assert result.exit_code == 1
    assert "revenant is still NOT flagged as a bot" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.usefixtures("online_config")
def test_post_failure_does_not_promise_a_retry(mastodon_server) -> None:
    mastodon_server.inject_rate_limit(reset_in_seconds=600)
    result = CliRunner().invoke(cli, ["post", "--yes", "--seed", "1"])
    assert result.exit_code == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "ada: not posted" in error and "rate-limited" in error
    assert "nothing retries a manual post" in error
    assert "ada: not posted" in result.stderr and "rate-limited" in result.stderr
    assert "nothing retries a manual post" in result.stderr
    assert "kept and retried" not in result.stderr


@pytest.mark.usefixtures("online_config")
def test_post_refused_with_takahes_400_for_length_is_composed_again(mastodon_server) -> None:
    """Takahē answers an over-length status 400 "Status is too long": the limit is learnt
    and the post composed again under it, not given up."""
    mastodon_server.inject_error(400, body={"error": "Status is too long"})
    result = CliRunner().invoke(cli, ["post", "--yes", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "ada: posted to mastodon" in result.output
    assert "event=length_limit_learnt" in result.stderr
    assert len(mastodon_server.statuses()) == 1


@pytest.mark.usefixtures("unreachable_config")
def test_check_online_against_an_unreachable_server_speaks_of_no_slot() -> None:
    result = CliRunner().invoke(cli, ["check", "--online"])
    assert result.exit_code == 1
    [error] = result.stderr.splitlines()
    assert error.startswith("Error: could not reach 127.0.0.1:") and "connection refused" in error
    assert "slot" not in error and "idempotency" not in error  # `check` sends no post
    assert "base_url" in error  # what to look at


@pytest.mark.usefixtures("unreachable_config")
def test_post_against_an_unreachable_server_is_one_error_not_a_wall_of_warnings() -> None:
    result = CliRunner().invoke(cli, ["post", "--yes", "--seed", "1"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    [error] = [line for line in lines if line.startswith("Error:")]
    assert "ada: not posted" in error and "connection refused" in error
    warnings = [line for line in lines if "level=warning" in line]
    assert len(warnings) <= 1, "\n".join(warnings)
