"""Corpus: importers on format-faithful fixtures, cleaning, dedupe, stats, and scraping a
real Mastodon API (mastodon-mock on loopback) through Mastodon.py."""

from __future__ import annotations

import json
import random
import re
import shutil
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from mastodon import Mastodon

from bot.commands.cli import cli
from bot.commands.scrape import scrape
from bot.core.errors import CorpusError
from bot.corpus import Document, read_jsonl
from bot.corpus.archive import import_archive
from bot.corpus.clean import CleanOptions, clean_plain, guess_language, html_to_text, is_language
from bot.corpus.dedupe import Deduper, dedupe
from bot.corpus.mastodon import opt_out_reason, parse_acct, scrape_account
from bot.corpus.stats import compute_stats
from bot.corpus.text import import_text, split_paragraphs, strip_gutenberg
from bot.engine.card import NORMALISE
from bot.train.data import load_corpus

if TYPE_CHECKING:
    from tests.fakes.mastodon_server import MastodonServer

pytest_plugins = ["tests.fakes.mastodon_server"]  # the mastodon_server fixture

DATA = Path(__file__).parent / "data" / "corpus"
MASTODON_ARCHIVE = DATA / "mastodon-archive"
TWITTER_ARCHIVE = DATA / "twitter-archive"
GUTENBERG = DATA / "peter-rabbit-gutenberg.txt"

if "scrape" not in cli.commands:  # the lead registers it in bot/commands/cli.py; until then, here
    cli.add_command(scrape)


def anonymous(server: MastodonServer) -> Mastodon:
    """A logged-out client, as a scraper usually is; 429s raise (we wait them out)."""
    return Mastodon(
        api_base_url=server.base_url,
        ratelimit_method="throw",
        version_check_mode="none",
        request_timeout=5,
    )


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


def texts(docs: object) -> list[str]:
    return [doc.text for doc in docs]  # type: ignore[attr-defined]


# --- HTML cleaning ----------------------------------------------------------------------

MENTION = (
    '<span class="h-card" translate="no"><a href="https://other.social/@bob" '
    'class="u-url mention">@<span>bob</span></a></span>'
)
HASHTAG = (
    '<a href="https://ex.social/tags/cats" class="mention hashtag" rel="tag">#<span>cats</span></a>'
)
LINK = (
    '<a href="https://example.org/a/long/page" target="_blank" rel="nofollow noopener" '
    'translate="no"><span class="invisible">https://</span><span class="ellipsis">'
    'example.org/a/lo</span><span class="invisible">ng/page</span></a>'
)


@pytest.mark.parametrize(
    ("html", "options", "expected"),
    [
        ("<p>one</p><p>two</p>", {}, "one\n\ntwo"),
        ("<p>line<br>break<br />again</p>", {}, "line\nbreak\nagain"),
        (f"<p>{MENTION} hello there</p>", {}, "hello there"),
        (f"<p>hi {MENTION}, you and @carol@far.example too</p>", {}, "hi , you and too"),
        (f"<p>see {LINK} now</p>", {}, "see now"),
        (f"<p>see {LINK} now</p>", {"keep_links": True}, "see https://example.org/a/long/page now"),
        ('<p><a href="https://ex.org">my essay</a> is out</p>', {}, "my essay is out"),
        (f"<p>I like {HASHTAG}</p>", {}, "I like #cats"),
        (f"<p>I like {HASHTAG} #dogs</p>", {"hashtags": "drop"}, "I like"),
        (
            "<p>fish &amp; chips &lt;3 &quot;yes&quot; caf&eacute; &#128512;</p>",
            {},
            'fish & chips <3 "yes" café 😀',
        ),
        ("<p>mail me at ada@example.org</p>", {}, "mail me at ada@example.org"),
        (
            (
                '<p class="quote-inline">RE: <a href="https://x.social/@a/1">x.social/@a/1</a></p>'
                "<p>so true</p>"
            ),
            {},
            "so true",
        ),
        ("<p>  lots   of\tspace  </p><p></p><p></p><p>end</p>", {}, "lots of space\n\nend"),
        ("<ul><li>one</li><li>two</li></ul>", {}, "one\n\ntwo"),
        ("", {}, ""),
    ],
)
def test_html_to_text(html: str, options: dict[str, object], expected: str) -> None:
    assert html_to_text(html, **options) == expected  # type: ignore[arg-type]


