"""Plain text and Project Gutenberg importer: files or folders of .txt to Documents.

Each paragraph (blank-line separated) becomes one record, its hard-wrapped lines joined
with spaces, so the model learns the author's sentences rather than a typesetter's line
width. Project Gutenberg files lose their header (everything up to the `*** START OF THE
PROJECT GUTENBERG EBOOK … ***` line) and the licence after the `*** END OF …` line;
their words are the author's, the boilerplate is not. Plain text is read as UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from bot.core.errors import CorpusError
from bot.corpus import Document

_START_RE = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$"
    r"|^\s*\*END\*\s*THE SMALL PRINT!.*$",  # pre-2000 files end their header this way
    re.IGNORECASE | re.MULTILINE,
)
_END_RE = re.compile(
    r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$"
    r"|^\s*End of (?:the )?Project Gutenberg(?:'s)?\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
# First paragraph after the START line that credits the transcribers, not the author.
_CREDITS_RE = re.compile(r"^\s*(?:Produced by|E-?text prepared by|Transcribed by)\b", re.IGNORECASE)
_PARAGRAPH_SPLIT = re.compile(r"\n[ \t]*\n")


def is_gutenberg(text: str) -> bool:
    return _START_RE.search(text) is not None


def strip_gutenberg(text: str) -> str:
    """The book between the Project Gutenberg START and END markers; text without a
    START marker comes back unchanged."""
    start = _START_RE.search(text)
    if start is None:
        return text
    body = text[start.end() :]
    end = _END_RE.search(body)
    if end is not None:
        body = body[: end.start()]
    paragraphs = _PARAGRAPH_SPLIT.split(body.strip(), maxsplit=1)
    if paragraphs and _CREDITS_RE.match(paragraphs[0]):
        body = paragraphs[1] if len(paragraphs) > 1 else ""
    return body


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each unwrapped to one line of single spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = (" ".join(chunk.split()) for chunk in _PARAGRAPH_SPLIT.split(text))
    return [paragraph for paragraph in paragraphs if paragraph]


def read_text(path: Path) -> str:
    """A file's text as UTF-8 (BOM tolerated); CorpusError for binary or other encodings."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror}", "check the path") from err
    if b"\x00" in raw[:8192]:
        raise CorpusError(f"{path} looks binary, not text", "pass .txt files or folders")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"{path} is not UTF-8 (byte {err.start})",
            f"convert it first, e.g. iconv -f latin1 -t utf-8 {path.name}",
        ) from err


def expand_paths(
    paths: Iterable[Path], suffix: str = ".txt", what: str = ".txt files"
) -> list[Path]:
    """Files as given; folders become their `suffix` files, recursively, in sorted order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
            if not found:
                raise CorpusError(f"no {suffix} files under {path}", f"point at {what}")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"{path} does not exist", "check the path")
    return files


def import_text(paths: Iterable[Path]) -> Iterator[Document]:
    """One Document per paragraph of each file (Gutenberg boilerplate stripped)."""
    for path in expand_paths(paths):
        text = read_text(path)
        gutenberg = is_gutenberg(text)
        kind = "gutenberg" if gutenberg else "text"
        body = strip_gutenberg(text) if gutenberg else text
        for number, paragraph in enumerate(split_paragraphs(body), 1):
            yield Document(
                text=paragraph,
                created_at=None,
                source=f"{kind}:{path.name}",
                id=f"{path.name}#{number}",
            )
