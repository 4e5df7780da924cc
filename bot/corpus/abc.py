"""ABC tune books to Documents: one tune per document, the training text of a music persona.

    for doc in import_abc([Path("book1.abc")]):   # Document(text="T:...\\nM:6/8\\n...K:G\\n...")
        ...

A tune starts at its `X:` line and ends at the next blank line or `X:`. Each comes out in
one canonical shape, so the model learns one header layout and a prompt can name the tune:

    T:<first title>          (further T: lines, X:, composer, source, notes... dropped)
    M:<meter>                (M:none when the tune gives none)
    L:<unit note length>     (the ABC standard's default when the tune gives none)
    Q:<tempo>                (only when the tune gives one)
    K:<key>                  (required: a tune without a key is skipped)
    <body>

In the body, `%` comments, lyrics (`w:`/`W:`), chord symbols and annotations (`"..."`),
`!decorations!`, bowings and staccato dots, other header fields on their own line (`N:`, `P:`, `Z:`, ...) and line
continuations are dropped; inline meter, key, unit and tempo changes stay. Duplicates
(the same tune body in two books) are dropped, the first kept.

`music21_books()` finds the public-domain tune books that the `music21` package bundles
(Ryan's Mammoth Collection 1883, O'Neill's Music of Ireland 1850, Aird's Airs 1782-1803)
in the installed package, without importing music21 (large). Stdlib only.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import CorpusError
from bot.corpus import Document
from bot.corpus.text import expand_paths, read_text

# The books of music21/corpus/ that are public domain (printed 1782-1883). Not the
# Essen collection (its licence is unclear) and not music21's Nottingham sample
# (the Nottingham Music Database is distributed under the GPL).
MUSIC21_BOOKS = ("ryansMammoth", "oneills1850", "airdsAirs")
HEADER_ORDER = ("T", "M", "L", "Q", "K")
MAX_TUNE_CHARS = 2000  # longer tunes (suites, variations) are skipped: not post-sized

_FIELD = re.compile(r"^([A-Za-z]):\s*(.*?)\s*$")
_QUOTED = re.compile(r'"[^"\n]*"')
_DECORATION = re.compile(r"![^!\n]*!|\+[^+\n\s]*\+")
# Bowings (u, v) and staccato dots: performance marks that abc2midi misreads in
# several places the books put them (before a slur, inside a broken rhythm).
_BOWING = re.compile(r"[uv.]")
_COMMENT = re.compile(r"(?<!\\)%.*$")
_VOICE = re.compile(r"^V:|\[V:", re.MULTILINE)
_INLINE_KEEP = ("M", "K", "L", "Q", "V")  # V: only to find (and skip) multi-voice tunes


@dataclass(frozen=True)
class Tune:
    """One tune in canonical form; `text` is what the model trains on."""

    title: str
    meter: str
    unit: str
    key: str
    text: str
    source: str  # "<file>#<X number>"

    @property
    def body(self) -> str:
        """The music after the K: line."""
        return self.text.partition("\nK:")[2].partition("\n")[2]


def default_unit(meter: str) -> str:
    """The ABC standard's unit length when L: is absent: 1/16 below 3/4, else 1/8."""
    numbers = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", meter)
    if numbers and int(numbers.group(1)) / int(numbers.group(2)) < 0.75:
        return "1/16"
    return "1/8"


def split_raw(text: str) -> Iterator[tuple[str, list[str]]]:
    """(X: number, lines) for each tune in a tune book; file headers and prose between
    tunes are skipped."""
    number: str | None = None
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        field = _FIELD.match(line)
        if field and field.group(1) == "X":
            if number is not None:
                yield number, lines
            number, lines = field.group(2) or "?", []
        elif number is not None:
            if not line.strip():
                yield number, lines
                number, lines = None, []
            else:
                lines.append(line)
    if number is not None:
        yield number, lines


def clean_body_line(line: str) -> str:
    """A music line without comments, chord symbols, annotations or !decorations!."""
    line = _COMMENT.sub("", line)
    line = _QUOTED.sub("", line)
    line = _DECORATION.sub("", line)
    line = _BOWING.sub("", line)
    line = line.rstrip()
    if line.endswith("\\"):
        line = line[:-1].rstrip()
    return line


