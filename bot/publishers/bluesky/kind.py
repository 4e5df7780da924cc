"""The `bluesky` publisher kind (bot/config/registry.py): the persona's `bluesky:`
settings block, the handle and app password from config and the environment, the
publisher (bot/publishers/bluesky/client.py), the inbox that bot/posting/replies.py reads mentions
through, and the account checks: verify the session (`bot check --online`) and say in
the profile that the account is automated (`bot setup`: Bluesky has no bot flag).

    personas:
      ada:
        publisher: bluesky
        bluesky:
          handle: ada-ebooks.bsky.social        # or handle_env: BLUESKY_HANDLE
          # app_password_env: BLUESKY_APP_PASSWORD   (the default)
          # pds_url: https://bsky.social             (the default)
          # self_labels: [graphic-media]              (only when the persona asks)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot import config as cfg
from bot.config import Config, PersonaSettings, registry
from bot.core.errors import ConfigError
from bot.core.post import Publisher
from bot.publishers.bluesky.rules import (
    DEFAULT_PASSWORD_ENV,
    DEFAULT_PDS,
    MAX_GRAPHEMES,
    SELF_LABELS,
    post_length,
    session_file,
)

if TYPE_CHECKING:
    from bot.publishers.bluesky.client import BlueskyPublisher

# A profile that says it is automated: our own disclaimer, and what other bots write.
AUTOMATED = re.compile(r"\b(?:bot|automated)\b|🤖", re.IGNORECASE)
DISCLOSURE = "Automated account: posts are generated, not written by a person."
MENTION_REASONS = ("mention", "reply")
PAGE = 50  # notifications per request
MAX_SCAN = 1000  # notifications read back to the cursor in one poll, at most
_HANDLE = re.compile(r"^(?:did:[a-z]+:[\w.:%-]+|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)$")
_URL = re.compile(r"^https?://[^\s/]+")

# --- settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class BlueskySettings:
    """`personas.NAME.bluesky`: the account a persona posts as."""

    handle: str | None = None  # handle (ada.bsky.social) or DID; not a secret
    handle_env: str | None = None  # or the environment variable holding it
    app_password_env: str = DEFAULT_PASSWORD_ENV
    pds_url: str = DEFAULT_PDS
    self_labels: tuple[str, ...] = ()  # graphic-media, sexual, ...: only when asked for
    request_timeout_seconds: float = 10.0


def parse_settings(m: cfg.Node, used: bool) -> BlueskySettings:
    """Validate the block; `used`: the persona publishes to Bluesky, so it needs a handle."""
    handle = m.text("handle", None)
    if handle is not None:
        handle = handle.strip().lstrip("@")
        if not _HANDLE.match(handle):
            m.fail("handle", f"is not a handle or DID (got {handle!r})",
                   "write it like ada.bsky.social")  # fmt: skip
    handle_env = m.env_name("handle_env", None)
    if handle is not None and handle_env is not None:
        m.fail("handle", "and handle_env are both set", "keep one of them")
    if used and handle is None and handle_env is None:
        raise ConfigError(
            f"{m.label}: {m.path}.handle is missing for the bluesky publisher",
            "set bluesky.handle to the account, e.g. ada.bsky.social",
        )
    pds_url = m.text("pds_url", DEFAULT_PDS) or DEFAULT_PDS
    if not _URL.match(pds_url):
        m.fail("pds_url", f"must be an http(s) URL (got {pds_url!r})",
               "write it like https://bsky.social")  # fmt: skip
    labels = m.texts("self_labels")
    for i, label in enumerate(labels):
        if label not in SELF_LABELS:
            m.fail(f"self_labels[{i}]", f"must be one of {', '.join(SELF_LABELS)} (got {label!r})")
    return BlueskySettings(
        handle=handle,
        handle_env=handle_env,
        app_password_env=m.env_name("app_password_env", DEFAULT_PASSWORD_ENV)
        or DEFAULT_PASSWORD_ENV,
        pds_url=pds_url.rstrip("/"),
        self_labels=tuple(dict.fromkeys(labels)),
        request_timeout_seconds=m.number("request_timeout_seconds", 10.0, lo=1.0, hi=300.0),
    )


def bluesky_settings(persona: PersonaSettings) -> BlueskySettings:
    settings = persona.publisher_settings.get("bluesky")
    return settings if isinstance(settings, BlueskySettings) else BlueskySettings()


def ready(persona: PersonaSettings) -> None:
    """A ConfigError when the persona cannot post to Bluesky: no account, or a content
    warning (Bluesky has none; self-labels are its nearest thing)."""
    settings = bluesky_settings(persona)
    if not (settings.handle or settings.handle_env):
        raise ConfigError(
            f"persona {persona.name} has no bluesky.handle",
            f"set personas.{persona.name}.bluesky.handle in config.yaml",
        )
    if persona.spoiler_text:
        raise ConfigError(
            f"persona {persona.name}: Bluesky has no content warnings (spoiler_text is set)",
            f"remove personas.{persona.name}.spoiler_text, or label the posts with "
            "bluesky.self_labels",
        )


def resolve_handle(persona: PersonaSettings, env: Mapping[str, str] | None = None) -> str:
    settings = bluesky_settings(persona)
    if settings.handle:
        return settings.handle
    name = settings.handle_env
    value = cfg.env_value(name, env).lstrip("@") if name else ""
    if not name or not value:
        raise ConfigError(
            f"persona {persona.name}: no Bluesky handle"
            + (f" (environment variable {name} is not set)" if name else ""),
            f"export {name}=ada.bsky.social" if name else "set bluesky.handle in config.yaml",
        )
    if not _HANDLE.match(value):
        raise ConfigError(f"environment variable {name} is not a handle or DID",
                          "write it like ada.bsky.social")  # fmt: skip
    return value


def resolve_password(persona: PersonaSettings, env: Mapping[str, str] | None = None) -> cfg.Secret:
    """The app password from the environment, registered for redaction."""
    name = bluesky_settings(persona).app_password_env
    return cfg.secret_from_env(
        name,
        f"environment variable {name} is not set; persona {persona.name} posts to Bluesky",
        f"create an app password (Settings > Privacy and security > App passwords) and "
        f"export {name}=<it>",
        env,
    )


def build(config: Config, persona: PersonaSettings) -> BlueskyPublisher:
    """The persona's publisher; the app password is read from the environment here, and
    the session is kept under $REVENANT_HOME/sessions/."""
    ready(persona)
    return publisher_for(config, persona)


def describe(config: Config, persona: PersonaSettings) -> str:
    """`bot check`'s publisher line; the app password must be present, and is never printed."""
    settings = bluesky_settings(persona)
    handle = resolve_handle(persona)
    resolve_password(persona)
    labels = f", self-labels {' '.join(settings.self_labels)}" if settings.self_labels else ""
    return (f"bluesky @{handle} at {settings.pds_url} (app password from "
            f"${settings.app_password_env}{labels})")  # fmt: skip


