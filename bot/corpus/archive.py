"""Account archive importers: a Mastodon export (outbox.json) and a Twitter/X archive.

`import_archive(path)` detects the kind from what it finds: a Mastodon export has an
`outbox.json` (ActivityStreams `Create` activities wrapping `Note`s); a Twitter/X archive
has `data/tweets.js` (or `tweet.js`, `tweets-part1.js`, …) holding
`window.YTD.tweets.part0 = [{"tweet": {...}}, ...]`. Either may be the .zip as
downloaded, the unpacked folder, or the one file itself.

Only what the owner published in public is kept: boosts/retweets (other people's words),
followers-only and direct posts, replies to others (unless asked) and content-warned or
sensitive posts (unless asked) are skipped, and counted by reason in `skipped`.
"""

from __future__ import annotations

import html
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from bot.core.errors import CorpusError
from bot.corpus import Document, iso_utc, parse_iso
from bot.corpus.clean import CleanOptions

ArchiveKind = Literal["mastodon", "twitter"]

PUBLIC = {"https://www.w3.org/ns/activitystreams#Public", "as:Public", "Public"}
_OUTBOX_RE = re.compile(r"(?:^|/)outbox\.json$")
_TWEETS_RE = re.compile(r"(?:^|/)data/tweets?(?:-part\d+)?\.js$")  # not deleted-tweets.js
_ACCOUNT_RE = re.compile(r"(?:^|/)data/account\.js$")
_YTD_RE = re.compile(r"^\s*window\.YTD\.\w+\.part\d+\s*=\s*")
_TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"  # "Sat Feb 18 12:33:11 +0000 2023"