def canonical(lines: list[str], source: str) -> Tune | None:
    """The tune in canonical form, or None when it has no key or no music."""
    fields: dict[str, str] = {}
    body: list[str] = []
    in_header = True
    for raw in lines:
        if raw.lstrip().startswith("%"):
            continue
        field = _FIELD.match(raw)
        if in_header:
            if field is None:
                continue  # stray text inside a header
            name, value = field.group(1), _COMMENT.sub("", field.group(2)).strip()
            if name in HEADER_ORDER and name not in fields and value:
                fields[name] = value
            if name == "K":
                in_header = False
            continue
        if field is not None and not raw.startswith("|"):
            name, value = field.group(1), _COMMENT.sub("", field.group(2)).strip()
            if name in _INLINE_KEEP and value:
                body.append(f"{name}:{value}")  # a change of meter, key, unit or tempo
            continue  # lyrics, parts, notes, ...
        line = clean_body_line(raw)
        if line.strip():
            body.append(line)
    if "K" not in fields or not body:
        return None
    meter = fields.get("M", "none")
    unit = fields.get("L", default_unit(meter))
    title = re.sub(r"\s+", " ", fields.get("T", "Untitled")).strip()
    header = [f"T:{title}", f"M:{meter}", f"L:{unit}"]
    if "Q" in fields:
        header.append(f"Q:{fields['Q']}")
    header.append(f"K:{fields['K']}")
    return Tune(title, meter, unit, fields["K"], "\n".join(header + body), source)


def read_tunes(path: Path) -> Iterator[Tune]:
    """Every tune of one ABC file, in canonical form."""
    text = read_abc_text(path)
    for number, lines in split_raw(text):
        tune = canonical(lines, f"{path.name}#{number}")
        if tune is not None:
            yield tune


def read_abc_text(path: Path) -> str:
    """An ABC file's text: UTF-8, or Latin-1 (older tune books) when it is not UTF-8."""
    try:
        return read_text(path)
    except CorpusError:
        raw = path.read_bytes()
        if b"\x00" in raw[:8192]:
            raise
        return raw.decode("latin-1")


def music21_books() -> list[Path]:
    """The public-domain ABC tune books inside the installed music21 package."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            "music21 is not installed",
            "pip install -r requirements-train.txt (music21 bundles the tune books)",
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "corpus"
    books = [root / name for name in MUSIC21_BOOKS if (root / name).is_dir()]
    if not books:
        raise CorpusError(f"{root} has none of {', '.join(MUSIC21_BOOKS)}",
                          "reinstall music21 (pip install --force-reinstall music21)")  # fmt: skip
    return books


def body_key(tune: Tune) -> str:
    """What makes two tunes the same tune: the body without spacing and bar-line style."""
    return re.sub(r"[\s|:\[\]]+", "", tune.body)


@dataclass
class AbcStats:
    """What `bot scrape abc` reports: tunes kept and skipped, meters and keys."""

    tunes: int = 0
    characters: int = 0
    skipped_duplicate: int = 0
    skipped_no_key: int = 0
    skipped_too_long: int = 0
    skipped_voices: int = 0
    skipped_unparsable: int = 0
    meters: Counter[str] | None = None
    keys: Counter[str] | None = None

    def format(self, top: int = 6) -> str:
        meters = " ".join(f"{k}:{v}" for k, v in (self.meters or Counter()).most_common(top))
        keys = " ".join(f"{k}:{v}" for k, v in (self.keys or Counter()).most_common(top))
        return (
            f"tunes: {self.tunes} ({self.characters} characters)\n"
            f"skipped: duplicate={self.skipped_duplicate} no_key={self.skipped_no_key} "
            f"too_long={self.skipped_too_long} voices={self.skipped_voices} "
            f"unparsable={self.skipped_unparsable}\n"
            f"meters: {meters}\n"
            f"keys: {keys}"
        )


def import_abc(
    paths: Iterable[Path],
    stats: AbcStats | None = None,
    *,
    max_chars: int = MAX_TUNE_CHARS,
    parses: Callable[[str], bool] | None = None,
) -> Iterator[Document]:
    """One Document per distinct tune of the ABC files (folders: their .abc files).
    With `parses`, tunes it says no to are skipped (`bot scrape abc --parsing-only`:
    abc2midi's check, so the model learns from tunes the daemon's filter would pass)."""
    stats = stats if stats is not None else AbcStats()
    stats.meters, stats.keys = Counter(), Counter()
    seen: set[str] = set()
    for path in expand_paths(paths, ".abc", "ABC tune books"):
        text = read_abc_text(path)
        for number, lines in split_raw(text):
            tune = canonical(lines, f"{path.name}#{number}")
            if tune is None:
                stats.skipped_no_key += 1
                continue
            if _VOICE.search(tune.text):
                stats.skipped_voices += 1  # the model writes one melody line
                continue
            if len(tune.text) > max_chars:
                stats.skipped_too_long += 1
                continue
            key = body_key(tune)
            if key in seen:
                stats.skipped_duplicate += 1
                continue
            seen.add(key)
            if parses is not None and not parses(tune.text):
                stats.skipped_unparsable += 1
                continue
            stats.tunes += 1
            stats.characters += len(tune.text)
            stats.meters[tune.meter] += 1
            stats.keys[tune.key] += 1
            yield Document(text=tune.text, created_at=None, source=f"abc:{path.parent.name}",
                           id=tune.source)  # fmt: skip