def test_clean_plain_leaves_profile_urls_whole_when_links_are_kept() -> None:
    text = "@bob look https://ex.social/@ada/1 #art"
    assert clean_plain(text, keep_links=True) == "look https://ex.social/@ada/1 #art"
    assert clean_plain(text, hashtags="drop") == "look"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The cat is on the mat and it was happy with that.", "en"),
        ("Der Hund ist nicht hier, und die Katze auch nicht.", "de"),
        ("Le chat est dans la maison et il ne veut pas sortir.", "fr"),
        ("El perro está en la casa y no quiere salir por la noche.", "es"),
        ("ok", None),  # too short to tell: kept by the filter
    ],
)
def test_guess_language(text: str, expected: str | None) -> None:
    assert guess_language(text) == expected


def test_declared_language_wins_over_the_guess() -> None:
    assert is_language("Der Hund ist nicht hier und die Katze", "en-GB", "en")
    assert not is_language("The cat is on the mat and it is fine", "de", "en")
    assert is_language("ok", None, "en")


# --- plain text and Gutenberg ------------------------------------------------------------


def test_gutenberg_header_and_licence_are_stripped() -> None:
    docs = list(import_text([GUTENBERG]))
    joined = "\n".join(texts(docs))
    assert docs[0].text == "THE TALE OF PETER RABBIT"
    assert "Once upon a time there were four little Rabbits" in joined
    assert docs[-1].text == "THE END"
    for boilerplate in (
        "Project Gutenberg",
        "gutenberg.org",
        "LICENSE",
        "Produced by",
        "START OF",
        "END OF",
        "Release date",
    ):
        assert boilerplate not in joined
    assert all(doc.source == "gutenberg:peter-rabbit-gutenberg.txt" for doc in docs)
    assert len({doc.id for doc in docs}) == len(docs)


def test_hard_wrapped_paragraphs_are_unwrapped() -> None:
    docs = list(import_text([GUTENBERG]))
    rabbits = next(doc.text for doc in docs if doc.text.startswith("Once upon"))
    assert rabbits == (
        "Once upon a time there were four little Rabbits, and their names "
        "were--Flopsy, Mopsy, Cotton-tail, and Peter."
    )
    assert split_paragraphs("a\nb\r\n\r\n\n  c  \n") == ["a b", "c"]


def test_older_gutenberg_markers_and_plain_text_passthrough() -> None:
    old = (
        "Header\n*** START OF THIS PROJECT GUTENBERG EBOOK FOO ***\nBody here.\n"
        "End of the Project Gutenberg EBook of Foo\nlicence text"
    )
    assert strip_gutenberg(old).strip() == "Body here."
    assert strip_gutenberg("no markers\n\nat all") == "no markers\n\nat all"


def test_text_folders_are_read_recursively_and_only_txt() -> None:
    docs = list(import_text([DATA / "notes"]))
    assert [doc.source for doc in docs] == [
        "text:letters.txt",
        "text:letters.txt",
        "text:journal.txt",
    ]
    assert docs[0].created_at is None
    assert "ignored" not in "".join(texts(docs))


