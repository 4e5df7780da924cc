"""Errors a user can cause, each carrying the fix.

Library code raises these; only `cli.py` turns them into one line and exit code 1.
Anything that is not a `BotError` is a bug and may show a traceback.
"""


class BotError(Exception):
    """Base: `message` says what is wrong, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(BotError, ValueError):
    """config.yaml is unreadable, has an unknown key or a bad value."""


class ModelError(BotError):
    """A persona artifact (models/<name>/) is missing, truncated or inconsistent."""


class CorpusError(BotError, ValueError):
    """A training corpus is empty, binary, not UTF-8 or in an unknown format."""


class StoreError(BotError):
    """The state database (SQLite file or PostgreSQL) cannot be opened or migrated."""


class PublishError(BotError):
    """A publisher failed. `transient` errors keep the slot and retry it later.

    `status_code` is the HTTP status when the target answered (None for network errors);
    `retry_after` is how many seconds the target asked us to wait (a rate limit's reset),
    None when it did not say. `maybe_sent` is True when the post may exist on the server
    all the same (a timeout, a 5xx after the request was sent): it is never re-sent
    before the account's own statuses were looked at. `too_long` marks a refusal for
    length (the publisher has learnt the lower limit).
    """

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        transient: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        too_long: bool = False,
    ) -> None:
        super().__init__(message, hint)
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.too_long = too_long