# --- the inbox ----------------------------------------------------------------------


def notification_id(notification: Mapping[str, Any]) -> str:
    """A notification's id for the replies cursor: its time (UTC, microseconds) and a
    short hash of its post, so ids sort by time and never collide. Bluesky's own
    notifications have no id."""
    import hashlib

    moment = _moment(str(notification.get("indexedAt") or notification.get("indexed_at")))
    digest = hashlib.sha256(str(notification.get("uri")).encode()).hexdigest()[:10]
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "~" + digest


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_mention(notification: Mapping[str, Any]) -> dict[str, Any]:
    """A Bluesky notification (`mention` or `reply`) in the shape bot/posting/replies.py reads
    (Mastodon's notification entity): the author's profile (a `bot` label or a profile
    that says it is automated counts as a bot) and the post (its uri as the id, plain
    text as the content, public)."""
    author = notification.get("author") or {}
    record = notification.get("record") or {}
    labels = [str(label.get("val")) for label in author.get("labels") or ()]
    description = str(author.get("description") or "")
    name = str(author.get("displayName") or "")
    parent = (record.get("reply") or {}).get("parent") or {}
    post_labels = [str(v.get("val")) for v in (record.get("labels") or {}).get("values") or ()]
    return {
        "id": notification_id(notification),
        "type": "mention",
        "account": {
            "id": str(author.get("did")),
            "acct": str(author.get("handle") or author.get("did")),
            "bot": "bot" in labels or bool(AUTOMATED.search(f"{name}\n{description}")),
            "note": description,
            "display_name": name,
            "fields": [],
        },
        "status": {
            "id": str(notification.get("uri")),
            "content": str(record.get("text") or ""),
            # when the AppView saw it: a post's own createdAt is whatever its client wrote
            "created_at": str(notification.get("indexedAt") or record.get("createdAt")),
            "in_reply_to_id": parent.get("uri"),
            "visibility": "public",
            "spoiler_text": "",
            "sensitive": bool(post_labels),
            "account": {"id": str(author.get("did"))},
        },
    }


