"""The card names the model kind; one factory builds the engine for it (#18)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.errors import ModelError
from bot.engine import engines
from bot.engine.card import CARD_FILE, CHAR_LSTM, read_card, read_kind
from bot.engine.sampler import Sampler
from bot.posting.persona import ModelHandle

TINY = Path(__file__).parent / "data" / "tiny_persona"


def set_kind(directory: Path, kind: object) -> None:
    path = directory / CARD_FILE
    card = json.loads(path.read_text(encoding="utf-8"))
    card["kind"] = kind
    path.write_text(json.dumps(card), encoding="utf-8")


def test_an_old_card_without_kind_reads_as_char_lstm() -> None:
    assert "kind" not in json.loads((TINY / CARD_FILE).read_text(encoding="utf-8"))
    assert read_kind(TINY) == CHAR_LSTM and read_card(TINY).kind == CHAR_LSTM
    assert isinstance(engines.load_engine(TINY), Sampler)


def test_a_new_card_names_its_kind(make_persona: Callable[..., Path], tmp_path: Path) -> None:
    card = read_card(TINY)
    assert json.loads(card.to_json())["kind"] == CHAR_LSTM
    directory = make_persona("ada")
    set_kind(directory, "char_lstm")
    assert ModelHandle(directory).get().sampler.card.kind == CHAR_LSTM


def test_unknown_kind_is_one_line(make_persona: Callable[..., Path]) -> None:
    directory = make_persona("ada")
    set_kind(directory, "transformer")
    for load in (engines.load_engine, lambda d: ModelHandle(d).get()):
        with pytest.raises(ModelError) as info:
            load(directory)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{directory / CARD_FILE}: unknown model kind 'transformer'")
    with pytest.raises(ModelError, match="is not char_lstm"):
        Sampler.load(directory)


def test_kind_must_be_a_name(make_persona: Callable[..., Path]) -> None:
    directory = make_persona("ada")
    set_kind(directory, 3)
    with pytest.raises(ModelError, match="kind must be a model kind name"):
        engines.load_engine(directory)


def test_a_registered_kind_is_built_by_its_factory(make_persona: Callable[..., Path]) -> None:
    directory = make_persona("ada")
    set_kind(directory, "echo")
    built: list[Path] = []

    def echo(path: Path) -> Sampler:
        built.append(path)
        set_kind(path, CHAR_LSTM)  # a stand-in engine: the char LSTM under another name
        return Sampler.load(path)

    engines.register("echo", echo)
    try:
        assert "echo" in engines.kinds()
        assert isinstance(ModelHandle(directory).get().sampler, Sampler)
        assert built == [directory]
    finally:
        engines.unregister("echo")
    assert "echo" not in engines.kinds()
