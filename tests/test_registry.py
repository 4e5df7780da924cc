"""The publisher registry: a new network is one module that registers a kind; config,
persona, cli and the scheduler take it without a change (#18)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from bot import config as cfg
from bot.commands.cli import cli
from bot.config import registry
from bot.config.registry import build_publisher, length_function
from bot.core.errors import ConfigError, PublishError
from bot.core.post import Post, Receipt
from bot.daemon.scheduler import Daemon
from bot.posting.persona import Persona
from bot.posting.replies import Replier
from bot.publishers.mastodon.client import KEY_LIFETIME, MastodonPublisher
from bot.publishers.mastodon.kind import MastodonInbox
from bot.publishers.outbox import Outbox
from bot.store import SQLiteStore

BOT = Path(__file__).resolve().parents[1] / "bot"


@dataclass(frozen=True)
class PigeonSettings:
    loft: str = "home"
    max_chars: int = 120


class Pigeon:
    """A test-only publisher: posts are kept in memory; counts characters twice over."""

    name = "pigeon"
    key_lifetime: timedelta | None = timedelta(minutes=5)
    settle_seconds = 0.0

    def __init__(self, settings: PigeonSettings) -> None:
        self.settings = settings
        self.sent: dict[str, Receipt] = {}

    def publish(self, post: Post) -> Receipt:
        receipt = Receipt(self.name, f"p{len(self.sent) + 1}")
        return self.sent.setdefault(post.idempotency_key, receipt)

    def max_chars(self) -> int:
        return self.settings.max_chars

    def length(self, text: str, spoiler_text: str = "") -> int:
        return pigeon_length(text, spoiler_text)

    def find(self, post: Post, since: datetime) -> Receipt | None:
        return self.sent.get(post.idempotency_key)


def pigeon_length(text: str, spoiler_text: str = "") -> int:
    return 2 * (len(text) + len(spoiler_text))


def parse_pigeon(node: cfg.Node, used: bool) -> PigeonSettings:
    loft = node.text("loft", "home") or "home"
    if used and loft == "nowhere":
        node.fail("loft", "must be a real loft (got 'nowhere')", "name your loft")
    return PigeonSettings(loft=loft, max_chars=node.whole("max_chars", 120, lo=10, hi=500))


class PigeonInbox:
    host = ""
    addresses_author = True
    capped = False

    def account_id(self) -> str:
        return "me"

    def mentions(self, cursor: str | None, limit: int) -> list[Mapping[str, Any]]:
        return []

    def thread_depth(self, status_id: str) -> int:
        return 0


PIGEON = registry.PublisherKind(
    name="pigeon",
    build=lambda config, persona: Pigeon(registry.get("pigeon").settings_of(persona)),
    length=pigeon_length,
    key_lifetime=timedelta(minutes=5),
    settings=PigeonSettings,
    parse=parse_pigeon,
    describe=lambda config, persona: (
        "pigeon from the " + registry.get("pigeon").settings_of(persona).loft + " loft"
    ),
    remote=True,
    inbox=lambda publisher: PigeonInbox(),
)


@pytest.fixture
def pigeon() -> Iterator[registry.PublisherKind]:
    registry.register(PIGEON)
    yield PIGEON
    registry.unregister("pigeon")


@pytest.fixture
def pigeon_config(
    pigeon: registry.PublisherKind,
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
) -> Path:
    make_persona("ada")
    return write_config(
        """
        personas:
          ada:
            publisher: pigeon
            pigeon: {loft: attic, max_chars: 400}
        """
    )


def test_builtin_kinds() -> None:
    assert registry.names()[:2] == ("outbox", "mastodon")
    assert registry.get("outbox").key_lifetime is Outbox.key_lifetime is None
    assert registry.get("mastodon").key_lifetime == MastodonPublisher.key_lifetime == KEY_LIFETIME
    assert registry.get("mastodon").remote and not registry.get("outbox").remote
    assert registry.get("mastodon").inbox is not None and registry.get("outbox").inbox is None


def test_unknown_kind_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        registry.get("carrier-owl")
    assert "\n" not in str(info.value) and "'carrier-owl'" in str(info.value)


def test_new_kind_needs_no_change_to_config_persona_or_cli(pigeon_config: Path) -> None:
    config = cfg.load_config()
    ada = config.persona("ada")
    assert ada.publisher == "pigeon"
    assert PIGEON.settings_of(ada) == PigeonSettings(loft="attic", max_chars=400)
    publisher = build_publisher(config, ada)
    assert isinstance(publisher, Pigeon) and publisher.max_chars() == 400
    assert length_function(dataclasses.replace(ada, spoiler_text="cw"))("abc") == 10
    # a persona of another kind gets the block's defaults
    other = dataclasses.replace(ada, publisher="outbox", publisher_settings={})
    assert PIGEON.settings_of(other) == PigeonSettings()

    result = CliRunner().invoke(cli, ["check", "-p", "ada"])
    assert result.exit_code == 0, result.output
    assert "publisher: pigeon from the attic loft, unlisted" in result.output
    result = CliRunner().invoke(cli, ["setup", "-p", "ada"])
    assert "publishes to the pigeon, nothing to set up" in result.output


def test_new_kind_posts_through_the_runner(pigeon_config: Path, tmp_path: Path) -> None:
    config = cfg.load_config()
    ada = config.persona("ada")
    publisher = build_publisher(config, ada)
    with SQLiteStore(tmp_path / "s.db") as store:
        runner = Persona(
            ada, store=store, publisher=publisher, length=length_function(ada),
            rng=np.random.default_rng(7),
        )  # fmt: skip
        result = runner.wake("2026-12-01T00:00Z")
    assert result.outcome == "posted", result
    assert result.receipt == Receipt("pigeon", "p1")
    assert 0 < len(result.text or "") * 2 <= 400


def test_new_kind_settings_errors_are_one_line(
    pigeon: registry.PublisherKind,
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_persona("ada")
    monkeypatch.chdir(write_config("personas: {}").parent)
    monkeypatch.setenv("REVENANT_CONFIG", "config.yaml")
    cases = {
        "personas: {ada: {publisher: pigeon, pigeon: {loft: nowhere}}}": (
            "config.yaml: personas.ada.pigeon.loft must be a real loft (got 'nowhere')"
            " (name your loft)"
        ),
        "personas: {ada: {pigeon: {max_chars: 5}}}": (
            "config.yaml: personas.ada.pigeon.max_chars must be between 10 and 500 (got 5)"
        ),
        "personas: {ada: {pigeon: {lofty: x}}}": (
            "config.yaml: unknown key personas.ada.pigeon.lofty (did you mean loft?)"
        ),
        "personas: {ada: {publisher: owl}}": (
            "config.yaml: personas.ada.publisher must be one of outbox, mastodon, bluesky, pigeon"
            " (got 'owl')"
        ),
    }
    for text, message in cases.items():
        write_config(text)
        with pytest.raises(ConfigError) as info:
            cfg.load_config()
        assert str(info.value) == message


def test_publisher_flag_takes_a_new_kind(pigeon: registry.PublisherKind, ada_config: Path) -> None:
    ada = cfg.load_config().persona("ada")
    assert cfg.with_overrides(ada, publisher="pigeon").publisher == "pigeon"
    result = CliRunner().invoke(cli, ["post", "--publisher", "owl"])
    assert result.exit_code == 2 and "'pigeon'" in result.output


def test_replies_use_the_kinds_inbox(pigeon_config: Path, tmp_path: Path) -> None:
    config = cfg.load_config()
    ada = config.persona("ada")
    publisher = build_publisher(config, ada)
    with SQLiteStore(tmp_path / "s.db") as store:
        runner = Persona(ada, store=store, publisher=publisher)
        replier = Replier(runner, publisher, store)
        assert isinstance(replier.inbox, PigeonInbox)
        assert replier.poll() == []
        outbox = Outbox(tmp_path / "outbox")
        with pytest.raises(ConfigError) as info:
            Replier(Persona(ada, store=store, publisher=outbox), outbox, store)
    assert "\n" not in str(info.value)
    assert "replies need a publisher with mentions (got outbox)" in str(info.value)


def test_scheduler_polls_replies_for_any_kind_with_an_inbox(
    pigeon: registry.PublisherKind,
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
) -> None:
    make_persona("ada")
    make_persona("bob")
    write_config(
        """
        personas:
          ada: {publisher: pigeon, replies: {enabled: true}}
          bob: {replies: {enabled: true}}
        """
    )
    config = cfg.load_config()
    with SQLiteStore(config.store) as store:
        daemon = Daemon(config, list(config.personas.values()), store)
        jobs = {job.id for job in daemon.scheduler.get_jobs()}
    assert "replies:ada" in jobs and "replies:bob" not in jobs


def test_mastodon_inbox_translates_errors() -> None:
    publisher = MastodonPublisher("http://127.0.0.1:9", "t" * 43, request_timeout_seconds=1)
    inbox = MastodonInbox(publisher)
    assert inbox.host == "127.0.0.1:9"
    with pytest.raises(PublishError) as info:
        inbox.account_id()
    assert info.value.transient


def test_no_network_switch_outside_the_publishers() -> None:
    """config, persona, cli, scheduler and replies never name a network."""
    for module in ("config/loader", "posting/persona", "commands/cli", "daemon/scheduler",
                   "posting/replies"):
        source = (BOT / f"{module}.py").read_text(encoding="utf-8")
        assert not re.search(r"""["']mastodon["']""", source), module
        assert "MastodonPublisher" not in source, module
        assert "bot.publishers.mastodon" not in source, module
