"""Cleaning: Mastodon HTML to text, mentions/links/hashtags, and a language guess.

Used by every importer so that a scraped post, an archived post and a tweet come out
the same way: paragraphs as blank-line breaks, `<br>` as a newline, entities unescaped,
mentions removed (the bot must never learn to @ people), links dropped or kept as a bare
URL, hashtags kept or dropped. Stdlib only (`html.parser`): Mastodon's HTML is a small,
sanitised subset, so a full HTML library would buy nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from bot.corpus import Document

HashtagMode = Literal["keep", "drop"]

_BLOCK_TAGS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6"}
)
_SKIP_TAGS = frozenset({"script", "style"})
_VOID_TAGS = frozenset({"br", "img", "hr", "input", "meta", "link", "wbr"})
# Mastodon 4.4+ prefixes quote posts with `<p class="quote-inline">RE: <a>…</a></p>`.
_SKIP_CLASSES = frozenset({"quote-inline"})

# `@user` or `@user@host.tld`, not the middle of an e-mail address.
MENTION_RE = re.compile(r"(?<![\w@/])@\w[\w.-]*(?:@[\w-]+(?:\.[\w-]+)+)?", re.UNICODE)
URL_RE = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
HASHTAG_RE = re.compile(r"(?<![\w#&/])#\w+", re.UNICODE)


class _TextExtractor(HTMLParser):
    """Collects text; decides per `<a>` whether it is a mention, a hashtag or a link."""

    def __init__(self, keep_links: bool, hashtags: HashtagMode) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_links = keep_links
        self.hashtags = hashtags
        self.parts: list[str] = []
        self._skip_depth = 0  # inside <script>/<style>/quote-inline
        self._anchor: tuple[str, str] | None = None  # (href, class) of the open <a>
        self._anchor_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        classes = set(attr.get("class", "").split())
        if self._skip_depth:
            if tag not in _VOID_TAGS:
                self._skip_depth += 1
            return
        if tag in _SKIP_TAGS or classes & _SKIP_CLASSES:
            self._skip_depth = 1
            return
        if tag == "br":
            self._emit("\n")
        elif tag in _BLOCK_TAGS:
            self._emit("\n\n")
        elif tag == "a":
            self._anchor = (attr.get("href", ""), " ".join(classes) + " " + attr.get("rel", ""))
            self._anchor_text = []

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if tag in _BLOCK_TAGS:
            self._emit("\n\n")
        elif tag == "a" and self._anchor is not None:
            href, marks = self._anchor
            text = "".join(self._anchor_text)
            self._anchor = None
            self.parts.append(self._render_anchor(href, marks, text))

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._anchor is not None:
            self._anchor_text.append(data)
        else:
            self.parts.append(data)

    def _emit(self, text: str) -> None:
        (self._anchor_text if self._anchor is not None else self.parts).append(text)

    def _render_anchor(self, href: str, marks: str, text: str) -> str:
        stripped = text.strip()
        if "hashtag" in marks or stripped.startswith("#"):
            return stripped if self.hashtags == "keep" else ""
        if "mention" in marks or stripped.startswith("@"):
            return ""
        # Mastodon shortens URL text with invisible spans ("example.com/pa…"); the href is
        # the real thing. Anchor text that is not a URL is words, and words stay.
        if not looks_like_url(stripped):
            return text
        return href if self.keep_links else ""


def looks_like_url(text: str) -> bool:
    """Is a link's visible text a (possibly shortened) URL rather than words? Empty counts
    as a URL: there are no words to keep."""
    text = text.strip()
    return (
        not text
        or text.startswith(("http://", "https://", "www."))
        or (" " not in text and "." in text and "/" in text)
    )


def tidy(text: str) -> str:
    """Collapse spaces, trim around newlines, keep at most one blank line, strip."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_plain(text: str, *, keep_links: bool = False, hashtags: HashtagMode = "keep") -> str:
    """Clean already-plain text (tweets, leftovers in HTML): mentions out, links and
    hashtags per option, whitespace tidied."""
    text = MENTION_RE.sub("", text)
    if not keep_links:
        text = URL_RE.sub("", text)
    if hashtags == "drop":
        text = HASHTAG_RE.sub("", text)
    return tidy(text)