def test_text_that_is_not_utf8_or_is_binary_is_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café society".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8") as err:
        list(import_text([latin]))
    assert "iconv" in err.value.hint
    binary = tmp_path / "model.txt"
    binary.write_bytes(b"\x00\x01\x02PK")
    with pytest.raises(CorpusError, match="binary"):
        list(import_text([binary]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .txt files"):
        list(import_text([tmp_path / "empty"]))


# --- book hygiene: what `bot train --corpus book.txt` and `bot new NAME book.txt` train on --

HYGIENE = Path(__file__).parent / "data" / "hygiene"


def trained_on(*paths: Path) -> list[str]:
    """Every document the trainer reads from these files (bot.train.data, as `bot train`
    and `bot new` read them), none held out."""
    return load_corpus(list(paths), val_fraction=0).train


@pytest.mark.parametrize(
    ("name", "gone", "kept"),
    [
        (  # title page, transcriber's note, contents, chapter headings, aphorism numbers
            "beyond_good_and_evil.txt",
            ("BEYOND GOOD AND EVIL", "By Friedrich Nietzsche", "Translated by Helen Zimmern",
             "TRANSCRIBER'S NOTE", "Original footnotes are put in brackets", "CONTENTS",
             "CHAPTER", "APOPHTHEGMS", "PREFACE", "PREJUDICES OF PHILOSOPHERS", "1. The Will",
             "27. It is", "195. The Jews", "196. It", "Footnote", "Like the river Ganges"),
            ("The Will to Truth, which is to tempt us to many a hazardous enterprise",
             ("It is difficult to be understood, especially when one thinks and lives "
              "gangasrotogati among those only who think and live otherwise--namely, "
              "kurmagati, or at best"),
             'The Jews--a people "born for slavery," as Tacitus'),
        ),
        (  # section numbers alone on a line, a [1] marker and its footnote
            "antichrist.txt",
            ("THE ANTICHRIST", "[1]", "Pythian ode", "Rhipaean mountains"),
            ("--Let us look each other in the face.",
             "even Pindar, in his day, knew _that_ much about us.",
             "What is good?--Whatever augments the feeling of power"),
        ),
        (  # the translator's notes at the back, with headings of their own
            "zarathustra_notes.txt",
            ("APPENDIX", "NOTES ON", "LUDOVICI", "I have had some opportunities",
             "Chapter LXXX", "In this discourse, Nietzsche disassociates", "criticism",
             "London, February 1909"),
            ("My suffering and my fellow-suffering--what matter about them!",
             "Thus spake Zarathustra and left his cave"),
        ),
        (  # poems: their numbers and titles and an editor's bracketed note go, the verse stays
            "dickinson.txt",
            ("LIFE", "SUCCESS", "[Published", "A Masque of Poets", "fellow-townswoman"),
            ("This is my letter to the world, That never wrote to me, -- The simple news",
             "Success is counted sweetest By those who ne'er succeed."),
        ),
        (  # a play: the speaker headings go, the speeches stay
            "coriolanus.txt",
            ("First Citizen:", "Second Citizen:", "All:", "Citizen"),
            ("Before we proceed any further, hear me speak.", "Speak, speak.",
             "We know't, we know't.", "Resolved. resolved."),
        ),
    ],
)  # fmt: skip
def test_book_apparatus_is_not_trained_on(
    name: str, gone: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    docs = trained_on(HYGIENE / name)
    text = "\n".join(docs)
    for debris in gone:
        assert debris not in text, debris
    for prose in kept:
        assert prose in text, prose
    assert not [doc for doc in docs if re.fullmatch(r"[\W\dIVXLC]*", doc)]  # no bare numbers


def test_prose_passes_through_unchanged() -> None:
    """Precision: paragraphs of prose (a year at a paragraph's start, one-line dialogue,
    curly quotes, _italics_) come out exactly as the trainer read them before."""
    path = HYGIENE / "prose.txt"
    expected = split_paragraphs(path.read_text(encoding="utf-8").translate(NORMALISE))
    assert trained_on(path) == expected
    assert expected[0].startswith("1801.--I have just returned")
    assert "'Mr. Heathcliff?' I said." in expected and "A nod was the answer." in expected


def test_capitals_for_emphasis_are_folded(tmp_path: Path) -> None:
    text = "\n".join(trained_on(HYGIENE / "beyond_good_and_evil.txt",
                                HYGIENE / "zarathustra_notes.txt"))  # fmt: skip
    for shouted, folded in [
        ("WHO is it really", "Who is it really"),
        ("about the VALUE of this Will", "about the value of this Will"),
        ("RISK RAISING it", "risk raising it"),
        ("with THEM that the SLAVE-INSURRECTION IN MORALS commences",
         "with them that the slave-insurrection in morals commences"),
        ("It is to be INFERRED", "It is to be inferred"),
        ("This is MY morning, MY day beginneth: ARISE NOW, ARISE, THOU GREAT NOONTIDE!",
         "This is my morning, my day beginneth: arise now, arise, thou great noontide!"),
    ]:  # fmt: skip
        assert shouted not in text and folded in text, folded
    # a name keeps its capital, "I" and Roman numerals stay, a sentence starts with one
    book = tmp_path / "book.txt"
    book.write_text(
        "I said to Zarathustra that King Richard II was not TRUTH. Zarathustra went on.\n\n"
        "ZARATHUSTRA came down; he was not LOOKING for Richard II.\n",
        encoding="utf-8",
    )
    assert trained_on(book) == [
        "I said to Zarathustra that King Richard II was not truth. Zarathustra went on.",
        "Zarathustra came down; he was not looking for Richard II.",
    ]


def test_a_book_without_gutenberg_markers_is_cleaned_as_one_with_them(tmp_path: Path) -> None:
    plain = trained_on(HYGIENE / "genealogy_plain.txt")
    assert plain == trained_on(HYGIENE / "genealogy_gutenberg.txt")
    licence = tmp_path / "licence_no_start.txt"  # a licence at the end, no START line
    licence.write_text(
        (HYGIENE / "genealogy_plain.txt").read_text(encoding="utf-8")
        + "\n\nEnd of the Project Gutenberg EBook of The Genealogy of Morals\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK THE GENEALOGY OF MORALS ***\n\n"
        "Updated editions will replace the previous one--the old editions\nwill be renamed.\n",
        encoding="utf-8",
    )
    assert trained_on(licence) == plain
    assert plain[0].startswith("We are unknown, we knowers, ourselves to ourselves")
    assert plain[-1].endswith('to bring something "home to the hive!"')
    text = "\n".join(plain)
    for debris in ("GENEALOGY", "POLEMIC", "FRIEDRICH", "SAMUEL", "FOULIS", "1913",
                   "EDITOR'S NOTE", "In 1887", "CONTENTS", "ESSAY", "Kennedy", "PREFACE"):  # fmt: skip
        assert debris not in text, debris


# --- archives ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "zip", "outbox.json"])
def test_mastodon_archive_keeps_own_public_posts(form: str, tmp_path: Path) -> None:
    path = {
        "folder": MASTODON_ARCHIVE,
        "zip": zip_folder(MASTODON_ARCHIVE, tmp_path / "archive-20230310.zip"),
        "outbox.json": MASTODON_ARCHIVE / "outbox.json",
    }[form]
    skipped: Counter[str] = Counter()
    docs = list(import_archive(path, CleanOptions(), skipped))
    assert texts(docs) == [
        (
            "The engine weaves algebraical patterns just as the Jacquard loom weaves flowers and "
            "leaves. #AnalyticalEngine\n\nNotes at\nthanks & all"
        ),
        "The more I study, the more insatiable do I feel my genius for it to be.",  # own thread
        (
            "Die Maschine webt algebraische Muster, so wie der Webstuhl die Blumen und die Blätter "
            "webt."
        ),  # unlisted counts as public
        (
            "The engine weaves algebraical patterns just as the Jacquard loom weaves flowers and "
            "leaves!"
        ),
    ]
    assert skipped == {"boost": 1, "cw": 1, "reply": 1, "private": 1, "empty": 1}
    assert docs[0].created_at == "2023-03-01T10:00:00Z"
    assert docs[0].id == "https://example.social/users/ada/statuses/110000000000000001"
    assert docs[0].source == "mastodon-archive"
    assert [doc.language for doc in docs] == ["en", "en", "de", "en"]


def test_mastodon_archive_options() -> None:
    options = CleanOptions(include_cw=True, include_replies=True, keep_links=True, hashtags="drop")
    skipped: Counter[str] = Counter()
    joined = "\n".join(texts(import_archive(MASTODON_ARCHIVE, options, skipped)))
    assert "merely mortal" in joined  # the CW post
    assert "Your difference engine is a marvel" in joined  # the reply, mention removed
    assert "@charles" not in joined
    assert "https://example.org/notes/g" in joined
    assert "#AnalyticalEngine" not in joined
    assert "followers only" not in joined  # private posts never, whatever the options
    assert skipped == {"boost": 1, "private": 1, "empty": 1}


@pytest.mark.parametrize("form", ["folder", "zip", "tweets.js"])
def test_twitter_archive(form: str, tmp_path: Path) -> None:
    path = {
        "folder": TWITTER_ARCHIVE,
        "zip": zip_folder(TWITTER_ARCHIVE, tmp_path / "twitter-2023.zip"),
        "tweets.js": TWITTER_ARCHIVE / "data" / "tweets.js",  # finds account.js beside it
    }[form]
    skipped: Counter[str] = Counter()
    docs = list(import_archive(path, CleanOptions(), skipped))
    assert texts(docs) == [
        "Beware; for I am fearless, and therefore powerful & free. #Frankenstein",
        "Nothing is so painful to the human mind as a great and sudden change.",  # own thread
        "The lake at Geneva, this evening <3",  # photo link gone
    ]
    assert skipped == {"boost": 1, "reply": 1, "cw": 1}
    assert docs[0].created_at == "2023-02-18T12:33:11Z"
    assert docs[0].id == "1626900000000000001"
    assert docs[0].source == "twitter-archive"
    assert "never meant to keep" not in "".join(texts(docs))  # deleted-tweets.js ignored


def test_twitter_links_expand_when_kept() -> None:
    options = CleanOptions(keep_links=True, include_replies=True)
    docs = list(import_archive(TWITTER_ARCHIVE, options))
    assert docs[0].text.endswith("#Frankenstein https://example.org/chapter-4")
    assert "The ruins are lovely, but come home for tea." in texts(docs)  # @pbshelley gone
    assert not any("t.co" in doc.text for doc in docs)


def test_unknown_archive_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "notes.zip"
    with zipfile.ZipFile(junk, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CorpusError, match="neither a Mastodon export nor a Twitter"):
        list(import_archive(junk))
    broken = tmp_path / "outbox.json"
    broken.write_text('{"orderedItems": [', encoding="utf-8")
    with pytest.raises(CorpusError, match="not valid JSON"):
        list(import_archive(broken))


# --- dedupe and stats ---------------------------------------------------------------------


def doc(text: str, created_at: str | None = None) -> Document:
    return Document(text=text, created_at=created_at, source="test", id=text[:10])


def test_dedupe_removes_exact_and_near_duplicates_only() -> None:
    base = "The engine weaves algebraical patterns just as the loom weaves flowers and leaves"
    posts = [
        base,
        base.upper() + "!!",  # exact after normalisation
        base.replace("flowers", "roses"),  # near: one word changed
        "A completely different thought about poetry, science and the imagination at night",
        "ok",
        "OK.",  # short: exact after normalisation
    ]
    deduper = Deduper()
    kept = list(dedupe([doc(p) for p in posts], deduper))
    assert texts(kept) == [posts[0], posts[3], posts[4]]
    assert deduper.removed == {"exact": 2, "near": 1}


def test_dedupe_keeps_many_distinct_posts() -> None:
    # 3,000 posts of 6-20 random words: unrelated texts are never taken for duplicates.
    rng = random.Random(1337)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qua", "do"]
    vocab = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(800)]
    posts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 20))) for _ in range(3000)]
    deduper = Deduper()
    assert len(list(dedupe((doc(p) for p in posts), deduper))) == 3000 - deduper.removed["exact"]
    assert deduper.removed["near"] == 0


