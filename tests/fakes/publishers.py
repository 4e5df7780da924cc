"""A publisher shape for tests that need a network to misbehave in one way (a slow answer,
a refusal): the outbox's name and rules (500 characters, keys kept for ever), nothing to
look for. Subclasses say how `publish` behaves."""

from __future__ import annotations

from bot.core.post import Post, Receipt


class StandInPublisher:
    name = "outbox"
    settle_seconds = 0.0
    key_lifetime = None

    def max_chars(self) -> int:
        return 500

    def length(self, text: str, spoiler_text: str = "") -> int:
        return len(text) + len(spoiler_text)

    def find(self, post: Post, since: object) -> Receipt | None:
        return None

    def publish(self, post: Post) -> Receipt:
        raise NotImplementedError  # each test's subclass decides
