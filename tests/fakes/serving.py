"""A session's server fixture: start it, hand it to the tests, stop it; a server that
cannot start fails the test with its own one-line reason (no exception chain)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def serve(
    manager: AbstractContextManager[T], unavailable: type[Exception], started: list[float]
) -> Iterator[T]:
    """`yield from serve(...)` in a fixture: enter `manager`, record its startup_seconds in
    `started` (the session summary line), yield it, exit it at the end."""
    try:
        running: Any = manager.__enter__()
    except unavailable as err:
        problem = str(err)
    else:
        started.append(running.startup_seconds)
        try:
            yield running
        finally:
            manager.__exit__(None, None, None)
        return
    pytest.fail(problem, pytrace=False)  # outside the except: one message, no chain