def test_stats_report() -> None:
    stats = compute_stats(
        [doc("abca", "2023-03-02T00:00:00Z"), doc("b", None), doc("cc", "2021-01-01T00:00:00Z")]
    )
    assert (stats.posts, stats.characters, stats.vocab_size) == (3, 7, 3)
    assert stats.top_chars[0] == ("c", 3)
    assert (stats.first_date, stats.last_date) == ("2021-01-01T00:00:00Z", "2023-03-02T00:00:00Z")
    report = stats.format()
    assert "posts: 3" in report and "vocabulary: 3" in report and "2021-01-01" in report


# --- the CLI (import pipeline) ----------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scrape_text_writes_trainer_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "corpus" / "peter.jsonl"
    result = CliRunner().invoke(
        cli, ["scrape", "text", str(GUTENBERG), str(DATA / "notes"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    records = read_lines(out)
    assert len(records) == 10
    assert all(set(r) == {"text", "created_at", "source", "id"} for r in records)
    assert "wrote 10 posts" in result.output and "vocabulary:" in result.output
    assert [d.text for d in read_jsonl(out)] == [r["text"] for r in records]


def test_scrape_archive_filters_dedupes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "ada.jsonl"
    archive = zip_folder(MASTODON_ARCHIVE, tmp_path / "archive.zip")
    result = CliRunner().invoke(
        cli,
        [
            "scrape",
            "archive",
            str(archive),
            "-o",
            str(out),
            "--language",
            "en",
            "--since",
            "2023-03-02",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in read_lines(out)] == [
        "The more I study, the more insatiable do I feel my genius for it to be.",
        (
            "The engine weaves algebraical patterns just as the Jacquard loom weaves flowers and "
            "leaves!"
        ),
    ]
    assert "before_since=1" in result.output and "other_language=1" in result.output
    assert "dates: 2023-03-04T08:20:00Z .. 2023-03-07T11:00:00Z" in result.output


def test_scrape_archive_dedupes_and_limits(tmp_path: Path) -> None:
    out = tmp_path / "ada.jsonl"
    result = CliRunner().invoke(cli, ["scrape", "archive", str(MASTODON_ARCHIVE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(read_lines(out)) == 3 and "near_duplicate=1" in result.output
    result = CliRunner().invoke(
        cli, ["scrape", "archive", str(TWITTER_ARCHIVE), "-o", str(out), "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(read_lines(out)) == 2  # replaced, not appended


def test_scrape_with_nothing_left_is_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "none.jsonl"
    result = CliRunner().invoke(
        cli, ["scrape", "archive", str(TWITTER_ARCHIVE), "-o", str(out), "--since", "2030-01-01"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: no posts left to write")
    assert not out.exists() and not (tmp_path / "none.jsonl.tmp").exists()


# --- scraping a live account (mastodon-mock over loopback) --------------------------------


def seed_account(
    server: MastodonServer,
    username: str = "ada",
    *,
    posts: int = 7,
    note: str = "Poetical scientist",
) -> None:
    """`posts` public posts, plus one of each thing the scraper must not take."""
    account = server.create_account(username, note=note)
    client = server.client(account)
    client.status_post("first words of the engine", visibility="public")
    other = server.post_as(server.alice, "hello from alice", visibility="public")
    client.status_post("spoilers about the end", visibility="public", spoiler_text="spoilers")
    client.status_post(
        "@alice thanks for the note", visibility="public", in_reply_to_id=other["id"]
    )
    client.status_post("for followers only", visibility="private")
    client.status_reblog(other["id"])
    for number in range(1, posts):
        client.status_post(
            f"post {number}: the loom weaves pattern {number * 37}",
            visibility="public" if number % 2 else "unlisted",
        )


def test_scrape_pages_and_skips_cw_replies_boosts(mastodon_server: MastodonServer) -> None:
    seed_account(mastodon_server)
    client = anonymous(mastodon_server)  # anonymous, as a scraper usually is
    skipped: Counter[str] = Counter()
    pages: list[int] = []

    class Pages:
        def start(self, total: int | None) -> None:
            assert total is not None and total >= 7

        def advance(self, count: int) -> None:
            pages.append(count)

    docs = list(scrape_account(client, "ada", page_size=2, skipped=skipped, progress=Pages()))
    assert texts(docs) == [
        f"post {n}: the loom weaves pattern {n * 37}" for n in range(6, 0, -1)
    ] + ["first words of the engine"]
    assert len(pages) >= 4  # several pages
    assert skipped["cw"] == 1
    joined = " ".join(texts(docs))
    for absent in ("spoilers", "thanks for the note", "followers only", "hello from alice"):
        assert absent not in joined
    assert docs[0].source == "mastodon:ada" and docs[0].created_at.endswith("Z")  # type: ignore[union-attr]


def test_scrape_includes_cw_when_asked(mastodon_server: MastodonServer) -> None:
    seed_account(mastodon_server, posts=2)
    client = anonymous(mastodon_server)
    docs = list(scrape_account(client, "ada", options=CleanOptions(include_cw=True)))
    assert "spoilers about the end" in texts(docs)


@pytest.mark.parametrize(
    ("note", "fields", "discoverable", "reason"),
    [
        ("I post art. #NoBot", None, None, "#NoBot"),
        ("<p>please: #noscrape</p>", None, None, "#noscrape"),
        ("hi", [("policy", "#noai")], None, "#noai"),
        ("hi", None, False, "discoverable is off"),
    ],
)
def test_opted_out_account_is_refused(
    mastodon_server: MastodonServer,
    note: str,
    fields: list[tuple[str, str]] | None,
    discoverable: bool | None,
    reason: str,
) -> None:
    seed_account(mastodon_server, "carol", posts=2, note=note)
    if fields or discoverable is not None:
        owner = mastodon_server.client(mastodon_server.account("carol"))
        owner.account_update_credentials(fields=fields, discoverable=discoverable)
    client = anonymous(mastodon_server)
    with pytest.raises(CorpusError) as err:
        list(scrape_account(client, "carol"))
    assert reason in err.value.message and "--i-have-consent" in err.value.hint
    assert "\n" not in str(err.value)
    assert len(list(scrape_account(client, "carol", consent=True))) == 2


def test_opt_out_reason_reads_noindex() -> None:
    assert opt_out_reason({"noindex": True, "note": ""}) == "noindex is set"
    assert opt_out_reason({"noindex": None, "discoverable": None, "note": "#nobots rule"}) is None


class DictStore:
    def __init__(self) -> None:
        self.cursors: dict[str, str] = {}

    def get_cursor(self, name: str) -> str | None:
        return self.cursors.get(name)

    def set_cursor(self, name: str, value: str) -> None:
        self.cursors[name] = value


def test_scrape_resumes_from_cursor_then_fetches_only_new(mastodon_server: MastodonServer) -> None:
    seed_account(mastodon_server, posts=7)
    client = anonymous(mastodon_server)
    store = DictStore()
    walk = scrape_account(client, "ada", store=store, page_size=2)
    first = [next(walk) for _ in range(3)]  # two pages handed out, then "crash"
    walk.close()
    assert json.loads(store.cursors["scrape:mastodon:ada"])["max_id"] is not None
    rest = list(scrape_account(client, "ada", store=store, page_size=2))
    assert texts(rest)[0] == texts(first)[-1]  # the half-read page comes again (dedupe drops it)
    assert len(set(texts(first + rest))) == 7
    assert json.loads(store.cursors["scrape:mastodon:ada"])["max_id"] is None  # complete
    mastodon_server.post_as(
        mastodon_server.account("ada"), "a brand new thought", visibility="public"
    )
    assert texts(scrape_account(client, "ada", store=store, page_size=2)) == ["a brand new thought"]


def test_scrape_stops_at_since(mastodon_server: MastodonServer) -> None:
    seed_account(mastodon_server, posts=3)
    client = anonymous(mastodon_server)
    assert list(scrape_account(client, "ada", since=datetime(2999, 1, 1, tzinfo=UTC))) == []


def test_scrape_waits_out_a_rate_limit(mastodon_server: MastodonServer) -> None:
    seed_account(mastodon_server, posts=3)
    mastodon_server.inject_rate_limit(
        reset_in_seconds=30, path="/api/v1/accounts/*/statuses", methods=["GET"], count=1
    )
    client = anonymous(mastodon_server)  # ratelimit_method="throw"
    waits: list[float] = []
    docs = list(scrape_account(client, "ada", sleep=waits.append))
    assert len(docs) == 3
    assert len(waits) == 1 and 1.0 <= waits[0] <= 31


def test_unknown_account_is_one_line_error(mastodon_server: MastodonServer) -> None:
    client = anonymous(mastodon_server)
    with pytest.raises(CorpusError, match="no account nobody"):
        list(scrape_account(client, "nobody"))


def test_parse_acct() -> None:
    assert parse_acct("@ada@example.social").acct == "ada@example.social"
    assert parse_acct("https://example.social/@ada").host == "example.social"
    assert parse_acct("ada").host is None
    with pytest.raises(CorpusError, match="not an account address"):
        parse_acct("@@")


def test_cli_scrape_mastodon_end_to_end(mastodon_server: MastodonServer, tmp_path: Path) -> None:
    seed_account(mastodon_server, posts=4)
    out = tmp_path / "ada.jsonl"
    args = ["scrape", "mastodon", "@ada", "--instance", mastodon_server.base_url, "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(read_lines(out)) == 4 and "skipped: cw=1" in result.output
    mastodon_server.post_as(mastodon_server.account("ada"), "one more", visibility="public")
    result = CliRunner().invoke(cli, args)  # resumes: appends only the new post
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in read_lines(out)][-1] == "one more" and len(read_lines(out)) == 5
    shutil.copy(out, tmp_path / "keep.jsonl")
    out.unlink()  # the file is gone: the cursor no longer applies, start from the top
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and len(read_lines(out)) == 5


def test_cli_scrape_mastodon_refuses_opted_out(
    mastodon_server: MastodonServer, tmp_path: Path
) -> None:
    seed_account(mastodon_server, "carol", posts=2, note="#nobot please")
    base = [
        "scrape",
        "mastodon",
        "carol",
        "--instance",
        mastodon_server.base_url,
        "-o",
        str(tmp_path / "carol.jsonl"),
    ]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "--i-have-consent" in result.output
    assert CliRunner().invoke(cli, [*base, "--i-have-consent"]).exit_code == 0


def test_cli_scrape_bare_handle_on_a_server_that_resolves_only_full_handles(
    mastodon_server: MastodonServer, tmp_path: Path
) -> None:
    """`@ada --instance URL`: the server answers 404 for `ada` and only knows `ada@domain`."""
    seed_account(mastodon_server, posts=2)
    import requests

    ada = requests.get(
        f"{mastodon_server.base_url}/api/v1/accounts/lookup", params={"acct": "ada"}, timeout=10
    ).json()  # the raw JSON, as the server would serve it for the full handle
    mastodon_server.inject_error(404, path="/api/v1/accounts/lookup", methods=["GET"])
    mastodon_server.inject_error(200, path="/api/v1/accounts/lookup", methods=["GET"], body=ada)
    out = tmp_path / "ada.jsonl"
    args = ["scrape", "mastodon", "@ada", "--instance", mastodon_server.base_url, "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(read_lines(out)) == 2


def test_cli_scrape_login_hint_names_the_flag_scrape_reads(
    mastodon_server: MastodonServer, tmp_path: Path
) -> None:
    seed_account(mastodon_server, posts=1)
    mastodon_server.inject_error(401, path="/api/v1/accounts/*/statuses", methods=["GET"])
    out = tmp_path / "ada.jsonl"
    args = ["scrape", "mastodon", "@ada", "--instance", mastodon_server.base_url, "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "--token-env NAME" in result.stderr and "MASTODON_ACCESS_TOKEN" not in result.stderr
