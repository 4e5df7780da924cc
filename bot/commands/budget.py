"""How `bot new --minutes` is shared: the budget bounds the whole command, so training gets
what the critic and the eval will not need (#26, point 18).

The critic's and the eval's times are estimates from their counts (`--critic-samples`,
`--eval-posts`), at rates measured for the default 3 x LSTM(256) on the project's 2 shared
CPU cores (BENCHMARKS.md: 1,500 critic candidates in 43 s, a wake in 0.80 s). The scrape of
the corpus phase goes at the network's pace and is not counted. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.errors import BotError

CRITIC_SECONDS_PER_SAMPLE = 0.03  # 1,500 surviving candidates in 43 s
AFTER_TRAINING_SECONDS = 20.0  # export, n-gram index, loss plot, samples, word list
EVAL_SECONDS_PER_POST = 0.8  # one wake: 64 candidates, filters, the critic's pick
EVAL_FIXED_SECONDS = 15.0  # word lists, held-out loss, the judges, the preview
MIN_TRAIN_SHARE = 0.1  # training gets at least this share of --minutes, or it is refused


@dataclass(frozen=True)
class Plan:
    """--minutes split into training, then the critic and the eval (their estimates)."""

    minutes: float
    critic_samples: int
    eval_posts: int

    @property
    def critic_s(self) -> float:
        return AFTER_TRAINING_SECONDS + self.critic_samples * CRITIC_SECONDS_PER_SAMPLE

    @property
    def eval_s(self) -> float:
        return EVAL_FIXED_SECONDS + self.eval_posts * EVAL_SECONDS_PER_POST

    @property
    def train_minutes(self) -> float:
        """Training's share, rounded to hundredths as it is shown."""
        return round(self.minutes - (self.critic_s + self.eval_s) / 60, 2)

    def check(self) -> Plan:
        """The plan itself; a BotError when the critic and the eval leave training too little."""
        if self.train_minutes < self.minutes * MIN_TRAIN_SHARE:
            need = (self.critic_s + self.eval_s) / 60
            least = need / (1 - MIN_TRAIN_SHARE)
            raise BotError(
                f"--minutes {self.minutes:g} leaves too little time to train: the critic "
                f"({self.critic_samples:,} samples) and the eval ({self.eval_posts:,} posts) "
                f"need about {need:.1f} min",
                f"give --minutes {least:.1f} or more, or fewer --critic-samples and --eval-posts",
            )
        return self

    def describe(self, spent_s: float = 0.0) -> str:
        """One line for the start of `bot new`; `spent_s`: training done before an interruption."""
        left = f" ({self.left(spent_s):.2f} left)" if spent_s else ""
        return (
            f"plan: {self.minutes:g} min in all: {self.train_minutes:g} min of training{left}, "
            f"then ~{_span(self.critic_s)} for the critic ({self.critic_samples:,} samples) "
            f"and ~{_span(self.eval_s)} for the eval ({self.eval_posts:,} posts)"
        )

    def left(self, spent_s: float) -> float:
        """Minutes of training left after `spent_s` seconds of it."""
        return max(self.train_minutes - spent_s / 60, 0.0)


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