class _Archive:
    """Read members by relative name from a .zip, a folder or a single file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = sorted(
                p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
            )
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self.names = self._zip.namelist()
        elif path.is_file():
            self.names = [path.name]
        else:
            raise CorpusError(f"{path} does not exist", "check the path")

    def read(self, name: str) -> str:
        try:
            if self._zip is not None:
                raw = self._zip.read(name)
            elif self.path.is_dir():
                raw = (self.path / name).read_bytes()
            else:
                raw = self.path.read_bytes()
            return raw.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as err:
            raise CorpusError(
                f"cannot read {name} in {self.path}: {err}", "re-download the archive"
            ) from err

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def find(self, pattern: re.Pattern[str]) -> list[str]:
        return sorted((n for n in self.names if pattern.search(n)), key=lambda n: (len(n), n))


def detect_kind(archive: _Archive) -> ArchiveKind:
    if archive.find(_OUTBOX_RE):
        return "mastodon"
    if archive.find(_TWEETS_RE):
        return "twitter"
    if len(archive.names) == 1 and archive._zip is None:  # a lone file with another name
        head = archive.read(archive.names[0])[:4096]
        if _YTD_RE.match(head):
            return "twitter"
        if '"orderedItems"' in head or '"OrderedCollection"' in head:
            return "mastodon"
    raise CorpusError(
        f"{archive.path} is neither a Mastodon export nor a Twitter/X archive",
        "pass the .zip, its folder, outbox.json or data/tweets.js",
    )


def import_archive(
    path: Path, options: CleanOptions | None = None, skipped: Counter[str] | None = None
) -> Iterator[Document]:
    """Documents from a Mastodon or Twitter/X archive, whichever `path` is."""
    options = options or CleanOptions()
    skipped = skipped if skipped is not None else Counter()
    archive = _Archive(path)
    try:  # parse everything now, so the zip is closed before the first record
        kind = detect_kind(archive)
        if kind == "mastodon":
            outbox = _load_json(archive, (archive.find(_OUTBOX_RE) or archive.names)[0])
            return import_mastodon_outbox(outbox, options, skipped)
        account = archive.find(_ACCOUNT_RE)
        own_id = _own_twitter_id(_load_ytd(archive, account[0])) if account else None
        sibling = path.with_name("account.js")  # a lone data/tweets.js: its account.js
        if own_id is None and path.is_file() and sibling.is_file():
            own_id = _own_twitter_id(_load_ytd(_Archive(sibling), sibling.name))
        names = archive.find(_TWEETS_RE) or archive.names
        entries = [entry for name in names for entry in _load_ytd(archive, name)]
        return import_tweets(entries, options, skipped, own_id=own_id)
    finally:
        archive.close()


def _load_json(archive: _Archive, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except json.JSONDecodeError as err:
        raise CorpusError(
            f"{name} in {archive.path} is not valid JSON (line {err.lineno})",
            "re-download the archive",
        ) from err


def _load_ytd(archive: _Archive, name: str) -> list[Any]:
    """Parse `window.YTD.<kind>.partN = [...]` by dropping the assignment."""
    raw = archive.read(name)
    match = _YTD_RE.match(raw)
    if match is None:
        raise CorpusError(
            f"{name} in {archive.path} does not start with window.YTD.",
            "pass the archive's data/tweets.js unchanged",
        )
    try:
        data = json.loads(raw[match.end() :])
    except json.JSONDecodeError as err:
        raise CorpusError(
            f"{name} in {archive.path} is not valid JSON (line {err.lineno})",
            "re-download the archive",
        ) from err
    return data if isinstance(data, list) else []


def _own_twitter_id(entries: list[Any]) -> str | None:
    for entry in entries:
        account = entry.get("account", {}) if isinstance(entry, dict) else {}
        if account.get("accountId"):
            return str(account["accountId"])
    return None


# --- Mastodon ---------------------------------------------------------------------------


def import_mastodon_outbox(
    outbox: Any, options: CleanOptions, skipped: Counter[str]
) -> Iterator[Document]:
    """Documents from a parsed outbox.json (an ActivityStreams OrderedCollection)."""
    items = outbox.get("orderedItems") if isinstance(outbox, dict) else None
    if not isinstance(items, list):
        raise CorpusError(
            "outbox.json has no orderedItems list",
            "pass the outbox.json from Mastodon's 'Request your archive'",
        )
    for item in items:
        note = item.get("object") if isinstance(item, dict) else None
        if item.get("type") != "Create" or not isinstance(note, dict):
            skipped["boost" if item.get("type") == "Announce" else "other"] += 1
            continue
        reason = _mastodon_skip_reason(item, note, options)
        if reason:
            skipped[reason] += 1
            continue
        content_map = note.get("contentMap") or {}
        content = note.get("content") or next(iter(content_map.values()), "")
        text = options.html(content)
        if not text:
            skipped["empty"] += 1
            continue
        published = note.get("published") or item.get("published")
        yield Document(
            text=text,
            created_at=iso_utc(parse_iso(published)) if published else None,
            source="mastodon-archive",
            id=str(note.get("id", item.get("id", ""))),
            language=next(iter(content_map), None),
        )


def _mastodon_skip_reason(
    item: dict[str, Any], note: dict[str, Any], options: CleanOptions
) -> str | None:
    audience = set(
        _as_list(note.get("to", item.get("to"))) + _as_list(note.get("cc", item.get("cc")))
    )
    if not audience & PUBLIC:
        return "private"  # followers-only or direct: never corpus material
    if (note.get("summary") or note.get("sensitive")) and not options.include_cw:
        return "cw"
    reply_to = note.get("inReplyTo")
    actor = str(item.get("actor") or note.get("attributedTo") or "")
    own_thread = bool(actor) and isinstance(reply_to, str) and reply_to.startswith(actor + "/")
    if reply_to and not own_thread and not options.include_replies:
        return "reply"
    return None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


# --- Twitter/X --------------------------------------------------------------------------


def import_tweets(
    entries: list[Any], options: CleanOptions, skipped: Counter[str], *, own_id: str | None
) -> Iterator[Document]:
    """Documents from tweets.js entries (`{"tweet": {...}}`); `own_id` (from account.js)
    lets self-replies (threads) through like Mastodon's own threads."""
    for entry in entries:
        tweet = entry.get("tweet", entry) if isinstance(entry, dict) else {}
        full_text = str(tweet.get("full_text") or tweet.get("text") or "")
        reason = _tweet_skip_reason(tweet, full_text, options, own_id)
        if reason:
            skipped[reason] += 1
            continue
        text = options.plain(_expand_tweet_urls(tweet, html.unescape(full_text), options))
        if not text:
            skipped["empty"] += 1
            continue
        created = tweet.get("created_at")
        lang = tweet.get("lang")
        yield Document(
            text=text,
            created_at=iso_utc(datetime.strptime(created, _TWITTER_TIME)) if created else None,
            source="twitter-archive",
            id=str(tweet.get("id_str") or tweet.get("id") or ""),
            language=lang if lang and lang not in ("und", "zxx", "qme", "qam") else None,
        )


def _tweet_skip_reason(
    tweet: dict[str, Any], text: str, options: CleanOptions, own_id: str | None
) -> str | None:
    if tweet.get("retweeted") is True or text.startswith("RT @"):
        return "boost"
    reply_to_user = tweet.get("in_reply_to_user_id_str") or tweet.get("in_reply_to_user_id")
    is_reply = bool(tweet.get("in_reply_to_status_id_str") or reply_to_user)
    own_thread = own_id is not None and str(reply_to_user) == own_id
    if is_reply and not own_thread and not options.include_replies:
        return "reply"
    if tweet.get("possibly_sensitive") is True and not options.include_cw:
        return "cw"
    return None


def _expand_tweet_urls(tweet: dict[str, Any], text: str, options: CleanOptions) -> str:
    """t.co links become their real URL (kept) or nothing; media links always go."""
    entities = tweet.get("entities") or {}
    extended = tweet.get("extended_entities") or {}
    for media in (entities.get("media") or []) + (extended.get("media") or []):
        if media.get("url"):
            text = text.replace(media["url"], "")
    for url in entities.get("urls") or []:
        if url.get("url"):
            expanded = (url.get("expanded_url") or "") if options.keep_links else ""
            text = text.replace(url["url"], expanded)
    return text
