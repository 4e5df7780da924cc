"""`bot scrape`: gather a corpus from a Mastodon or Bluesky account, an archive or text files.

Every subcommand runs the same pipeline after its importer: date filter, language
filter, exact and near-duplicate removal, `--limit`, then one JSONL line per post, and a
report (posts, characters, vocabulary, date range) on stderr. Registered in `bot/commands/cli.py`
with `cli.add_command(scrape)`; BotErrors raised here become one line there (bot/commands/app.py).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from bot.commands.app import ProgressBar, cursor_store
from bot.core.errors import CorpusError
from bot.corpus import Document
from bot.corpus.clean import CleanOptions, HashtagMode
from bot.corpus.pipeline import PipelineStats, run_pipeline

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DIR = Path("corpus")  # git-ignored: scraped text is not ours to commit


def output_options(fn: F) -> F:
    """Options every source shares: where to write, how many, which language."""
    fn = click.option(
        "--language", metavar="CODE", help="Keep posts in this language only (e.g. en)."
    )(fn)
    fn = click.option(
        "--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N posts."
    )(fn)
    return click.option(
        "-o",
        "--out",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE.jsonl",
        help="Output JSONL ('-' for stdout) [default: corpus/<name>.jsonl].",
    )(fn)


def post_options(fn: F) -> F:
    """Options for sources made of posts (Mastodon, archives)."""
    fn = click.option(
        "--hashtags",
        type=click.Choice(["keep", "drop"]),
        default="keep",
        show_default=True,
        help="Keep or drop #hashtags.",
    )(fn)
    fn = click.option("--keep-links", is_flag=True, help="Keep links as bare URLs.")(fn)
    fn = click.option(
        "--include-replies",
        is_flag=True,
        help="Also take replies to others (own threads always count).",
    )(fn)
    fn = click.option(
        "--include-cw",
        is_flag=True,
        help="Also take posts behind a content warning or marked sensitive.",
    )(fn)
    return click.option(
        "--since",
        type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
        metavar="DATE",
        help="Only posts from DATE (UTC, YYYY-MM-DD) on.",
    )(fn)


@click.group(short_help="Gather a training corpus (JSONL posts) for `bot train`.")
def scrape() -> None:
    """Gather a training corpus (JSONL, one post per line) for `bot train --corpus`.

    \b
    Examples:
      bot scrape mastodon @ada@example.social -o corpus/ada.jsonl
      bot scrape bluesky @ada.bsky.social --include-replies
      bot scrape archive archive-20240501.zip --include-replies
      bot scrape text pg11.txt letters/ -o corpus/mary.jsonl
    """


@scrape.command(name="mastodon")
@click.argument("acct")
@output_options
@post_options
@click.option(
    "--i-have-consent",
    "consent",
    is_flag=True,
    help="Scrape an account that opted out (#nobot, noindex): only with its owner's OK.",
)
@click.option(
    "--instance",
    metavar="URL",
    help="API server to ask [default: the account's own, https://HOST].",
)
@click.option(
    "--token-env",
    metavar="NAME",
    help="Read an access token for that server from env var NAME (default: none).",
)
def scrape_mastodon(
    acct: str,
    out: Path | None,
    limit: int | None,
    language: str | None,
    since: datetime | None,
    include_cw: bool,
    include_replies: bool,
    keep_links: bool,
    hashtags: HashtagMode,
    consent: bool,
    instance: str | None,
    token_env: str | None,
) -> None:
    """Scrape a Mastodon account's public posts.

    Appends to FILE and resumes: an interrupted run continues where it stopped, and a
    later run fetches only posts newer than the last one. Accounts that opted out
    (#nobot, #noscrape, #noai, noindex, not discoverable) are refused.
    """
    from mastodon import Mastodon

    from bot import __version__
    from bot.corpus.mastodon import parse_acct, scrape_account

    handle = parse_acct(acct)
    if not instance and not handle.host:
        raise CorpusError(f"{acct!r} has no instance", "write @user@instance or pass --instance")
    base_url = (instance or f"https://{handle.host}").rstrip("/")
    same_server = handle.host is None or handle.host == (base_url.split("://")[-1])
    token = os.environ.get(token_env) if token_env else None
    if token_env and not token:
        raise CorpusError(f"env var {token_env} is empty", f"export {token_env}=<token>")
    client = Mastodon(
        api_base_url=base_url,
        access_token=token,
        ratelimit_method="pace",
        request_timeout=30,
        version_check_mode="none",
        user_agent=f"revenant/{__version__} (bot scrape)",
    )
    out = _default_out(out, handle.user)
    _scrape_live(
        f"mastodon:{handle.acct.lower()}", out, "statuses", limit, language,
        lambda store, name, bar, skipped: scrape_account(
            client,
            handle.user if same_server else handle.acct,
            options=CleanOptions(include_cw, include_replies, keep_links, hashtags),
            consent=consent,
            since=_utc(since),
            store=store,
            cursor_name=name,
            progress=bar,
            skipped=skipped,
        ),
    )  # fmt: skip


@scrape.command(name="bluesky")
@click.argument("handle")
@output_options
@post_options
@click.option(
    "--i-have-consent",
    "consent",
    is_flag=True,
    help="Scrape an account that opted out (#nobot, !no-unauthenticated): only with its"
    " owner's OK.",
)
@click.option(
    "--appview",
    metavar="URL",
    default="https://public.api.bsky.app",
    show_default=True,
    help="Bluesky AppView to ask (read without a login).",
)
def scrape_bluesky(
    handle: str,
    out: Path | None,
    limit: int | None,
    language: str | None,
    since: datetime | None,
    include_cw: bool,
    include_replies: bool,
    keep_links: bool,
    hashtags: HashtagMode,
    consent: bool,
    appview: str,
) -> None:
    """Scrape a Bluesky account's posts (HANDLE, DID or profile URL).

    Appends to FILE and resumes: an interrupted run continues where it stopped, and a
    later run fetches only posts newer than the last one. Reposts are never taken;
    self-labelled posts (nudity, porn, graphic media) count as content-warned. Accounts
    that opted out (#nobot, #noscrape, #noai, !no-unauthenticated) are refused.

    \b
    Examples:
      bot scrape bluesky @ada.bsky.social -o corpus/ada.jsonl
      bot scrape bluesky https://bsky.app/profile/did:plc:abc123 --since 2024-01-01
    """
    from bot.corpus.bluesky import appview_client, parse_actor, scrape_account

    actor = parse_actor(handle)
    client = appview_client(appview)
    out = _default_out(out, actor.replace(":", "-"))
    _scrape_live(
        f"bluesky:{actor}", out, "posts", limit, language,
        lambda store, name, bar, skipped: scrape_account(
            client,
            actor,
            options=CleanOptions(include_cw, include_replies, keep_links, hashtags),
            consent=consent,
            since=_utc(since),
            store=store,
            cursor_name=name,
            progress=bar,
            skipped=skipped,
        ),
    )  # fmt: skip


def _scrape_live(
    account: str,
    out: Path,
    unit: str,
    limit: int | None,
    language: str | None,
    walk: Callable[[Any, str, ProgressBar, Counter[str]], Iterable[Document]],
) -> None:
    """A live account's scrape into `out`: `walk(store, cursor name, bar, skipped)` gives
    its Documents and saves its place under the cursor (named by the account and the
    output file) in the state database, so an interrupted scrape resumes and a finished
    one later fetches only newer posts; then the pipeline and the report."""
    store = cursor_store() if out != Path("-") else None
    name = f"scrape:{account}:{out.resolve()}"
    if store is not None and not out.exists():
        store.set_cursor(name, "")  # no file, nothing to resume: start from the top
    skipped: Counter[str] = Counter()
    with contextlib.ExitStack() as stack, ProgressBar(unit) as bar:
        if store is not None:
            stack.callback(store.close)
        docs = walk(store, name, bar, skipped)
        stats = run_pipeline(docs, out, limit=limit, language=language, append=True)
    _report(out, stats, skipped)


@scrape.command(name="archive")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, path_type=Path))
@output_options
@post_options
def scrape_archive(
    path: Path,
    out: Path | None,
    limit: int | None,
    language: str | None,
    since: datetime | None,
    include_cw: bool,
    include_replies: bool,
    keep_links: bool,
    hashtags: HashtagMode,
) -> None:
    """Import a Mastodon or Twitter/X archive.

    FILE is the .zip as downloaded, its unpacked folder, a Mastodon outbox.json or a
    Twitter/X data/tweets.js; the kind is detected. FILE.jsonl is replaced.
    """
    from bot.corpus.archive import import_archive

    options = CleanOptions(include_cw, include_replies, keep_links, hashtags)
    skipped: Counter[str] = Counter()
    docs = import_archive(path, options, skipped)
    out = _default_out(out, path.stem if path.is_file() else path.name)
    stats = run_pipeline(docs, out, limit=limit, language=language, since=_utc(since))
    _report(out, stats, skipped)


@scrape.command(name="text")
@click.argument(
    "paths",
    metavar="FILE...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@output_options
def scrape_text(
    paths: tuple[Path, ...], out: Path | None, limit: int | None, language: str | None
) -> None:
    """Import text or Project Gutenberg files.

    Each paragraph becomes a post; folders are read for .txt files recursively; Project
    Gutenberg headers and licences are stripped. FILE.jsonl is replaced.
    """
    from bot.corpus.text import import_text

    out = _default_out(out, paths[0].stem if paths[0].is_file() else paths[0].name)
    stats = run_pipeline(import_text(paths), out, limit=limit, language=language)
    _report(out, stats, Counter())


@scrape.command(name="abc")
@click.argument("paths", metavar="FILE...", nargs=-1,
                type=click.Path(exists=True, path_type=Path))  # fmt: skip
@click.option("--music21", "from_music21", is_flag=True,
              help="Read the public-domain tune books bundled with music21 "
                   "(Ryan's 1883, O'Neill's 1850, Aird's 1782-1803).")  # fmt: skip
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE.jsonl", help="Output JSONL ('-' for stdout) [default: corpus/<name>.jsonl].")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N tunes.")
@click.option("--parsing-only", is_flag=True,
              help="Keep only tunes that abc2midi reads without an error (needs abcmidi).")  # fmt: skip
def scrape_abc(
    paths: tuple[Path, ...],
    from_music21: bool,
    out: Path | None,
    limit: int | None,
    parsing_only: bool,
) -> None:
    """Import ABC tune books, one tune per post (music personas).

    Each tune keeps its title, meter, unit, tempo and key headers in one fixed order;
    comments, lyrics, chord symbols and decorations are dropped, and so are tunes
    without a key, with several voices, or seen already. Folders are read for .abc
    files. FILE.jsonl is replaced.

    \b
    Examples:
      bot scrape abc --music21 --parsing-only -o corpus/tunes.jsonl
      bot scrape abc book1.abc book2.abc
    """
    from bot.corpus.abc import AbcStats, import_abc, music21_books

    sources = list(paths) + (music21_books() if from_music21 else [])
    if not sources:
        raise CorpusError("no tune books given", "pass ABC files or folders, or --music21")
    parses = _parses if parsing_only else None
    stats = AbcStats()
    out = _default_out(out, "tunes" if from_music21 else (
        sources[0].stem if sources[0].is_file() else sources[0].name))  # fmt: skip
    result = run_pipeline(
        import_abc(sources, stats, parses=parses), out, limit=limit, near_dedupe=False
    )
    _report(out, result, Counter())
    click.echo(stats.format(), err=True)


@scrape.command(name="score")
@click.argument("paths", metavar="FILE...", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
@click.option("--music21-mozart", "mozart", is_flag=True,
              help="Read the Mozart movements bundled with music21 (quartets, K. 545).")  # fmt: skip
@click.option("--bars", default=16, show_default=True, type=click.IntRange(4, 64),
              help="Bars per phrase (one post each).")  # fmt: skip
@click.option("--parsing-only", is_flag=True,
              help="Keep only phrases that abc2midi reads without an error (needs abcmidi).")  # fmt: skip
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE.jsonl", help="Output JSONL ('-' for stdout) [default: corpus/<name>.jsonl].")  # fmt: skip
def scrape_score(
    paths: tuple[Path, ...], mozart: bool, bars: int, parsing_only: bool, out: Path | None
) -> None:
    """Import MusicXML scores as ABC phrases of their melody (music21).

    Chords become their top note; phrases with tuplets or a change of key or meter are
    skipped. For a "Mozart-like" persona, fine-tune a tunes persona on the result.

    \b
    Examples:
      bot scrape score --music21-mozart -o corpus/mozart.jsonl
      bot train -p mozart --kind abc_lstm --corpus corpus/mozart.jsonl --base models/tunes
    """
    import importlib.util

    from bot.corpus.score import ScoreStats, import_scores, mozart_scores

    if importlib.util.find_spec("music21") is None:
        raise CorpusError("bot scrape score needs music21", "pip install -r requirements-train.txt")
    sources = list(paths) + (mozart_scores() if mozart else [])
    if not sources:
        raise CorpusError("no scores given", "pass MusicXML files, or --music21-mozart")
    stats = ScoreStats()
    docs = import_scores(sources, bars=bars, stats=stats)
    if parsing_only:
        docs = (d for d in docs if _parses(d.text))
    out = _default_out(out, "mozart" if mozart else sources[0].stem)
    result = run_pipeline(docs, out, near_dedupe=False)
    _report(out, result, Counter())
    click.echo(stats.format(), err=True)


def _parses(text: str) -> bool:
    from bot.music import tools
    from bot.music.filters import abc2midi_errors

    if tools.find("abc2midi") is None:
        raise CorpusError("--parsing-only needs abc2midi",
                          tools.install_hint([t for t in tools.TOOLS if t.name == "abc2midi"]))  # fmt: skip
    return not abc2midi_errors(text)


def _report(out: Path, stats: PipelineStats, skipped: Counter[str]) -> None:
    where = "stdout" if out == Path("-") else str(out)
    click.echo(f"wrote {stats.written} posts to {where}", err=True)
    dropped = {**skipped, **stats.removed}
    if dropped:
        click.echo("skipped: " + " ".join(f"{k}={v}" for k, v in sorted(dropped.items())), err=True)
    if stats.corpus is not None:
        click.echo(stats.corpus.format(), err=True)


def _default_out(out: Path | None, name: str) -> Path:
    return out if out is not None else DEFAULT_DIR / f"{name}.jsonl"


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


