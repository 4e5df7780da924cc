"""The publisher kinds: what each network brings, so that config, persona, cli and the
scheduler never switch on a network's name.

    kind = registry.get("mastodon")
    settings = kind.parse(node, used=True)        # its block in the persona's config
    publisher = kind.build(config, persona)        # a `Publisher` (max_chars, length, find)
    inbox = kind.inbox(publisher)                  # mentions, when the network has them

A kind owns its settings block (`personas.NAME.<kind name>`, parsed and validated by
`parse`, one-line ConfigErrors naming the key), its length rule, its idempotency-key
lifetime, the publisher it builds (which carries `max_chars` and `find` for
reconciliation, bot/posting/delivery.py), whether posts leave the machine (`remote`: `bot post`
asks first, `bot check --online` and `bot setup` act on it) and, if it has one, an inbox
for mentions and replies (`Inbox`). Adding a network is one new module that calls
`register` and one line in `BUILTIN` below.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.core.errors import ConfigError

if TYPE_CHECKING:
    from bot.config.node import Node
    from bot.config.settings import Config, PersonaSettings
    from bot.core.post import Publisher

# The modules that register the built-in kinds, in the order `names()` lists them.
BUILTIN = ("bot.publishers.outbox", "bot.publishers.mastodon.kind", "bot.publishers.bluesky.kind")


class Inbox(Protocol):
    """Mentions of the account and what answering them needs to read. Every method
    raises `PublishError` (translated at the network's boundary) when the read fails."""

    host: str  # the account's home host, e.g. "mastodon.example" ("" when it has none)
    # a reply starts with "@author" (Mastodon: that is who sees it); False where the
    # reply's reference alone reaches the author (Bluesky)
    addresses_author: bool
    # True after a `mentions` call that stopped at its scan cap before it reached the
    # cursor: the mentions between the cursor and the oldest one returned were not read
    capped: bool

    def account_id(self) -> str:
        """The id of the account the publisher posts as."""
        ...

    def mentions(self, cursor: str | None, limit: int) -> list[Mapping[str, Any]]:
        """Notifications after `cursor` (the newest page when None), in Mastodon's entity
        shape: id, type, account{id, acct, bot, note, fields}, status{id, content, ...}."""
        ...

    def thread_depth(self, status_id: str) -> int:
        """How many posts sit above `status_id` in its thread."""
        ...


@dataclass(frozen=True)
class PublisherKind:
    """One network: its name (the value of `publisher:` and of its settings block's key)
    and what config, persona, cli and the scheduler need from it."""

    name: str
    build: Callable[[Config, PersonaSettings], Publisher]
    length: Callable[[str, str], int]  # (text, spoiler_text) -> length as the network counts
    key_lifetime: timedelta | None  # how long the network honours an idempotency key
    settings: type | None = None  # the settings block's type; None: the kind has no block
    parse: Callable[[Node, bool], Any] | None = None  # (block, used by the persona) -> settings
    ready: Callable[[PersonaSettings], None] | None = None  # ConfigError when it cannot post
    describe: Callable[[Config, PersonaSettings], str] | None = None  # `bot check` line
    remote: bool = False  # posts leave the machine
    inbox: Callable[[Publisher], Inbox] | None = None
    online_check: Callable[[Config, PersonaSettings], dict[str, Any]] | None = None
    setup: Callable[[Config, PersonaSettings, str | None], Any] | None = None
    # groups of alternative keys in its block (a persona giving one of them drops the others
    # it would inherit from `defaults:`), e.g. (("base_url", "base_url_env"),)
    exclusive_keys: tuple[tuple[str, ...], ...] = ()
    # the environment variable its token is read from by default (e.g.
    # MASTODON_ACCESS_TOKEN): `bot run` warns when it is set but no persona uses the kind
    token_env: str | None = None
    # MIME type prefixes its posts may carry, e.g. ("image/",); a music persona's post
    # leaves out the media its network does not take (its score without the sound)
    media_types: tuple[str, ...] = ()
    # a post length limit every account of the network has (Bluesky: 300 graphemes), so a
    # dry run (`bot preview`, no publisher built) holds posts to it; None: the server says
    fixed_limit: int | None = None

    def settings_of(self, persona: PersonaSettings) -> Any:
        """The persona's settings block for this kind (the defaults when not given)."""
        given = persona.publisher_settings.get(self.name)
        if given is not None:
            return given
        return self.settings() if self.settings is not None else None


_KINDS: dict[str, PublisherKind] = {}
_lock = threading.Lock()
_loaded = False


def register(kind: PublisherKind) -> PublisherKind:
    """Add (or replace, for tests) a kind; returns it so a module can keep a handle."""
    with _lock:
        _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests register their own and take them away again)."""
    with _lock:
        _KINDS.pop(name, None)


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    for module in BUILTIN:
        importlib.import_module(module)
    _loaded = True


def kinds() -> Mapping[str, PublisherKind]:
    """Every registered kind by name, the built-in ones first (in `BUILTIN` order)."""
    _load_builtin()
    with _lock:
        registered = list(_KINDS.values())

    def rank(kind: PublisherKind) -> int:
        module = getattr(kind.build, "__module__", "")
        return BUILTIN.index(module) if module in BUILTIN else len(BUILTIN)

    return {k.name: k for k in sorted(registered, key=rank)}


def names() -> tuple[str, ...]:
    return tuple(kinds())


def get(name: str) -> PublisherKind:
    """The kind called `name`; a one-line ConfigError for an unknown one."""
    known = kinds()
    if name not in known:
        raise ConfigError(
            f"unknown publisher {name!r}", f"valid publishers: {', '.join(sorted(known))}"
        )
    return known[name]


def of(persona: PersonaSettings) -> PublisherKind:
    """The kind the persona publishes through."""
    return get(persona.publisher)


def inbox_for(publisher: Publisher) -> Inbox | None:
    """The publisher's inbox, or None when its network has no mentions."""
    kind = kinds().get(publisher.name)
    if kind is None or kind.inbox is None:
        return None
    return kind.inbox(publisher)


def build_publisher(config: Config, persona: PersonaSettings) -> Publisher:
    """The persona's publisher, built by its kind (bot/config/registry.py); a remote
    one's client (and its token) is only ever constructed when a post is really sent."""
    return of(persona).build(config, persona)


def length_function(persona: PersonaSettings) -> Callable[[str], int]:
    """A post's length as the persona's publisher kind counts it, the persona's content
    warning included (Mastodon counts any URL as 23 and mentions by username; the outbox
    counts plain characters)."""
    spoiler = persona.spoiler_text
    count = of(persona).length
    return lambda text: count(text, spoiler)