class BlueskyInbox:
    """`registry.Inbox` over a `BlueskyPublisher`: mentions and replies to the account,
    since a cursor, oldest first; the depth of a thread."""

    addresses_author = False  # a reply reaches its author by its reference, not an @handle

    def __init__(self, publisher: BlueskyPublisher) -> None:
        self.publisher = publisher
        self.host = ""  # handles are global on Bluesky: no home host to strip
        self.capped = False

    def account_id(self) -> str:
        return self.publisher.did()

    def mentions(self, cursor: str | None, limit: int) -> list[Mapping[str, Any]]:
        """Mentions and replies after `cursor` (a `notification_id`), oldest first, at most
        `limit`; the newest `limit` when there is no cursor. Bluesky lists notifications
        newest first, so pages are read back until the cursor, or MAX_SCAN: stopped there,
        `capped` is set, since the mentions older than those read are never returned."""
        self.capped = False
        found: list[Mapping[str, Any]] = []
        page_cursor: str | None = None
        scanned = 0
        while scanned < MAX_SCAN:
            params: dict[str, Any] = {"limit": PAGE, "reasons": list(MENTION_REASONS)}
            if page_cursor:
                params["cursor"] = page_cursor
            page = self.publisher.query(
                "app.bsky.notification.listNotifications", params, "read notifications"
            )
            items = page.get("notifications") or []
            scanned += len(items)
            reached = False
            for item in items:
                if item.get("reason") not in MENTION_REASONS:
                    continue
                mention = as_mention(item)
                if cursor is not None and mention["id"] <= cursor:
                    reached = True
                    continue
                found.append(mention)
            page_cursor = page.get("cursor")
            if reached or not page_cursor or not items:
                break
            if cursor is None and len(found) >= limit:
                break
        else:  # MAX_SCAN read and the cursor not reached (without one, the newest suffice)
            self.capped = cursor is not None
        found.sort(key=lambda m: str(m["id"]))
        return found[-limit:] if cursor is None else found[:limit]

    def thread_depth(self, status_id: str) -> int:
        """How many posts sit above `status_id` (the AppView's thread, parents only)."""
        answer = self.publisher.query(
            "app.bsky.feed.getPostThread",
            {"uri": status_id, "depth": 0, "parentHeight": 1000},
            "read the thread",
        )
        depth, node = 0, (answer.get("thread") or {}).get("parent")
        while isinstance(node, Mapping) and node:
            depth += 1
            node = node.get("parent")
        return depth


def _inbox(publisher: Publisher) -> BlueskyInbox:
    from bot.publishers.bluesky.client import BlueskyPublisher

    if not isinstance(publisher, BlueskyPublisher):
        raise TypeError(f"not a Bluesky publisher: {publisher!r}")  # a bug, not a user error
    return BlueskyInbox(publisher)


