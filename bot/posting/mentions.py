"""A mention and the manners of answering it: what primes the reply, how public it may be,
who asked not to be answered (#nobot), and what each outcome is called. Used by
bot/posting/replies.py (the Replier) and `bot status`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from bot.core.post import Receipt, Visibility
from bot.corpus.clean import html_to_text

PROMPT_MAX_CHARS = 200  # the mention's last characters prime the sampler
MAX_VISIBILITY: Visibility = "unlisted"  # replies to public mentions (mstdn-ebooks' rule)

Outcome = Literal["replied", "skipped", "already_handled", "failed", "busy"]
SKIP_REASONS = (
    "own_post",  # the bot's own status
    "no_status",  # the notification has no status, or it was deleted
    "too_old",  # older than replies.max_age_minutes
    "bot_account",  # the author is flagged as a bot and not in replies.bot_allowlist
    "nobot",  # #nobot in the author's bio, profile fields or name
    "thread_too_deep",  # more than replies.max_thread_depth posts above the mention
    "account_limit",  # replies.per_account_per_hour reached for the author
    "no_candidate",  # every sampled reply failed the persona's filters
    "publish_refused",  # the server refused the reply for good (e.g. 422)
    "gave_up",  # attempted MAX_SLOT_ATTEMPTS times without a reply reaching the server
    "unknown",  # a send's outcome stayed unknown past the bound: never re-sent
)
_PUBLICNESS: dict[str, int] = {"direct": 0, "private": 1, "unlisted": 2, "public": 3}
_NOBOT = re.compile(r"#nobot\b", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyResult:
    """What one mention came to. `reason` is a SKIP_REASONS entry when skipped."""

    notification_id: str
    outcome: Outcome
    acct: str | None = None
    reason: str | None = None
    text: str | None = None
    receipt: Receipt | None = None
    error: str | None = None


def reply_visibility(
    mention: str, persona: Visibility, cap: Visibility = MAX_VISIBILITY
) -> Visibility:
    """The most public a reply may be: no more than the mention, the persona or `cap`.
    An unknown visibility (e.g. a server's "limited") counts as direct."""
    level = min(_PUBLICNESS.get(mention, 0), _PUBLICNESS[persona], _PUBLICNESS[cap])
    return cast(Visibility, next(k for k, v in _PUBLICNESS.items() if v == level))


def mention_prompt(html: str) -> str:
    """The mention's text for priming: HTML to text, @mentions and links removed, the
    last PROMPT_MAX_CHARS characters."""
    text = html_to_text(html, keep_links=False, hashtags="keep")
    return " ".join(text.split())[-PROMPT_MAX_CHARS:].strip()


def has_nobot(account: Mapping[str, Any]) -> bool:
    """#nobot in the profile note, a profile field's name or value, or the display name."""
    parts = [str(account.get("display_name") or ""), str(account.get("note") or "")]
    for entry in account.get("fields") or ():
        parts += [str(entry.get("name") or ""), str(entry.get("value") or "")]
    return any(_NOBOT.search(html_to_text(part)) or _NOBOT.search(part) for part in parts)


def _id_key(value: str) -> tuple[int, int, str]:
    """Mastodon ids are decimal strings; compare them as numbers."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _norm(acct: str) -> str:
    return acct.strip().lstrip("@").lower()
