"""The persona artifact: what `bot train` writes to models/<name>/ and the sampler reads.

    models/<name>/
      model.keras   standard Keras 3 zip (config.json + model.weights.h5)
      card.json     model kind, vocabulary, special tokens, architecture, training, corpus,
                    metrics
      ngrams.npy    sorted uint64 hashes of the corpus's word n-grams (novelty filter)
      words.npz     the training text's words as a trie (bot.engine.vocab.WordTrie): decoding
                    that cannot invent a word
      critic.npz    the critic that ranks candidates (bot/engine/critic.py)
      loss.png      training and validation curves
      bars.npy      (abc_lstm) sorted uint64 hashes of the corpus's 4-bar phrases (bot/music)

Shared by the trainer and the online path, so it must never import TensorFlow or Keras.
Token ids: 0 is the end-of-post token, 1 the unknown-character token, 2.. single characters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.core.errors import ModelError

CARD_FORMAT = 1
CHAR_LSTM = "char_lstm"  # the model kind of every card before #18, which named none
ABC_LSTM = "abc_lstm"  # a char LSTM over ABC tunes: music filters, posts with sound and score
CHAR_LSTM_KINDS = (CHAR_LSTM, ABC_LSTM)  # kinds whose model.keras the NumPy sampler runs
CARD_FILE = "card.json"
MODEL_FILE = "model.keras"
NGRAMS_FILE = "ngrams.npy"
WORDS_FILE = "words.npz"  # the corpus' words as a trie (bot.engine.vocab): constrained decoding
LOSS_PLOT_FILE = "loss.png"
BARS_FILE = "bars.npy"  # abc_lstm: the corpus's 4-bar phrases, transposition-invariant

EOS = 0  # end of post: the model learns where a post ends
UNK = 1  # a character too rare to get its own id
SPECIAL_TOKENS = {"eos": EOS, "unk": UNK}
N_SPECIAL = len(SPECIAL_TOKENS)

# Optional typographic normalisation: fewer rare characters, same voice.
NORMALISE = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2013": "-", "\u2014": "--", "\u2015": "--", "\u2212": "-",
        "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ",
        "\ufeff": "", "\r": "",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Architecture:
    vocab_size: int
    n_embd: int  # embedding width
    n_hidden: int  # LSTM units per layer
    n_layer: int  # stacked LSTM layers
    dropout: float


@dataclass(frozen=True)
class PersonaCard:
    """card.json, read and written in one place."""

    name: str
    chars: list[str]  # id -> character for ids >= N_SPECIAL
    architecture: Architecture
    training: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    curation: dict[str, Any] = field(default_factory=dict)  # word list and critic (curate.py)
    versions: dict[str, str] = field(default_factory=dict)
    novelty_n: int = 8  # words per n-gram in ngrams.npy
    created_at_utc: str = ""
    format: int = CARD_FORMAT
    kind: str = CHAR_LSTM  # which engine runs it (bot/engine/engines.py); absent in old cards

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.chars)

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i + N_SPECIAL for i, ch in enumerate(self.chars)}

    @property
    def itos(self) -> list[str]:
        return ["", "\ufffd", *self.chars]

    def to_json(self) -> str:
        data = asdict(self)
        data["special_tokens"] = SPECIAL_TOKENS
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def write(self, directory: Path) -> None:
        (directory / CARD_FILE).write_text(self.to_json(), encoding="utf-8")


def read_kind(directory: Path) -> str:
    """The model kind card.json names, char_lstm when it names none (cards before #18).
    A missing or unreadable card also reads as char_lstm: its loader reports it."""
    try:
        data = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return CHAR_LSTM
    kind = data.get("kind", CHAR_LSTM) if isinstance(data, dict) else CHAR_LSTM
    if not isinstance(kind, str) or not kind:
        raise ModelError(
            f"{directory / CARD_FILE}: kind must be a model kind name (got {kind!r})",
            "retrain the persona",
        )
    return kind


def read_card(directory: Path) -> PersonaCard:
    """Read and check models/<name>/card.json; any problem is one ModelError line."""
    path = directory / CARD_FILE
    if not path.is_file():
        raise ModelError(
            f"{path}: no persona card",
            f"train the persona with `bot train -p {directory.name}` or fix the model path",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CARD_FORMAT:
            raise ModelError(
                f"{path}: card format {data.get('format')!r}, this bot reads {CARD_FORMAT}",
                "retrain the persona with this version of `bot train`",
            )
        data.pop("special_tokens", None)
        arch = Architecture(**data.pop("architecture"))
        card = PersonaCard(architecture=arch, **data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not valid JSON ({err})", "retrain or restore the file") from err
    except (TypeError, KeyError, AttributeError) as err:
        raise ModelError(f"{path}: unexpected fields ({err})", "retrain the persona") from err
    if card.vocab_size != arch.vocab_size:
        raise ModelError(
            f"{path}: {len(card.chars)} characters + {N_SPECIAL} special tokens "
            f"!= vocab_size {arch.vocab_size}",
            "the card does not belong to this model; retrain the persona",
        )
    return card