# --- account checks ----------------------------------------------------------------


def publisher_for(config: Config, persona: PersonaSettings) -> BlueskyPublisher:
    """The persona's Bluesky publisher, whatever `publisher:` says (the account may be set
    up before posts go to it); a ConfigError when no account is configured."""
    settings = bluesky_settings(persona)
    if not (settings.handle or settings.handle_env):
        raise ConfigError(
            f"{config.label}: personas.{persona.name} has no Bluesky account configured",
            f"set personas.{persona.name}.bluesky.handle (and publisher: bluesky)",
        )
    from bot.publishers.bluesky.client import BlueskyPublisher

    handle = resolve_handle(persona)
    return BlueskyPublisher(
        settings.pds_url,
        handle,
        resolve_password(persona),
        password_env=settings.app_password_env,
        request_timeout_seconds=settings.request_timeout_seconds,
        session_path=session_file(config.home, settings.pds_url, handle),
        self_labels=settings.self_labels,
    )


def online_check(config: Config, persona: PersonaSettings) -> dict[str, Any]:
    """Log in (or reuse the kept session) and read the account; what `bot check --online`
    shows. `bot` is None (Bluesky has no bot flag); `disclosed` says whether the profile
    says the account is automated."""
    publisher = publisher_for(config, persona)
    info = publisher.account_info()
    return {
        "persona": persona.name,
        "instance": publisher.pds_url,
        "token_env": publisher.password_env,
        "acct": info.handle,
        "did": info.did,
        "url": f"https://bsky.app/profile/{info.handle}",
        "bot": None,
        "disclosed": bool(AUTOMATED.search(info.description)) or "bot" in info.labels,
        "instance_limit": MAX_GRAPHEMES,
        "limit_unit": "graphemes",
        "scopes": None,
        "missing_scopes": None,
        "scopes_wanted": "",
    }


@dataclass(frozen=True)
class SetupResult:
    """The profile after `bot setup`, read back."""

    acct: str
    bot: bool  # the profile says the account is automated (read back)
    note_kept: bool | None
    marker: str = "described as automated in its profile"


def disclaimer(note: str | None) -> str:
    """The profile description `bot setup` writes: the note, saying it is automated."""
    if not note:
        return DISCLOSURE
    return note if AUTOMATED.search(note) else f"{note.rstrip()} {DISCLOSURE}"


def setup_account(config: Config, persona: PersonaSettings, note: str | None = None) -> SetupResult:
    """Set the profile description to the persona's disclaimer (the note, with a line
    saying the account is automated when it does not say so), then read it back.
    Idempotent; every other field of the profile is kept."""
    publisher = publisher_for(config, persona)
    text = disclaimer(note)
    publisher.set_description(text)
    after = publisher.account_info()
    kept = after.description == text
    if not kept:  # the AppView indexes the profile asynchronously: read the record itself
        record = publisher.query(
            "com.atproto.repo.getRecord",
            {"repo": after.did, "collection": "app.bsky.actor.profile", "rkey": "self"},
            "read the profile record",
        )
        kept = (record.get("value") or {}).get("description") == text
    return SetupResult(after.handle, kept, kept if note is not None else None)


def _length(text: str, spoiler_text: str) -> int:
    return post_length(text, spoiler_text)


KIND = registry.register(
    registry.PublisherKind(
        name="bluesky",
        build=build,
        length=_length,
        key_lifetime=None,
        settings=BlueskySettings,
        parse=parse_settings,
        ready=ready,
        describe=describe,
        remote=True,
        inbox=_inbox,
        online_check=online_check,
        setup=setup_account,
        exclusive_keys=(("handle", "handle_env"),),
        media_types=("image/",),
        fixed_limit=MAX_GRAPHEMES,
        token_env=DEFAULT_PASSWORD_ENV,
    )
)
