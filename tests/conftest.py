"""Shared fixtures. Every test gets its own REVENANT_HOME and REVENANT_CONFIG under tmp_path
(llm's `env_setup`), so no test reads ./config.yaml or writes ./var."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.card import MODEL_FILE, Architecture, PersonaCard

MINIMAL_CONFIG = """\
personas:
  ada:
    model: models/ada
"""


@pytest.fixture(autouse=True)
def env_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVENANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REVENANT_CONFIG", str(tmp_path / "config.yaml"))
    for name in ("MASTODON_ACCESS_TOKEN", "MASTODON_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Where REVENANT_CONFIG points (not written until `write_config`)."""
    return tmp_path / "config.yaml"


@pytest.fixture
def write_config(config_file: Path) -> Callable[[str], Path]:
    """Write YAML (dedented) to the config file and return its path."""

    def write(text: str) -> Path:
        config_file.write_text(textwrap.dedent(text), encoding="utf-8")
        return config_file

    return write


def fake_persona_dir(directory: Path, *, with_model: bool = True) -> Path:
    """A models/<name>/ folder with a valid card.json and (by default) a placeholder
    model.keras: enough for config and `bot check`, not for sampling."""
    directory.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz .,!?'")
    card = PersonaCard(
        name=directory.name,
        chars=chars,
        architecture=Architecture(
            vocab_size=len(chars) + 2, n_embd=16, n_hidden=32, n_layer=1, dropout=0.0
        ),
        metrics={"val_bits_per_char": 2.5},
        created_at_utc="2025-01-01T00:00:00Z",
    )
    card.write(directory)
    if with_model:
        (directory / MODEL_FILE).write_bytes(b"placeholder, not a real Keras file")
    return directory


@pytest.fixture
def make_persona(tmp_path: Path) -> Callable[..., Path]:
    """make_persona("ada") -> tmp_path/models/ada with a fake card (see fake_persona_dir)."""

    def make(name: str = "ada", *, with_model: bool = True) -> Path:
        return fake_persona_dir(tmp_path / "models" / name, with_model=with_model)

    return make


@pytest.fixture
def ada_config(write_config: Callable[[str], Path], make_persona: Callable[..., Path]) -> Path:
    """A valid one-persona config (ada, outbox) with its fake model folder."""
    make_persona("ada")
    return write_config(MINIMAL_CONFIG)
