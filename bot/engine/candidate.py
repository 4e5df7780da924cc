"""A candidate post as the sampler scored it, and the verdict the filters gave it.

Here, below the filters, so that the text filters (bot/posting/filters.py) and the music
filters (bot/music/filters.py) share one shape.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    text: str
    mean_logprob: float  # nats/char; higher is more fluent
    stop: str = "eos"
    prompt: str = ""  # what the sampler was primed with
    critic: float | None = None  # the persona's critic: log-odds that the author wrote it

    @property
    def score(self) -> float:
        """What ranking maximises: the critic's log-odds where there is a critic, else the
        language model's mean log-probability."""
        return self.mean_logprob if self.critic is None else self.critic


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    reason: str | None  # None: accepted

    @property
    def ok(self) -> bool:
        return self.reason is None