def html_to_text(html: str, *, keep_links: bool = False, hashtags: HashtagMode = "keep") -> str:
    """Mastodon status HTML to plain text (see the module docstring for the rules)."""
    extractor = _TextExtractor(keep_links, hashtags)
    extractor.feed(html)
    extractor.close()
    if extractor._anchor is not None:  # unclosed <a>: keep its words
        extractor.parts.append("".join(extractor._anchor_text))
    return clean_plain("".join(extractor.parts), keep_links=keep_links, hashtags=hashtags)


# --- language guess -----------------------------------------------------------------
# A stopword vote, not a classifier. Most sources declare a language (Mastodon
# `language`, Twitter `lang`), and that wins; this only decides for undeclared text. It
# needs a few function words to speak: a short text without them is "unknown" and kept.
# We chose this over a dependency: langdetect is unmaintained, lingua ships ~100 MB of
# models, fastText needs a model download; a persona corpus needs "drop the obvious
# other-language posts", not 75-language accuracy.
STOPWORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and is are was were of to in that it with for on this not you be have "
        "but they at by from or an will would what which there their been has my me",
        "de": "der die das und ist nicht ich du sie es ein eine zu den mit auf für von "
        "dem sich auch wir aber wie noch nur oder wenn mir bei war sind",
        "fr": "le la les et est un une des du de pas je tu il elle nous vous que qui "
        "dans pour sur avec ce cette mais ou sont au aux ne se lui",
        "es": "el la los las y es un una de del que en no por con para se su lo como "
        "pero más este esta está son al yo muy hay",
        "it": "il lo la gli le e è un una di del che non per con su sono come ma anche "
        "questo questa io tu lui lei noi nel della alla",
        "pt": "o a os as e é um uma de do da que não em para com por se mas como mais "
        "eu você ele ela isso está são no na",
        "nl": "de het een en is van niet ik je dat die op te met voor zijn maar ook "
        "als er was wat dit aan bij nog",
        "sv": "och att det är en ett som på av för med inte jag du han hon vi de till "
        "den var har men om så",
    }.items()
}
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def guess_language(text: str, *, min_hits: int = 2) -> str | None:
    """Best stopword match among STOPWORDS' languages, or None when unsure
    (fewer than `min_hits` stopwords, or a tie)."""
    words = [word.lower() for word in _WORD_RE.findall(text)]
    scores = {code: sum(word in vocab for word in words) for code, vocab in STOPWORDS.items()}
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best, best_hits = ranked[0]
    if best_hits < min_hits or best_hits == ranked[1][1]:
        return None
    return best


def is_language(text: str, declared: str | None, code: str) -> bool:
    """Keep a post for `--language code`? The declared language decides when there is
    one (`en-GB` counts as `en`); otherwise the guess, and an unsure guess keeps it."""
    want = code.lower().split("-")[0]
    if declared:
        return declared.lower().split("-")[0] == want
    guess = guess_language(text)
    return guess is None or guess == want


def filter_language(docs: Iterable[Document], code: str | None) -> Iterator[Document]:
    """Documents in language `code` (all of them when `code` is None); streams."""
    for doc in docs:
        if code is None or is_language(doc.text, doc.language, code):
            yield doc


@dataclass(frozen=True)
class CleanOptions:
    """What a user chose on the command line; shared by every importer and the scraper."""

    include_cw: bool = False  # posts behind a content warning / marked sensitive
    include_replies: bool = False  # replies to others (self-replies, i.e. threads, always count)
    keep_links: bool = False  # links as bare URLs instead of dropped
    hashtags: HashtagMode = "keep"

    def html(self, html: str) -> str:
        return html_to_text(html, keep_links=self.keep_links, hashtags=self.hashtags)

    def plain(self, text: str) -> str:
        return clean_plain(text, keep_links=self.keep_links, hashtags=self.hashtags)
