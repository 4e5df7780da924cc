"""`bot check --online` and `bot setup` as library calls (issue 6, point 4), against
mastodon-mock over loopback through the real Mastodon.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot import config as cfg
from bot.core.errors import BotError, ConfigError, PublishError
from bot.publishers.mastodon.client import SCOPES_TEXT, TOKEN_SCOPES
from bot.publishers.mastodon.kind import (
    MastodonSettings,
    missing_scopes,
    online_check,
    setup_account,
)

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]


def make_config(base_url: str | None, token_env: str = "MASTODON_ACCESS_TOKEN") -> cfg.Config:
    persona = cfg.PersonaSettings(
        name="ada",
        model=Path("models/ada"),
        publisher="mastodon" if base_url else "outbox",
        publisher_settings={
            "mastodon": MastodonSettings(base_url=base_url, access_token_env=token_env)
        },
    )
    return cfg.Config(
        path=Path("config.yaml"),
        home=Path("var"),
        store=Path("var/revenant.db"),
        outbox=Path("var/outbox"),
        personas={"ada": persona},
    )


def test_online_check_shows_account_bot_flag_and_limit(
    mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", mastodon_server.bot.token or "")
    config = make_config(mastodon_server.base_url)
    facts = online_check(config, config.persona("ada"))
    assert facts["acct"] == "revenant"
    assert facts["bot"] is False  # not set up yet
    assert facts["instance_limit"] == 500
    assert facts["token_env"] == "MASTODON_ACCESS_TOKEN"
    assert facts["instance"] == mastodon_server.base_url
    # mastodon-mock does not show app scopes; then they are reported unknown, not missing
    assert facts["scopes"] is None and facts["missing_scopes"] is None


def test_setup_marks_the_account_as_a_bot_with_a_note(
    mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", mastodon_server.bot.token or "")
    config = make_config(mastodon_server.base_url)
    persona = config.persona("ada")
    info = setup_account(config, persona, note="Generated text. Not a real person.")
    assert info.bot is True and info.acct == "revenant"
    me = mastodon_server.client().account_verify_credentials()
    assert me["bot"] is True
    assert "Not a real person." in me["note"]
    assert online_check(config, persona)["bot"] is True
    setup_account(config, persona)  # no note: the note is kept
    assert "Not a real person." in mastodon_server.client().account_verify_credentials()["note"]


def test_bad_token_is_one_line_naming_the_variable(
    mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADA_TOKEN", "definitely-not-a-token")
    config = make_config(mastodon_server.base_url, token_env="ADA_TOKEN")
    with pytest.raises(PublishError) as caught:
        online_check(config, config.persona("ada"))
    line = str(caught.value)
    assert "\n" not in line
    assert "ADA_TOKEN" in line and "401" in line
    assert "definitely-not-a-token" not in line


def test_missing_token_names_the_variable(mastodon_server: MastodonServer) -> None:
    config = make_config(mastodon_server.base_url)
    with pytest.raises(ConfigError, match="MASTODON_ACCESS_TOKEN"):
        online_check(config, config.persona("ada"))


def test_unreachable_instance_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "x" * 43)
    config = make_config("http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(BotError) as caught:
        online_check(config, config.persona("ada"))
    assert "\n" not in str(caught.value) and "could not reach" in str(caught.value)


def test_persona_without_an_account_is_a_config_error() -> None:
    config = make_config(None)
    with pytest.raises(ConfigError, match="no Mastodon account"):
        online_check(config, config.persona("ada"))


def test_setup_without_write_accounts_names_the_scope(
    mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", mastodon_server.bot.token or "")
    mastodon_server.inject_error(
        403,
        path="/api/v1/accounts/update_credentials",
        methods=["PATCH"],
        body={"error": "This action is outside the authorized scopes"},
    )
    config = make_config(mastodon_server.base_url)
    with pytest.raises(PublishError, match="write:accounts") as err:
        setup_account(config, config.persona("ada"), note="hi")
    assert f"the scopes {SCOPES_TEXT}," in err.value.hint  # the README's one list (#21)


@pytest.mark.parametrize(
    "granted, missing",
    [
        (["read", "write"], []),
        (["read:notifications", "read:accounts", "write:statuses"], []),
        (["read", "write:media"], ["write:statuses"]),
        ([], ["write:statuses", "read:notifications", "read:accounts"]),
    ],
)
def test_missing_scopes(granted: list[str], missing: list[str]) -> None:
    needed = ("write:statuses", "read:notifications", "read:accounts")
    assert missing_scopes(granted, needed) == missing


def test_scopes_are_read_when_the_server_shows_them(
    mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shape of Mastodon 4.3+'s Application entity (mastodon-mock has no app here).
    app = {"id": "1", "name": "revenant", "website": None, "redirect_uris": ["urn:x"],
           "scopes": ["read:notifications", "read:accounts", "write:statuses"]}  # fmt: skip
    mastodon_server.inject_error(
        200, path="/api/v1/apps/verify_credentials", methods=["GET"], body=app, count=2
    )
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", mastodon_server.bot.token or "")
    config = make_config(mastodon_server.base_url)
    persona = config.persona("ada")
    facts = online_check(config, persona)
    assert facts["scopes"] == ["read:notifications", "read:accounts", "write:statuses"]
    # One list for every feature (#21): reconciling a lost send reads the account's statuses
    # and `bot setup` writes the account, so those are asked for with replies off too.
    assert facts["missing_scopes"] == ["read:statuses", "write:accounts"]
    assert facts["scopes_wanted"] == " ".join(TOKEN_SCOPES)
    replying = replace(persona, replies=cfg.Replies(enabled=True))
    assert online_check(config, replying)["missing_scopes"] == ["read:statuses", "write:accounts"]
