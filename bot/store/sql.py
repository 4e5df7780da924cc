"""The store's SQL, written once for both backends: `SQLStore` holds every method of the
`Store` protocol; `SQLiteStore` and `PostgresStore` add the connection and transactions.

The claim protocol (see DESIGN.md, "Growing past one machine"): a claim names its holder
and holds a lease (`lease_until_utc`, LEASE_SECONDS); the holder renews it while it works
(`renew`), and another caller takes the slot over only after the lease has expired, in
one statement that only one caller can win (`UPDATE ... WHERE lease_until_utc < now`,
checked by its row count). A fresh slot is one `INSERT ... ON CONFLICT DO NOTHING`. Every
write of the holder (`write_ahead`, `mark_sending`, `mark_failed`, `finish_slot`) is
conditional on still holding a live lease, so a holder that lost its lease cannot send.
At most one post row exists per (persona, slot, publisher): a unique index, and
`record_post` inserts with ON CONFLICT DO NOTHING.

Portable on purpose: `?` placeholders (the PostgreSQL backend turns them into `%s`),
UTC ISO-8601 text timestamps in one fixed format (text order is time order; PostgreSQL
compares them bytewise, see migrations.py), INSERT ... ON CONFLICT, RETURNING, UPDATE
checked by its row count. Rows read inside `transaction()` are indexed by position,
rows from `_query` by column name. A broken constraint raises the driver's own
IntegrityError (`sqlite3.IntegrityError`, `psycopg.IntegrityError`), as it always has.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

from bot.core.post import Receipt
from bot.store.base import DB, SQLBase
from bot.store.protocol import (
    LEASE_SECONDS,
    SLOT_COLUMNS,
    Claim,
    PostKind,
    PostRow,
    SlotRow,
    SlotStatus,
    isoformat_utc,
    new_holder,
)

__all__ = ["DB", "SQLStore"]


class SQLStore(SQLBase):
    """`Store` over any connection that speaks the portable SQL above. Safe to share
    between threads: one connection, one lock, transactions that nest (inner blocks join
    the outer transaction)."""

    # --- slots ------------------------------------------------------------------------

    def _lease_end(self, lease_seconds: float) -> str:
        return isoformat_utc(self._now() + timedelta(seconds=lease_seconds))

    def claim_slot(
        self,
        persona: str,
        slot_key: str,
        *,
        holder: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> Claim | None:
        """Claim the slot for one caller, across threads and processes; None if another
        holds a live lease or the slot is finished (posted, skipped, unknown).

        A new slot is an INSERT ... ON CONFLICT DO NOTHING; an open slot (`claimed` with
        an expired lease, or `failed`) is taken over by one UPDATE whose WHERE clause
        only one caller can satisfy. Both are checked by their row count. A `failed` slot
        was released by its holder and is open at once (not only a millisecond later)."""
        holder = holder or new_holder()
        now = self._ts()
        until = self._lease_end(lease_seconds)
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO slots (persona, slot_key, claimed_at_utc, status, attempts,"
                " updated_at_utc, holder, lease_until_utc, sends)"
                " VALUES (?, ?, ?, 'claimed', 1, ?, ?, ?, 0)"
                " ON CONFLICT (persona, slot_key) DO NOTHING",
                (persona, slot_key, now, now, holder, until),
            )
            taken_over = False
            if cursor.rowcount != 1:
                cursor = db.execute(
                    "UPDATE slots SET holder = ?, lease_until_utc = ?, status = 'claimed',"
                    " attempts = attempts + 1, updated_at_utc = ?"
                    " WHERE persona = ? AND slot_key = ?"
                    " AND (status = 'failed' OR (status = 'claimed'"
                    " AND (lease_until_utc IS NULL OR lease_until_utc < ?)))",
                    (holder, until, now, persona, slot_key, now),
                )
                if cursor.rowcount != 1:
                    return None
                taken_over = True
            row = self.slot(persona, slot_key)
        assert row is not None  # written in this transaction
        return Claim(persona, slot_key, holder, taken_over, row)

    def _holder_update(self, claim: Claim, assignments: str, params: Iterable[Any]) -> bool:
        """UPDATE the claimed slot only while `claim` still holds a live lease."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE slots SET {assignments}, updated_at_utc = ?"
                " WHERE persona = ? AND slot_key = ? AND holder = ? AND status = 'claimed'"
                " AND lease_until_utc >= ?",
                (*params, now, claim.persona, claim.slot_key, claim.holder, now),
            )
            return cursor.rowcount == 1

    def renew(self, claim: Claim, lease_seconds: float = LEASE_SECONDS) -> bool:
        """Extend the lease; False when it was lost (expired and taken, or finished)."""
        return self._holder_update(claim, "lease_until_utc = ?", [self._lease_end(lease_seconds)])

    def write_ahead(
        self, claim: Claim, text: str, prompt: str | None, post_text: str | None = None
    ) -> bool:
        """Store the chosen text (and prompt) with the claim, before anything is sent;
        `post_text` is the text the post carries when it is not `text` (a tune's post,
        fixed once so every send of the slot carries the same words)."""
        return self._holder_update(claim, "text = ?, prompt = ?, post_text = ?",
                                   [text, prompt, post_text])  # fmt: skip

    def mark_sending(self, claim: Claim) -> bool:
        """Record that a send starts now: from here the post may reach the server, and a
        later attempt must reconcile before re-sending. False (send nothing) when the
        lease was lost."""
        now = self._ts()
        return self._holder_update(
            claim,
            "sent_at_utc = ?, first_sent_at_utc = COALESCE(first_sent_at_utc, ?),"
            " sends = sends + 1",
            [now, now],
        )

    def clear_sent(self, claim: Claim, previous: str | None) -> bool:
        """The server answered that the last send was not applied (e.g. 429, 422):
        put back what was known before it (`previous`: None = nothing may have landed,
        so the first send that may have, which bounds the slot's life, is forgotten too)."""
        if previous is None:
            return self._holder_update(claim, "sent_at_utc = NULL, first_sent_at_utc = NULL", [])
        return self._holder_update(claim, "sent_at_utc = ?", [previous])

    def mark_failed(self, claim: Claim) -> bool:
        """Release the slot for a later attempt (transient failure): the lease ends now."""
        return self._holder_update(claim, "status = 'failed', lease_until_utc = ?", [self._ts()])

    def finish_slot(self, claim: Claim, status: Literal["skipped", "unknown"]) -> bool:
        """End the slot without a post: skipped (nothing was published) or unknown (it may
        have been; never re-sent)."""
        return self._holder_update(claim, "status = ?, lease_until_utc = NULL", [status])

    def mark_slot(self, persona: str, slot_key: str, status: SlotStatus) -> None:
        """Set a slot's status regardless of holder (the daemon's backoff skip)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE slots SET status = ?, updated_at_utc = ? WHERE persona = ? AND slot_key = ?",
                (status, self._ts(), persona, slot_key),
            )

    def slot(self, persona: str, slot_key: str) -> SlotRow | None:
        rows = self._query(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE persona = ? AND slot_key = ?",
            (persona, slot_key),
        )
        return SlotRow(**dict(rows[0])) if rows else None

    def open_slots(self, persona: str, *, exclude_prefix: str = "reply:") -> list[SlotRow]:
        """The persona's slots left open (claimed with an expired lease, or failed),
        oldest first; slot keys starting with `exclude_prefix` are left out."""
        rows = self._query(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE persona = ?"
            " AND (status = 'failed' OR (status = 'claimed' AND lease_until_utc < ?))"
            " AND substr(slot_key, 1, ?) <> ? ORDER BY id",
            (persona, self._ts(), len(exclude_prefix), exclude_prefix),
        )
        return [SlotRow(**dict(row)) for row in rows]

    def unfinished_slots(self, persona: str, prefix: str) -> list[SlotRow]:
        """The persona's slots whose key starts with `prefix` that are not finished:
        claimed (a live lease or not) or failed; newest first. `bot post` finishes an
        interrupted manual post before it posts anew."""
        rows = self._query(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE persona = ?"
            " AND status IN ('claimed', 'failed') AND substr(slot_key, 1, ?) = ?"
            " ORDER BY id DESC",
            (persona, len(prefix), prefix),
        )
        return [SlotRow(**dict(row)) for row in rows]

    def slots_with_status(self, persona: str, status: SlotStatus, limit: int = 10) -> list[SlotRow]:
        """The persona's slots in `status`, newest first (e.g. `unknown` for `bot status`)."""
        rows = self._query(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE persona = ? AND status = ?"
            " ORDER BY id DESC LIMIT ?",
            (persona, status, limit),
        )
        return [SlotRow(**dict(row)) for row in rows]

    def slot_counts(self, persona: str) -> dict[str, int]:
        """status -> count of the persona's slots."""
        rows = self._query(
            "SELECT status, COUNT(*) AS n FROM slots WHERE persona = ? GROUP BY status"
            " ORDER BY status",
            (persona,),
        )
        return {row["status"]: row["n"] for row in rows}

    # --- posts and rejections ---------------------------------------------------------

    def record_post(
        self,
        persona: str,
        slot_key: str,
        text: str,
        receipt: Receipt,
        *,
        kind: PostKind = "post",
        rejections: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Store a published post (and the slot's rejected candidates) and mark the slot
        posted, in one transaction. Returns the post's row id. The post exists on the
        server, so this does not depend on holding the claim; a second record of the same
        (persona, slot, publisher) is ignored and returns the first row's id."""
        now = self._ts()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO posts (persona, slot_key, kind, text, publisher, remote_id, url,"
                " created_at_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (persona, slot_key, publisher) DO NOTHING RETURNING id",
                (persona, slot_key, kind, text, receipt.publisher, receipt.remote_id,
                 receipt.url, now),
            )  # fmt: skip
            inserted = cursor.fetchall()  # [] when the row was there already
            if not inserted:
                row = db.execute(
                    "SELECT id FROM posts WHERE persona = ? AND slot_key = ? AND publisher = ?",
                    (persona, slot_key, receipt.publisher),
                ).fetchone()
                self.mark_slot(persona, slot_key, "posted")
                return int(row[0])
            self.record_rejections(persona, slot_key, rejections)
            db.execute(
                "UPDATE slots SET status = 'posted', lease_until_utc = NULL, updated_at_utc = ?"
                " WHERE persona = ? AND slot_key = ?",
                (now, persona, slot_key),
            )
            return int(inserted[0][0])

    def record_rejections(
        self, persona: str, slot_key: str, rejections: Iterable[tuple[str, str]]
    ) -> None:
        """Store rejected candidates as (text, reason) pairs; reasons are stable names."""
        now = self._ts()
        rows = [(persona, slot_key, text, reason, now) for text, reason in rejections]
        if rows:
            with self.transaction() as db:
                db.executemany(
                    "INSERT INTO rejections (persona, slot_key, text, reason, created_at_utc)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

    def recent_posts(self, persona: str | None = None, limit: int = 10) -> list[PostRow]:
        """Newest first."""
        where, params = ("WHERE persona = ?", [persona]) if persona else ("", [])
        rows = self._query(
            f"SELECT id, persona, slot_key, kind, text, publisher, remote_id, url, created_at_utc"
            f" FROM posts {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [PostRow(**dict(row)) for row in rows]

    def recent_texts(self, persona: str, limit: int = 200) -> list[str]:
        """The persona's last `limit` posted texts, newest first (for the duplicate filter)."""
        rows = self._query(
            "SELECT text FROM posts WHERE persona = ? ORDER BY id DESC LIMIT ?", (persona, limit)
        )
        return [row["text"] for row in rows]

    def recent_rejections(self, persona: str, limit: int = 10) -> list[tuple[str, str, str]]:
        """The persona's last rejected candidates as (text, reason, created_at_utc), newest
        first (`bot report`)."""
        rows = self._query(
            "SELECT text, reason, created_at_utc FROM rejections WHERE persona = ?"
            " ORDER BY id DESC LIMIT ?",
            (persona, limit),
        )
        return [(row["text"], row["reason"], row["created_at_utc"]) for row in rows]

    def rejection_counts(self, persona: str) -> dict[str, int]:
        """reason -> count, most frequent first."""
        rows = self._query(
            "SELECT reason, COUNT(*) AS n FROM rejections WHERE persona = ?"
            " GROUP BY reason ORDER BY n DESC, reason",
            (persona,),
        )
        return {row["reason"]: row["n"] for row in rows}
