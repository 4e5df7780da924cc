"""One factory builds a persona's engine for the model kind its card names.

    sampler = load_engine(Path("models/ada"))    # card.json "kind": "char_lstm" (the default)

Two kinds run the NumPy sampler (bot/engine/sampler.py) over model.keras: `char_lstm` (prose)
and `abc_lstm` (ABC tunes; the persona applies the music filters and posts sound and
score, bot/music/).
The critic is not a kind: it is an optional companion file (critic.npz) of a persona of
any kind. A new kind registers a factory that returns an engine with the sampler's
interface; an unknown kind is one ModelError line naming it. Never imports TensorFlow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from bot.core.errors import ModelError
from bot.engine.card import ABC_LSTM, CARD_FILE, CHAR_LSTM, read_kind
from bot.engine.sampler import Sampler

Factory = Callable[[Path], Sampler]

_FACTORIES: dict[str, Factory] = {CHAR_LSTM: Sampler.load, ABC_LSTM: Sampler.load}
_lock = threading.Lock()


def register(kind: str, factory: Factory) -> None:
    """Add (or replace) the factory for `kind`."""
    with _lock:
        _FACTORIES[kind] = factory


def unregister(kind: str) -> None:
    with _lock:
        _FACTORIES.pop(kind, None)


def kinds() -> tuple[str, ...]:
    with _lock:
        return tuple(_FACTORIES)


def load_engine(directory: Path) -> Sampler:
    """The engine for the model in `directory`, built by its kind's factory."""
    kind = read_kind(directory)
    with _lock:
        factory = _FACTORIES.get(kind)
    if factory is None:
        raise ModelError(
            f"{directory / CARD_FILE}: unknown model kind {kind!r}",
            f"this bot runs {', '.join(kinds())}; retrain the persona or upgrade the bot",
        )
    return factory(directory)
