"""Corpus -> token ids: read files, split train/validation, build the vocabulary, encode.

Plain text (files or folders of .txt) loses what a printed book carries besides the author's
prose: a Project Gutenberg header and licence, front matter, contents, headings, section numbers,
footnotes, notes and speaker headings, and capitals for emphasis are folded (bot/corpus/hygiene.py).
It is split into paragraphs at blank lines, hard-wrapped lines are joined (bot/corpus/text.py, as
`bot scrape text` does), and each paragraph becomes a document; JSONL files (one post per line with
a "text" field, as `bot scrape` writes) give one document per post. Every document ends with
the end-of-post token, so the model learns where a post ends.

Validation is held out before anything else: the last `val_fraction` of each text file, and a
seeded random `val_fraction` of the posts. No held-out character is ever trained on.
Pure Python + NumPy; TensorFlow is not needed here.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.core.errors import CorpusError
from bot.corpus import read_jsonl
from bot.corpus.hygiene import clean_book
from bot.corpus.text import read_text, split_paragraphs
from bot.engine.card import EOS, N_SPECIAL, NORMALISE, UNK

TEXT_SUFFIXES = {".txt", ".text"}  # what a folder contributes; named files may be anything
POST_SUFFIXES = {".jsonl", ".ndjson"}
MIN_CHARS_WARNING = 100_000  # the Keras example's advice: ~100k chars at least, ~1M better


@dataclass
class Corpus:
    """Documents split into training and validation, plus what the trainer must report."""

    train: list[str]
    val: list[str]
    files: list[str] = field(default_factory=list)
    sha256: str = ""
    n_bytes: int = 0

    @property
    def n_chars(self) -> int:
        return sum(map(len, self.train)) + sum(map(len, self.val))


@dataclass(frozen=True)
class Vocab:
    chars: list[str]  # id - N_SPECIAL -> character
    unknown: dict[str, int]  # rare characters and their counts
    rare: str  # "unk" (map to the unknown token) or "drop"

    def encode(self, docs: list[str]) -> np.ndarray:
        """Documents -> one int32 stream, each document followed by EOS."""
        stoi = {ch: i + N_SPECIAL for i, ch in enumerate(self.chars)}
        out: list[int] = []
        for doc in docs:
            if self.rare == "drop":
                out.extend(stoi[ch] for ch in doc if ch in stoi)
            else:
                out.extend(stoi.get(ch, UNK) for ch in doc)
            out.append(EOS)
        return np.asarray(out, dtype=np.int32)


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in TEXT_SUFFIXES | POST_SUFFIXES
                and not p.name.startswith(".")
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"{path}: no such file or folder", "check the --corpus path")
    if not files:
        raise CorpusError(
            f"no text or JSONL files under {', '.join(map(str, paths))}",
            "pass .txt files, folders of them, or .jsonl posts",
        )
    return files


def load_corpus(
    paths: list[Path],
    *,
    val_fraction: float = 0.05,
    normalise: bool = True,
    seed: int = 1337,
) -> Corpus:
    """Read every file once, hold out validation text, split into documents."""
    sha = hashlib.sha256()
    train: list[str] = []
    val: list[str] = []
    n_bytes = 0
    files = _expand(paths)
    rng = random.Random(seed)
    for path in files:
        n_bytes += path.stat().st_size
        sha.update(path.read_bytes())
        if path.suffix.lower() in POST_SUFFIXES:
            posts = [d.text.strip() for d in read_jsonl(path) if d.text.strip()]
            if normalise:
                posts = [p.translate(NORMALISE) for p in posts]
            for post in posts:
                (val if rng.random() < val_fraction else train).append(post)
        else:
            text = clean_book(read_text(path))
            if normalise:
                text = text.translate(NORMALISE)
            paras = split_paragraphs(text)
            # Hold out the last part of the document, at a paragraph boundary.
            total = sum(map(len, paras))
            cut, seen = len(paras), 0
            for i in range(len(paras) - 1, -1, -1):
                seen += len(paras[i])
                if seen >= val_fraction * total:
                    cut = i
                    break
            if val_fraction > 0 and len(paras) > 1:
                cut = max(cut, 1)
                train.extend(paras[:cut])
                val.extend(paras[cut:])
            else:
                train.extend(paras)
    if not train or sum(map(len, train)) == 0:
        raise CorpusError(
            f"no text in {', '.join(map(str, paths))}", "the corpus is empty; add text to it"
        )
    if val_fraction > 0 and not val:
        # Tiny post corpora: move one post over so validation is never empty.
        val.append(train.pop())
        if not train:
            raise CorpusError("the corpus has a single post", "add more text to train on")
    return Corpus(train, val, [str(f) for f in files], sha.hexdigest(), n_bytes)


def build_vocab(docs: list[str], *, min_count: int = 5, rare: str = "unk") -> Vocab:
    """Characters seen at least `min_count` times get an id; the rest are unknown or dropped."""
    counts = Counter(ch for doc in docs for ch in doc)
    chars = sorted(ch for ch, n in counts.items() if n >= min_count)
    if not chars:
        raise CorpusError("no character occurs often enough", "lower --min-char-count")
    unknown = {ch: n for ch, n in counts.most_common() if n < min_count}
    return Vocab(chars, unknown, rare)
