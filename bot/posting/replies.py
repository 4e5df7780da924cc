"""Replies: answer mentions in the persona's voice, with the manners of a polite bot.

    Replier(runner, publisher, store, now=clock).poll()   # every replies.interval_minutes

One poll reads the account's `mention` notifications after the cursor kept in the store
(`replies:<persona>`), oldest first, and handles each one exactly once:

    skip?   already handled | own post | older than max_age_minutes | a bot account (unless
            in bot_allowlist) | #nobot in the author's profile | a thread deeper than
            max_thread_depth | per_account_per_hour replies already sent to the author
    answer  claim slot `reply:<notification id>` (leased, as posts are) -> compose(prompt =
            the mention's text, mentions and links removed) through the persona's filters,
            written ahead -> publish "@author <text>" (Mastodon; "<text>" on Bluesky, where
            the reply's reference reaches the author) in reply to the mention, never more
            public than the mention, with idempotency key
            `revenant:<persona>:reply:<notification id>` (bot/posting/delivery.py)
    record  the reply (or the skip and its reason) and the cursor, in one transaction

The cursor moves only past a mention whose reply or skip is recorded. A transient server
failure stops the batch with the cursor before the failed mention, so the next poll
retries it with the same text and key, after looking among the account's statuses when
the failed send may have reached the server: nothing is lost and nothing is posted twice.
A permanent failure to read one mention's thread does not hold the cursor.
An error is logged and stored, never posted. Reads mentions through the publisher kind's
inbox (`registry.Inbox`; Mastodon's is `MastodonInbox`); never imports TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from bot.config import registry
from bot.config.registry import Inbox
from bot.core.errors import ConfigError, ModelError, PublishError
from bot.core.faults import crash_point
from bot.core.log import event
from bot.core.post import Post, Publisher, Visibility
from bot.posting.delivery import LeaseKeeper, deliver, plain_wait
from bot.posting.mentions import (
    MAX_VISIBILITY,
    ReplyResult,
    _aware,
    _id_key,
    _norm,
    has_nobot,
    mention_prompt,
    reply_visibility,
)
from bot.posting.persona import MAX_SLOT_ATTEMPTS, Persona
from bot.store import Claim, Store, utc_now

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
PAGE_LIMIT = 40  # notifications per request (Mastodon's maximum)
MAX_PAGES = 5  # pages per poll; the rest waits for the next poll
# ---------------------------------------------------------------------------------------


class _Stop(Exception):
    """End the poll here; the cursor stays before this mention (retried next poll)."""

    def __init__(self, result: ReplyResult | None) -> None:
        super().__init__(result.error if result else None)
        self.result = result


class Replier:
    """Answers one persona's mentions; `poll()` is one run of the replies job."""

    def __init__(
        self,
        runner: Persona,
        publisher: Publisher,
        store: Store,
        *,
        now: Callable[[], datetime] = utc_now,
        max_visibility: Visibility = MAX_VISIBILITY,
        page_limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
        wait: Callable[[float], bool] | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        inbox = inbox if inbox is not None else registry.inbox_for(publisher)
        if inbox is None:
            with_inbox = [k.name for k in registry.kinds().values() if k.inbox is not None]
            raise ConfigError(
                f"persona {runner.name}: replies need a publisher with mentions "
                f"(got {publisher.name})",
                f"set personas.{runner.name}.publisher: {' or '.join(with_inbox)}, "
                "or replies.enabled: false",
            )
        self.runner = runner
        self.publisher = publisher
        self.inbox = inbox
        self.store = store
        self.now = now
        self.settings = runner.settings.replies
        self.max_visibility = max_visibility
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.wait = wait  # waits for a send to settle; True = cut short (shutdown)
        self.cursor_name = f"replies:{runner.name}"
        self._me: str | None = None  # our account id, read once
        host = inbox.host
        self._allow = {_norm(a) for a in self.settings.bot_allowlist}
        self._allow |= {a.removesuffix(f"@{host}") for a in self._allow if host}
        self._personas: dict[int, Persona] = {}  # reply persona by length budget

    @property
    def name(self) -> str:
        return self.runner.name

    # -- the job -------------------------------------------------------------------------

    def poll(self) -> list[ReplyResult]:
        """Handle every new mention, oldest first; stop at a transient failure.

        Read failures are stored and logged: a transient one (5xx, timeout, 429) ends the
        poll quietly, a permanent one (401/403) is raised for the daemon to act on.
        """
        results: list[ReplyResult] = []
        try:
            me = self._account_id()
            for _ in range(self.max_pages):
                cursor = self.store.get_cursor(self.cursor_name)
                page = self._fetch(cursor)
                mentions = [n for n in page if n.get("type") == "mention"]
                for notification in mentions:
                    results.append(self._handle(notification, me))
                if len(mentions) < len(page):
                    # A server that ignores `types[]` (< 3.5) sent other notifications too;
                    # every mention among them is handled, so the cursor may pass them all.
                    self.store.set_cursor(self.cursor_name, str(page[-1]["id"]))
                if len(page) < self.page_limit:
                    break
        except _Stop as stop:
            if stop.result is not None:
                results.append(stop.result)
        return results

    # -- one mention ---------------------------------------------------------------------

    def _handle(self, notification: Mapping[str, Any], me: str) -> ReplyResult:
        nid = str(notification["id"])
        account = notification.get("account") or {}
        acct = str(account.get("acct") or "")
        status = notification.get("status")
        if self.store.mention_outcome(self.name, nid) is not None:
            self.store.set_cursor(self.cursor_name, nid)
            return ReplyResult(nid, "already_handled", acct)
        slot_key = f"reply:{nid}"
        if not status or not acct:
            return self._skip(nid, acct, None, "no_status")
        status_id = str(status["id"])
        reason = self._refusal(account, status, me, slot_key)
        if reason is None and self._over_limit(acct):
            reason = "account_limit"
        if reason is None:
            reason = self._thread_refusal(nid, acct, status)
        if reason is not None:
            return self._skip(nid, acct, status_id, reason)
        return self._answer(nid, acct, status, slot_key)

    def _refusal(
        self, account: Mapping[str, Any], status: Mapping[str, Any], me: str, slot_key: str
    ) -> str | None:
        """Why this mention must not be answered (no network), or None."""
        author = account.get("id")
        status_author = (status.get("account") or {}).get("id")
        if str(author) == me or str(status_author) == me:
            return "own_post"
        created = _aware(status.get("created_at"))
        max_age = timedelta(minutes=self.settings.max_age_minutes)
        # A mention already attempted is bounded by its claim's age instead (see _claim).
        if (
            created is not None
            and self.now() - created > max_age
            and self.store.slot(self.name, slot_key) is None
        ):
            return "too_old"
        if account.get("bot") and _norm(str(account.get("acct"))) not in self._allow:
            return "bot_account"
        if has_nobot(account):
            return "nobot"
        return None

    def _thread_refusal(self, nid: str, acct: str, status: Mapping[str, Any]) -> str | None:
        """thread_too_deep when more than max_thread_depth posts sit above the mention.

        The server's thread (status_context) counts every post above; a token without
        read:statuses gets a 403 there, and then our own records count the exchanges
        with us (a lower bound, but it still ends a loop between two bots)."""
        if status.get("in_reply_to_id") is None:
            return None
        try:
            depth = self.inbox.thread_depth(str(status["id"]))
        except PublishError as failure:
            if failure.status_code in (404, 410):
                return "no_status"
            if failure.transient:
                self._fail(nid, acct, f"reply:{nid}", "replies_thread", failure)
            # Permanent for this mention (403 without read:statuses, 410, 422, ...): it must
            # not hold the cursor; count the thread from our own records instead.
            if failure.status_code != 403:
                self.store.record_failure(self.name, f"reply:{nid}", "replies_thread",
                                          str(failure), transient=False)  # fmt: skip
            event(log, "thread_unreadable", logging.WARNING, persona=self.name, notification=nid,
                  error=failure.message, fallback="depth from our own replies",
                  hint="give the token read:statuses" if failure.status_code == 403 else "")  # fmt: skip
            depth = self._known_depth(status)
        return "thread_too_deep" if depth > self.settings.max_thread_depth else None

    def _known_depth(self, status: Mapping[str, Any]) -> int:
        """Posts above `status` that our records know: each of our replies and the
        mention it answered, up the chain; a post that is not ours ends the walk."""
        depth, parent = 0, status.get("in_reply_to_id")
        while parent is not None and depth <= self.settings.max_thread_depth:
            depth += 1  # the post replied to
            link = self.store.mention_answered_by(self.name, str(parent))
            if link is None or link[0] is None:
                break
            depth += 1  # the mention our reply answered
            parent = link[1]
        return depth

    def _over_limit(self, acct: str) -> bool:
        since = self.now() - timedelta(hours=1)
        return (
            self.store.replies_since(self.name, acct, since) >= self.settings.per_account_per_hour
        )

    def _answer(self, nid: str, acct: str, status: Mapping[str, Any], slot_key: str) -> ReplyResult:
        """Claim the reply's slot and deliver it exactly once (bot/posting/delivery.py): a slot
        another process holds stops the batch here (its holder finishes it); one left by a
        crash is resumed with its written-ahead text; an `unknown` one is never re-sent."""
        store, name = self.store, self.name
        claim = store.claim_slot(name, slot_key, lease_seconds=self.runner.lease_seconds)
        if claim is None:
            row = store.slot(name, slot_key)
            if row is not None and row.status == "unknown":
                return self._skip(nid, acct, str(status["id"]), "unknown")
            if row is not None and row.status in ("claimed", "failed"):
                raise _Stop(ReplyResult(nid, "busy", acct))  # a live holder is on it
            store.set_cursor(self.cursor_name, nid)
            return ReplyResult(nid, "already_handled", acct)
        crash_point("after_claim")
        with LeaseKeeper(store, claim, self.runner.lease_seconds) as keeper:
            return self._deliver(nid, acct, status, claim, keeper)

    def _deliver(
        self, nid: str, acct: str, status: Mapping[str, Any], claim: Claim, keeper: LeaseKeeper
    ) -> ReplyResult:
        s = self.runner.settings
        store, slot_key = self.store, claim.slot_key
        handle = f"@{acct} " if self.inbox.addresses_author else ""
        status_id = str(status["id"])
        spoiler = s.spoiler_text or str(status.get("spoiler_text") or "")
        gave_up = claim.attempts > MAX_SLOT_ATTEMPTS
        rejected: list[tuple[str, str]] = []
        text = claim.text
        if text is None:
            if gave_up:
                store.finish_slot(claim, "skipped")
                return self._skip(nid, acct, status_id, "gave_up")
            text, rejected = self._compose(nid, acct, handle, spoiler, status, claim)
            if text is None:
                return self._skip(nid, acct, status_id, "no_candidate")
            if not store.write_ahead(claim, text, mention_prompt(str(status.get("content") or ""))):
                raise _Stop(ReplyResult(nid, "busy", acct))
            crash_point("after_compose")
        post = Post(
            persona=self.name,
            text=text,
            idempotency_key=f"revenant:{self.name}:{slot_key}",
            visibility=reply_visibility(
                str(status.get("visibility") or "direct"), s.visibility, self.max_visibility
            ),
            spoiler_text=spoiler,
            language=s.language,
            sensitive=s.sensitive or bool(status.get("sensitive")),
            in_reply_to_id=status_id,
        )
        for recomposed in (False, True):
            done = deliver(store, self.publisher, claim, post, keeper=keeper, kind="reply",
                           now=self.now, may_send=not gave_up,
                           wait=self.wait or plain_wait)  # fmt: skip
            if done.outcome != "too_long" or recomposed:
                break
            again, rejected = self._compose(nid, acct, handle, spoiler, status, claim)
            if again is None or not store.write_ahead(claim, again, None):
                break
            post = replace(post, text=again)
        err = done.error
        if done.outcome == "posted" and done.receipt is not None:
            receipt = done.receipt
            with store.transaction():
                store.record_post(
                    self.name, slot_key, post.text, receipt, kind="reply", rejections=rejected
                )
                parent = status.get("in_reply_to_id")
                store.record_mention(self.name, nid, acct, "replied", status_id=status_id,
                                     in_reply_to_id=None if parent is None else str(parent),
                                     reply_remote_id=receipt.remote_id, at=self.now())  # fmt: skip
                store.set_cursor(self.cursor_name, nid)
            crash_point("after_record")
            event(log, "replied", persona=self.name, notification=nid, to=acct,
                  visibility=post.visibility, id=receipt.remote_id, url=receipt.url or "",
                  found=done.found)  # fmt: skip
            return ReplyResult(nid, "replied", acct, text=post.text, receipt=receipt)
        if done.outcome in ("failed", "lost") or err is None:
            if err is not None:
                event(log, "reply_failed", logging.ERROR, persona=self.name, notification=nid,
                      to=acct, transient=err.transient, error=err.message)  # fmt: skip
            raise _Stop(ReplyResult(nid, "failed" if err else "busy", acct,
                                    error=err.message if err else None))  # fmt: skip
        if done.outcome == "unknown":
            return replace(self._skip(nid, acct, status_id, "unknown"), error=err.message)
        if done.outcome == "skipped":
            return self._skip(nid, acct, status_id, "gave_up")
        if done.outcome == "too_long":
            store.record_failure(self.name, slot_key, "reply", str(err), transient=False)
            store.finish_slot(claim, "skipped")
        if err.status_code in (401, 403):
            raise err  # the daemon disables the persona (the slot is skipped, not retried)
        return replace(self._skip(nid, acct, status_id, "publish_refused"), error=err.message)

    def _compose(
        self,
        nid: str,
        acct: str,
        handle: str,
        spoiler: str,
        status: Mapping[str, Any],
        claim: Claim,
    ) -> tuple[str | None, list[tuple[str, str]]]:
        """A reply text ("@author ..." where the network addresses the author) that fits
        with its content warning, or None."""
        persona = self._persona_for(handle, spoiler)
        try:
            comp = persona.compose(prompt=mention_prompt(str(status.get("content") or "")) or None)
        except ModelError as err:  # keep the mention for the next poll, tell the daemon
            self.store.record_failure(self.name, claim.slot_key, "model", str(err),
                                      transient=True)  # fmt: skip
            self.store.mark_failed(claim)
            raise
        rejected = [(v.candidate.text, v.reason or "") for v in comp.rejected]
        if not comp.chosen:
            with self.store.transaction():
                self.store.record_rejections(self.name, claim.slot_key, rejected)
                self.store.finish_slot(claim, "skipped")
            return None, rejected
        return f"{handle}{comp.chosen[0].text}", rejected

    # -- bookkeeping ---------------------------------------------------------------------

    def _skip(self, nid: str, acct: str, status_id: str | None, reason: str) -> ReplyResult:
        """Record a deliberate skip and move the cursor past it, in one transaction."""
        with self.store.transaction():
            self.store.record_mention(
                self.name, nid, acct or "?", "skipped", status_id=status_id, reason=reason,
                at=self.now(),
            )  # fmt: skip
            self.store.set_cursor(self.cursor_name, nid)
        event(log, "reply_skipped", persona=self.name, notification=nid, to=acct, why=reason)
        return ReplyResult(nid, "skipped", acct, reason=reason)

    def _fail(self, nid: str, acct: str, slot_key: str, kind: str, err: PublishError) -> NoReturn:
        """Store the failure, keep the cursor before this mention and stop the batch;
        a permanent (401/403) failure is raised for the daemon. The reply's slot is not
        this poll's (nothing is claimed before the thread is read): it is left to its
        holder, whether it is still answering, finished, or dead (its lease ends)."""
        self.store.record_failure(self.name, slot_key, kind, str(err), transient=err.transient)
        event(log, "reply_failed", logging.ERROR, persona=self.name, notification=nid, to=acct,
              transient=err.transient, error=err.message)  # fmt: skip
        if not err.transient:
            raise err
        raise _Stop(ReplyResult(nid, "failed", acct, error=err.message))

    # -- inbox reads --------------------------------------------------------------------

    def _read_failed(self, failure: PublishError) -> NoReturn:
        """A failed read before any mention: stored and logged; a transient one ends the
        poll quietly, a permanent one (401/403) is raised for the daemon to act on."""
        self.store.record_failure(self.name, self.cursor_name, "replies_read", str(failure),
                                  transient=failure.transient)  # fmt: skip
        event(log, "replies_read_failed", logging.ERROR, persona=self.name,
              transient=failure.transient, error=failure.message)  # fmt: skip
        if not failure.transient:
            raise failure from None
        raise _Stop(None)

    def _account_id(self) -> str:
        if self._me is None:
            try:
                self._me = self.inbox.account_id()
            except PublishError as failure:
                self._read_failed(failure)
        return self._me

    def _fetch(self, cursor: str | None) -> list[Mapping[str, Any]]:
        """The next notifications after `cursor`, oldest first (the newest page when
        None); mentions only, unless the server ignores the type filter."""
        try:
            items = self.inbox.mentions(cursor, self.page_limit)
        except PublishError as failure:
            self._read_failed(failure)
        if cursor is not None:
            items = [n for n in items if _id_key(str(n["id"])) > _id_key(cursor)]
            if self.inbox.capped:
                self._missed(cursor, items)
        return sorted(items, key=lambda n: _id_key(str(n["id"])))

    def _missed(self, cursor: str, items: list[Mapping[str, Any]]) -> None:
        """The inbox stopped at its scan cap before the cursor (more notifications came
        since the last poll than one poll reads back): the mentions older than those read
        are never answered. Said in the log and, as a replies_missed failure, by `bot status`."""
        oldest = min((str(n["id"]) for n in items), key=_id_key, default="?")
        error = (f"more notifications since the last poll than one poll reads back: the "
                 f"mentions after {cursor} and before {oldest} were not read")  # fmt: skip
        self.store.record_failure(self.name, self.cursor_name, "replies_missed", error,
                                  transient=False)  # fmt: skip
        event(log, "mentions_missed", logging.WARNING, persona=self.name, after=cursor,
              before=oldest)  # fmt: skip

    def _persona_for(self, handle: str, spoiler: str) -> Persona:
        """The runner with room for `handle` ("@author " or "") and the reply's content
        warning in the limit, counted as the server counts them, and without the prompt echoed
        (a reply never repeats what it was told)."""
        publisher = self.publisher
        budget = publisher.max_chars() - publisher.length(handle, spoiler)
        if budget not in self._personas:
            r = self.runner
            self._personas[budget] = Persona(
                replace(r.settings, include_prompt=False),
                store=self.store,
                publisher=self.publisher,
                rng=r.rng,
                now=r.now,
                model=r.model,
                length=publisher.length,
                max_chars=max(budget, 1),
                lease_seconds=r.lease_seconds,
            )
        return self._personas[budget]
