"""Book hygiene: take out what a printed book carries that is not the author's prose.

A character model learns everything it is shown, so a table of contents, "CHAPTER XIV.",
"195. " in front of an aphorism, "[3]" after a word or a play's "ROMEO:" come back in its
posts as debris. `clean_book` runs on every plain-text file the trainer reads
(`bot.train.data.load_corpus`, so both `bot train --corpus book.txt` and `bot new NAME
book.txt`), after the Project Gutenberg header and licence are cut (bot/corpus/text.py).
It works on blank-line separated blocks:

- front matter (title page, by-lines, publisher, dates) before the first paragraph of
  prose is dropped, and so is a Gutenberg licence or credit without a START marker: a file
  with no markers comes out as one with them does;
- a table of contents (a "Contents" heading and everything up to the next prose);
- headings: short blocks in capitals, "Chapter IX", "Book the First", "I. The Title",
  numbers alone ("195.", "XIV"), ornaments ("* * *");
- the number in front of a numbered aphorism or section ("195. Some ..." keeps "Some ...");
- footnote markers ("[1]", "word*", "†"), footnote paragraphs ("[1] See ..."), bracketed
  editorial notes ("[Footnote: ...]", "[Transcriber's Note: ...]", "[Illustration: ...]",
  a paragraph wholly in brackets), and sections headed as transcriber's, translator's or
  editor's notes, or footnotes (up to the next heading written like theirs);
- a play's speaker headings ("First Citizen:", "ROMEO:", "HAMLET." alone on the first
  line) are dropped and the speech stays;
- capitals used for emphasis are folded to the case the word has elsewhere in the book
  ("IMAGINED" -> "imagined", "ZARATHUSTRA" -> "Zarathustra"), with a capital at a sentence
  start; Roman numerals and "I" stay.

Each rule is conservative: a paragraph of prose passes through unchanged (apart from a
marker or a folded capital), because the author's words are the point.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from bot.corpus.text import strip_gutenberg

_END_RE = re.compile(
    r"^\s*(?:\*{3}\s*)?END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$"
    r"|^\s*End of (?:the )?Project Gutenberg(?:'s)?\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
_CREDITS_RE = re.compile(r"^\s*(?:Produced by|E-?text prepared by|Transcribed by)\b", re.IGNORECASE)
_BLOCK_SPLIT = re.compile(r"\n[ \t]*\n")
# "[Footnote 2: ...]", "[Transcriber's Note: ...]", "[Illustration: ...]", "[Illustration]"
_BRACKET_NOTE_RE = re.compile(
    r"[ \t]*\[[^\[\]]{0,40}?\b(?:Footnote|Note|Illustration|Sidenote|Transcriber|Translator|Editor)"
    r"[^\[\]:]{0,40}:[^\[\]]*\]"
    r"|\[(?:Illustration|Footnote)\]",
    re.IGNORECASE,
)
_MARKER_RE = re.compile(r"\[(?:\d{1,3}|[a-z]|[*†‡§])\]|(?<=[^\s*])[*†‡]+(?=[\s.,;:!?'\")\]”’]|$)")
_FOOTNOTE_BODY_RE = re.compile(r"^\s*(?:\[(?:\d{1,3}|[a-z]|[*†‡])\]|[*†‡]|Footnote \d+:)\s*\w")
_NUMBER_PREFIX_RE = re.compile(r"^(\s*)(?:§\s*)?\d{1,4}\.\s+(?=\S)")
_NUMBER_ONLY_RE = re.compile(r"^[\[(]?(?:§\s*)?(?:\d{1,4}|[IVXLCDM]{1,8}|[ivxlcdm]{1,8})[.)\]:]?$")
_CONTENTS_RE = re.compile(r"^(?:table of )?contents\.?:?$", re.IGNORECASE)
_NOTES_RE = re.compile(
    r"^(?:(?:transcriber|translator|editor|publisher)(?:'|’)?s?(?:'|’)?\s+notes?\b"
    r"|(?:foot)?notes\b)",
    re.IGNORECASE,
)
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|first|second|"
    "third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last"
)
_CHAPTER_RE = re.compile(
    r"^(?:chapter|chap\.|book|part|volume|vol\.|section|sect\.|canto|letter|phase|stave|act"
    r"|scene|essay|lecture|federalist no\.)\s+(?:\d+|(?-i:[IVXLCDM]+)\b|the\s+\w+|(?:"
    + _NUMBER_WORDS
    + r")\b)"
    r"|^(?:" + _NUMBER_WORDS + r")\s+(?:part|book|essay)\b",
    re.IGNORECASE,
)
_NUMBERED_TITLE_RE = re.compile(r"^(?:[IVXLCDM]{1,8}|\d{1,3})\.\s+\S")
_SPEAKER_RE = re.compile(
    r"^(?:[A-Z][A-Za-z'’.-]*)(?: (?:[A-Z][A-Za-z'’.-]*|of|the|and|de|la|le)){0,4}:$"
)
_ROMAN_RE = re.compile(r"^M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SMALL_WORDS = frozenset(
    ("a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "its", "of", "on", "or",
     "the", "to", "upon", "with", "his", "her")
)  # fmt: skip
_QUOTES = "\"'“‘(«_["
_FRONT_MATTER_BLOCKS = 60  # a title page is never longer; past this nothing is front matter
_HEADING_WORDS = 12


@dataclass
class Hygiene:
    """The cleaned text, and what was taken out (for `bot`'s measurements and the tests)."""

    text: str
    removed: list[str] = field(default_factory=list)


def clean_book(text: str) -> str:
    """The author's prose of a plain-text book (module docstring)."""
    return tidy_book(text).text


def tidy_book(text: str) -> Hygiene:
    """`clean_book` with the removed pieces kept, for measuring precision."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    removed: list[str] = []
    body = strip_gutenberg(text)
    if body == text:  # no START marker: a licence or end line may still be there
        end = _END_RE.search(body)
        if end is not None:
            removed.append(body[end.start() :])
            body = body[: end.start()]
    body = _BRACKET_NOTE_RE.sub(lambda m: _note(m, removed), body)
    blocks = [b for b in _BLOCK_SPLIT.split(body) if b.strip()]
    kept = _keep_blocks(blocks, removed)
    cases = _preferred_cases(kept)
    return Hygiene("\n\n".join(_fold_capitals(b, cases) for b in kept) + "\n", removed)


def _note(match: re.Match[str], removed: list[str]) -> str:
    removed.append(match.group(0))
    return ""


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def is_prose(block: str) -> bool:
    """Eight words or more, most of them starting in lower case: a sentence, not a title."""
    words = _words(block)
    if len(words) < 8:
        return False
    return sum(word[0].islower() for word in words) / len(words) >= 0.5


def _is_capitals(text: str) -> bool:
    return any(ch.isalpha() for ch in text) and not any(ch.islower() for ch in text)


def _is_heading(block: str) -> bool:
    """A heading, a section number or an ornament: no sentence of the author's."""
    line = _line(block)
    if not any(ch.isalnum() for ch in line) or _NUMBER_ONLY_RE.match(line):
        return True
    if len(line.split()) > _HEADING_WORDS or block.strip().count("\n") > 2:
        return False
    if _is_capitals(line):
        return not line.startswith(tuple(_QUOTES))  # a shouted line of dialogue stays
    if _CHAPTER_RE.match(line) or _SPEAKER_RE.match(line):
        return True
    if _NUMBERED_TITLE_RE.match(line):
        return _is_title(line)
    # a chapter title alone ("Economy", "Where I Lived, and What I Lived For") has no full
    # stop; a dateline ("London, February 1909.") has a year
    if "\n" in block.strip() or line.startswith(tuple(_QUOTES)) or not _is_title(line):
        return False
    return line[-1].isalnum() or (line[-1] == "." and any(ch.isdigit() for ch in line))


def _is_bracketed(block: str) -> bool:
    """A paragraph wholly in square brackets: an editor's note ("[Published in ...]")."""
    text = block.strip()
    return text.startswith("[") and text.endswith("]") and text.count("[") == 1


def _is_title(line: str) -> bool:
    words = _words(line)
    return bool(words) and all(w[0].isupper() or w.lower() in _SMALL_WORDS for w in words)


def _is_front_matter(block: str) -> bool:
    """Title page material: capitals, a title in title case, or a line with no full stop."""
    line = _line(block)
    return (
        _is_capitals(line)
        or _is_title(line)
        or _CREDITS_RE.match(line) is not None
        or not line.rstrip("\"'”’)]_").endswith((".", "!", "?"))
    )


def _first_line_heading(block: str) -> bool:
    """Is the block's first line a speaker's name or a heading, with the text below it?"""
    first, _, rest = block.strip().partition("\n")
    first = first.strip()
    if not rest.strip() or len(first.split()) > 5:
        return False
    if _SPEAKER_RE.match(first) or _CHAPTER_RE.match(first):
        return True
    return _is_capitals(first) and not first.startswith(tuple(_QUOTES))


def _is_notes_heading(line: str) -> bool:
    """Notes headings: "TRANSCRIBER'S NOTE:", "Translator's Notes", "NOTES ON ... BY ...": a
    heading, in capitals or title case, not a sentence that begins with "Notes"."""
    return (
        _NOTES_RE.match(line) is not None
        and len(line.split()) <= _HEADING_WORDS
        and (_is_capitals(line) or _is_title(line))
    )


def _notes_end(blocks: list[str], start: int) -> int:
    """Where the notes headed at `start` end: at the next heading written like theirs (the
    translator's notes at the back of Zarathustra have headings of their own, "Chapter LXXX.
    The Sign.", and end at "ANTHONY M. LUDOVICI."). When that would run to the end of the
    file, or over a third of a long book, they end at the next heading of any kind."""
    capitals = _is_capitals(_line(blocks[start]))
    first = same = None
    for i in range(start + 1, len(blocks)):
        if _is_heading(blocks[i]) and not _is_notes_heading(_line(blocks[i])):
            first = i if first is None else first
            if _is_capitals(_line(blocks[i])) == capitals:
                same = i
                break
    long = len(blocks) > 300 and same is not None and (same - start) * 3 > len(blocks)
    if same is None or long:
        return first if first is not None else len(blocks)
    return same


def _line(block: str) -> str:
    return " ".join(block.split())


def _keep_blocks(blocks: list[str], removed: list[str]) -> list[str]:
    first_prose = next((i for i, b in enumerate(blocks[:_FRONT_MATTER_BLOCKS]) if is_prose(b)), 0)
    kept: list[str] = []
    contents = False  # inside a table of contents
    notes_end = 0  # inside notes up to this block
    for index, block in enumerate(blocks):
        line = _line(block)
        if index < notes_end or (contents and not is_prose(block)):
            removed.append(block)
            continue
        contents = _CONTENTS_RE.match(line) is not None
        if _is_notes_heading(line):
            notes_end = _notes_end(blocks, index)
        if (
            contents
            or index < notes_end
            or _is_heading(block)
            or _FOOTNOTE_BODY_RE.match(block)
            or _is_bracketed(block)
            or (index < first_prose and _is_front_matter(block))
        ):
            removed.append(block)
        else:
            kept.append(_strip_block(block, removed))
    return [block for block in kept if block.strip()]


def _strip_block(block: str, removed: list[str]) -> str:
    """A kept block without its speaker or heading line, section number and markers."""
    block = block.strip("\n")
    if _first_line_heading(block):
        first, _, block = block.strip().partition("\n")
        removed.append(first)
    number = _NUMBER_PREFIX_RE.match(block)
    if number is not None:
        removed.append(number.group(0).strip())
        block = number.group(1) + block[number.end() :]
    removed.extend(_MARKER_RE.findall(block))
    return _MARKER_RE.sub("", block)


def _sentence_start(text: str, start: int) -> bool:
    """Does the word at `start` begin a sentence? (Looks back a few characters only.)"""
    before = text[max(0, start - 12) : start].rstrip().rstrip(_QUOTES).rstrip()
    if not before and start > 12:  # indentation longer than the window (rare)
        before = text[:start].rstrip().rstrip(_QUOTES).rstrip()
    return not before or before.rstrip("\"'”’)_").endswith((".", "!", "?"))


def _preferred_cases(blocks: list[str]) -> dict[str, str]:
    """Each word's most common written form where it is not in capitals and not at a
    sentence start: "zarathustra" -> "Zarathustra", "liar" -> "liar"."""
    forms: Counter[str] = Counter()
    for block in blocks:
        for match in _WORD_RE.finditer(block):
            word = match.group(0)
            if any(ch.islower() for ch in word) and not _sentence_start(block, match.start()):
                forms[word] += 1
    cases: dict[str, str] = {}
    for form, _ in forms.most_common():
        cases.setdefault(form.lower(), form)
    return cases


def _foldable(word: str) -> bool:
    return len(word) > 1 and word.isupper() and not _ROMAN_RE.match(word)


def _fold_capitals(block: str, cases: dict[str, str]) -> str:
    """Words in capitals for emphasis in the case the book writes them otherwise."""
    matches = list(_WORD_RE.finditer(block))
    out: list[str] = []
    last = 0
    for i, match in enumerate(matches):
        word = match.group(0)
        fold = _foldable(word)
        if word == "A":  # the article inside a run of capitals: "AS A CONDITION"
            fold = any(
                0 <= j < len(matches) and _foldable(matches[j].group(0)) for j in (i - 1, i + 1)
            )
        if not fold:
            continue
        new = cases.get(word.lower(), word.lower())
        if _sentence_start(block, match.start()):
            new = new[0].upper() + new[1:]
        out.append(block[last : match.start()] + new)
        last = match.end()
    return "".join(out) + block[last:]
