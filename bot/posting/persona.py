"""One persona: its model, prompts, filters, publisher and store, and the post pipeline.

    compose()  per post: a prompt -> sample a batch of candidates inside the corpus' words ->
               filter -> rank by the critic -> pick; repeat for a bounded number of rounds
               until enough survive. No network, no store writes (`bot preview`).
    wake(slot) claim the slot -> compose -> publish -> record, exactly once per slot
               (`bot post`, and every scheduled wake of `bot run`).

The model is held by a `ModelHandle` of the process-wide model cache (bot/engine/modelcache.py):
loaded on first use, shared by personas of one model folder, reloaded when the trainer
swaps models/<name>/, dropped when many other models were used since. Never imports
TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from bot import config as cfg
from bot.config import registry
from bot.core.errors import ModelError
from bot.core.faults import crash_point
from bot.core.log import event
from bot.core.post import Media, Post, Publisher
from bot.engine.candidate import Candidate
from bot.engine.card import ABC_LSTM, BARS_FILE
from bot.engine.modelcache import MODELS, Loaded, ModelHandle
from bot.music import tools as music_tools
from bot.music.filters import MusicRules, apply_music
from bot.music.novelty import load_bar_index
from bot.posting.compose import Composition, WakeResult, fill_prompt, join_post
from bot.posting.delivery import (
    Delivery,
    LeaseKeeper,
    Send,
    deliver,
    plain_wait,
    released_on_error,
)
from bot.posting.filters import Rules, apply, default_blocklist, rank
from bot.store import LEASE_SECONDS, Claim, Store

log = logging.getLogger(__name__)

MAX_SLOT_ATTEMPTS = 5  # attempts at one slot (claims and take-overs) before it is given up


class Persona:
    """A configured persona, ready to compose and (given a store and publisher) to post."""

    def __init__(
        self,
        settings: cfg.PersonaSettings,
        *,
        store: Store | None = None,
        publisher: Publisher | None = None,
        rng: np.random.Generator | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        model: ModelHandle | None = None,
        length: Callable[[str], int] = len,
        max_chars: int | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.store = store
        self.publisher = publisher
        self.rng = rng if rng is not None else np.random.default_rng()
        self.now = now
        self.model = model or MODELS.handle(settings.model)
        self.length = length
        self._max_chars = max_chars
        self.lease_seconds = lease_seconds
        blocklist = list(settings.filters.blocklist)
        if settings.filters.default_blocklist:
            blocklist += default_blocklist()
        self._blocklist = blocklist

    def max_chars(self) -> int:
        limit = self.settings.filters.max_chars
        if self._max_chars is not None:
            return min(limit, self._max_chars)
        if self.publisher is not None:
            return min(limit, self.publisher.max_chars())
        fixed = registry.of(self.settings).fixed_limit  # a dry run: the network's own rule
        return min(limit, fixed) if fixed is not None else limit

    def rules(self, history: list[str], loaded: Loaded) -> Rules:
        f = self.settings.filters
        return Rules(
            min_chars=f.min_chars,
            max_chars=self.max_chars(),
            length=self.length,
            blocklist=self._blocklist,
            novelty_index=loaded.novelty_index,
            novelty_n=loaded.sampler.card.novelty_n,
            novelty_words=f.novelty_words,
            history=history,
            duplicate_jaccard=f.duplicate_jaccard,
            mentions=f.mentions,
            urls=f.urls,
        )

    def is_music(self, loaded: Loaded | None = None) -> bool:
        """A music persona (card kind abc_lstm): tunes, music filters, sound and score."""
        kind = loaded.sampler.card.kind if loaded is not None else self.model.kind()
        return kind == ABC_LSTM  # the card alone when not loaded: a wake loads only to sample

    def music_rules(self, history: list[str]) -> MusicRules:
        return MusicRules(phrase_index=load_bar_index(self.settings.model / BARS_FILE),
                          history=history)  # fmt: skip

    def pick_prompt(self) -> str:
        prompts = self.settings.prompts
        if not prompts:
            return ""
        local = self.now().astimezone(ZoneInfo(self.settings.schedule.timezone))
        return fill_prompt(prompts[int(self.rng.integers(len(prompts)))], local)

    def compose(
        self,
        *,
        want: int = 1,
        prompt: str | None = None,
        history: list[str] | None = None,
        candidates: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Composition:
        """`want` posts, each primed by its own prompt: sample a batch (inside the corpus'
        words unless `vocabulary: any`), filter, rank by the critic where the persona has one,
        pick; a round that leaves no survivor is sampled again, within the round budget.
        Waits for a place among the model cache's workers first (bot/engine/modelcache.py)."""
        with self.model.at_work():
            s = self.settings
            loaded = self.model.get()
            if history is None:
                store = self.store
                history = store.recent_texts(self.name, s.filters.history) if store else []
            music = self.is_music(loaded)
            rules = self.rules(history, loaded)
            tune_rules = self.music_rules(history) if music else None
            n = candidates or s.candidates
            constraint = loaded.words if s.vocabulary == "known" and not music else None
            critic = loaded.critic if s.critic and not music else None
            comp = Composition(prompt="", unknown_chars=[])
            # a tune's length is its own (the post carries sound and score, the ABC if it fits)
            limit = s.filters.max_chars if music else self.max_chars()
            rounds_left = s.max_rounds + want - 1
            while len(comp.chosen) < want and rounds_left > 0:
                this_prompt = prompt if prompt is not None else self.pick_prompt()
                survivors: list[Candidate] = []
                while not survivors and rounds_left > 0:
                    rounds_left -= 1
                    comp.rounds += 1
                    primed = loaded.sampler.prime(this_prompt)
                    comp.unknown_chars = sorted(set(comp.unknown_chars) | set(primed.unknown))
                    budget = limit - (len(this_prompt) if s.include_prompt or music else 0)
                    samples = loaded.sampler.generate(
                        this_prompt,
                        n=n,
                        max_chars=max(budget, 1),
                        temperature=s.temperature if temperature is None else temperature,
                        top_k=s.top_k if top_k is None else top_k,
                        top_p=s.top_p if top_p is None else top_p,
                        rng=self.rng,
                        primed=primed,
                        constraint=constraint,
                    )
                    cands = [
                        Candidate(
                            (this_prompt + x.text).strip()
                            if music  # a prompt opens the tune
                            else join_post(this_prompt, x.text, s.include_prompt),
                            x.mean_logprob,
                            x.stop,
                            prompt=this_prompt,
                        )
                        for x in samples
                    ]
                    verdicts = apply_music(cands, tune_rules) if tune_rules else apply(cands, rules)
                    comp.verdicts += verdicts
                    survivors = [v.candidate for v in verdicts if v.ok]
                if not survivors:
                    break
                if critic is not None:
                    scores = critic.score([c.text for c in survivors])
                    pairs = zip(survivors, scores, strict=True)
                    survivors = [replace(c, critic=float(x)) for c, x in pairs]
                pick = rank(survivors, s.ranking, self.rng)[0]
                comp.chosen.append(pick)
                comp.prompt = comp.prompt or this_prompt
                rules.remember(pick.text)  # later posts of this compose never repeat it
                if tune_rules is not None:
                    tune_rules.remember(pick.text)
            return comp

        # -- posting -------------------------------------------------------------------------

    def _post_text(self, text: str) -> str | None:
        """What the post for a chosen `text` carries when not `text`: a tune's title and ABC
        (or description) as the publisher's limit allows now. Written ahead with the tune,
        once: the limit changes (a stand-in, a limit learnt from a refusal), a post may not."""
        if not self.is_music():
            return None
        from bot.music.post import post_text

        limit = self.publisher.max_chars() if self.publisher is not None else self.max_chars()
        return post_text(text, limit, self.length)

    def _post(
        self, text: str, slot_key: str, *, post_text: str | None = None, with_media: bool = True
    ) -> Post:
        """The Post for a slot's written-ahead text. A music persona's text is the tune:
        the post is `post_text` (written ahead; made now for an older slot) with the sound
        and score, the same for every retry of the slot. Without media (rendering failed
        and `media_fallback: notation`, or only reconciling) it is the text alone. Raises
        ToolError when the tune cannot be rendered and the persona may not go without."""
        s = self.settings
        media: tuple[Media, ...] = ()
        if self.is_music():
            from bot.music.post import carries_notation, media_folder, media_taken, render_media

            tune = text
            text = post_text or self._post_text(tune) or tune
            if with_media:
                try:
                    media = render_media(tune, media_folder(self.name), slot_key)
                except music_tools.ToolError:
                    if s.media_fallback != "notation" or not carries_notation(text):
                        raise
                    event(log, "media_skipped", logging.WARNING, persona=self.name,
                          slot=slot_key, why="render_failed", fallback="notation")  # fmt: skip
            publisher = self.publisher.name if self.publisher is not None else s.publisher
            media = media_taken(media, publisher, self.name, slot_key)
        return Post(
            persona=self.name,
            text=text,
            idempotency_key=f"revenant:{self.name}:{slot_key}",
            visibility=s.visibility,
            spoiler_text=s.spoiler_text,
            language=s.language,
            sensitive=s.sensitive,
            media=media,
        )

    def wake(
        self,
        slot_key: str,
        *,
        publish: Send | None = None,
        late_grace: timedelta | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> WakeResult:
        """One slot, exactly once: claim -> compose (written ahead) -> send -> record.

        The claim is leased and renewed while this runs (bot/posting/delivery.py). A slot taken
        over from a crashed or failed attempt resumes it: the written-ahead text is sent
        again (never a new one), after a look among the account's posts when the earlier
        send may have reached the server. A slot taken over more than `late_grace` (the
        schedule's misfire grace) after it was first claimed is recorded as skipped, not
        posted late. `wait(seconds)` waits for a send to settle; True = cut short."""
        store, publisher = self.store, self.publisher
        if store is None or publisher is None:
            raise RuntimeError("wake() needs a store and a publisher")
        self.recover(before=slot_key, wait=wait or plain_wait)
        claim = store.claim_slot(self.name, slot_key, lease_seconds=self.lease_seconds)
        if claim is None:
            event(log, "slot_skipped", persona=self.name, slot=slot_key, why="already_claimed")
            return WakeResult(slot_key, "already_claimed")
        crash_point("after_claim")
        with (
            LeaseKeeper(store, claim, self.lease_seconds) as keeper,
            released_on_error(store, claim),
        ):
            return self._resume(claim, keeper, publish, late_grace, wait or plain_wait)

    def recover(
        self, *, before: str | None = None, wait: Callable[[float], bool] = plain_wait
    ) -> int:
        """Close earlier slots a crash left open (not `before`, the one about to be
        woken): a post that may have reached the server is looked for and recorded if
        found; otherwise the slot is skipped (it is past, not posted late). Returns how
        many were closed. Runs at the start of every wake."""
        store, publisher = self.store, self.publisher
        assert store is not None and publisher is not None
        closed = 0
        for row in store.open_slots(self.name):
            if row.slot_key == before:
                continue
            claim = store.claim_slot(self.name, row.slot_key, lease_seconds=self.lease_seconds)
            if claim is None:
                continue
            with (
                LeaseKeeper(store, claim, self.lease_seconds) as keeper,
                released_on_error(store, claim),
            ):
                if claim.text is None:
                    self._end_without_post(claim, "late")
                else:
                    post = self._post(claim.text, claim.slot_key, post_text=claim.post_text,
                                      with_media=False)  # fmt: skip
                    done = deliver(store, publisher, claim, post, keeper=keeper, kind="publish",
                                   now=self.now, wait=wait, may_send=False)  # fmt: skip
                    self._finish(claim, post, done, [], {}, stop="late")
            closed += 1
        return closed

    def _resume(
        self,
        claim: Claim,
        keeper: LeaseKeeper,
        publish: Send | None,
        late_grace: timedelta | None,
        wait: Callable[[float], bool],
    ) -> WakeResult:
        store, publisher, slot_key = self.store, self.publisher, claim.slot_key
        assert store is not None and publisher is not None
        stop = None
        first_claimed = datetime.fromisoformat(claim.row.claimed_at_utc)
        if claim.taken_over and late_grace is not None and self.now() > first_claimed + late_grace:
            stop = "late"
        elif claim.attempts > MAX_SLOT_ATTEMPTS:
            stop = "gave_up"
        if claim.taken_over:
            event(log, "slot_resumed", persona=self.name, slot=slot_key, attempt=claim.attempts,
                  written_ahead=claim.text is not None,
                  may_have_been_sent=claim.sent_at_utc is not None)  # fmt: skip
        rejected: list[tuple[str, str]] = []
        counts: dict[str, int] = {}
        text, post_text = claim.text, claim.post_text
        if text is None:
            if stop is not None:
                return self._end_without_post(claim, stop)
            try:
                comp = self.compose()
            except ModelError as err:
                store.record_failure(self.name, slot_key, "model", str(err), transient=True)
                store.mark_failed(claim)
                raise
            rejected = [(v.candidate.text, v.reason or "") for v in comp.rejected]
            counts = comp.reason_counts()
            if not comp.chosen:
                store.record_rejections(self.name, slot_key, rejected)
                store.finish_slot(claim, "skipped")
                event(log, "no_candidate", logging.WARNING, persona=self.name, slot=slot_key,
                      rounds=comp.rounds, **{f"rejected_{k}": v for k, v in counts.items()})  # fmt: skip
                return WakeResult(slot_key, "no_candidate", reasons=counts)
            text = comp.chosen[0].text
            post_text = self._post_text(text)
            if not store.write_ahead(claim, text, comp.prompt, post_text):
                return WakeResult(slot_key, "already_claimed", error="lease lost")
            crash_point("after_compose")
        try:
            post = self._post(text, slot_key, post_text=post_text, with_media=stop is None)
        except music_tools.ToolError as err:
            return self._media_failed(claim, err)
        for recomposed in (False, True):
            done = deliver(store, publisher, claim, post, keeper=keeper, kind="publish",
                           publish=publish, now=self.now, wait=wait,
                           may_send=stop is None)  # fmt: skip
            if done.outcome != "too_long" or recomposed:
                break
            # Refused for length: the publisher has learnt the lower limit; compose once
            # more within it (nothing was sent, so a new text is safe) and send that.
            comp = self.compose()
            if not comp.chosen:
                break
            text = comp.chosen[0].text
            post_text = self._post_text(text)
            if not store.write_ahead(claim, text, comp.prompt, post_text):
                break
            try:
                post = self._post(text, slot_key, post_text=post_text)
            except music_tools.ToolError as err:
                return self._media_failed(claim, err)
        for media in post.media:  # rendered for this send; a retry renders them again
            media.path.unlink(missing_ok=True)
        return self._finish(claim, post, done, rejected, counts, stop=stop)

    def _media_failed(self, claim: Claim, err: music_tools.ToolError) -> WakeResult:
        """A tune that cannot be rendered is not posted (media_fallback: skip): the slot
        ends skipped, the failure names the tool."""
        assert self.store is not None
        hint = f"install the audio tools: {music_tools.INSTALL}, or set media_fallback: notation"
        self.store.record_failure(self.name, claim.slot_key, "media", str(err), transient=False)
        self.store.finish_slot(claim, "skipped")
        event(log, "media_failed", logging.ERROR, persona=self.name, slot=claim.slot_key,
              error=str(err))  # fmt: skip
        return WakeResult(claim.slot_key, "failed", error=str(err), hint=hint)

    def _end_without_post(self, claim: Claim, why: str) -> WakeResult:
        assert self.store is not None
        self.store.finish_slot(claim, "skipped")
        detail = ("taken over after the misfire grace: not posted late" if why == "late"
                  else f"{claim.attempts - 1} attempts failed")  # fmt: skip
        self.store.record_failure(self.name, claim.slot_key, why, detail, transient=False)
        event(log, "slot_skipped", logging.WARNING, persona=self.name, slot=claim.slot_key,
              why=why)  # fmt: skip
        return WakeResult(claim.slot_key, why)

    def _finish(
        self,
        claim: Claim,
        post: Post,
        done: Delivery,
        rejected: list[tuple[str, str]],
        counts: dict[str, int],
        *,
        stop: str | None = None,
    ) -> WakeResult:
        store, slot_key = self.store, claim.slot_key
        assert store is not None
        err = done.error
        if done.outcome == "posted" and done.receipt is not None:
            receipt = done.receipt
            store.record_post(self.name, slot_key, post.text, receipt, rejections=rejected)
            crash_point("after_record")
            event(log, "posted", persona=self.name, slot=slot_key, publisher=receipt.publisher,
                  id=receipt.remote_id, url=receipt.url or "", chars=len(post.text),
                  found=done.found)  # fmt: skip
            return WakeResult(slot_key, "posted", text=post.text, receipt=receipt,
                              reasons=counts)  # fmt: skip
        if done.outcome == "skipped":
            return self._end_without_post(claim, stop or "late")
        if done.outcome == "lost":
            return WakeResult(slot_key, "already_claimed", error="lease lost")
        if done.outcome == "unknown":
            return WakeResult(slot_key, "unknown", text=post.text,
                              error=err.message if err else None)  # fmt: skip
        if done.outcome == "too_long" and err is not None:  # refused twice: give the slot up
            store.record_failure(self.name, slot_key, "publish", str(err), transient=False)
            store.finish_slot(claim, "skipped")
        message = err.message if err else "not published"
        event(log, "publish_failed", logging.ERROR, persona=self.name, slot=slot_key,
              transient=bool(err and err.transient), error=message)  # fmt: skip
        return WakeResult(slot_key, "failed", text=post.text, error=message,
                          hint=err.hint if err else None)  # fmt: skip
