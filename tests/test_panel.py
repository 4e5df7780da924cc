"""The sense panel, bench/panel.py (issue 27, point 1): `make` writes a blind sheet of the
persona's posts, the author's own runs and a word Markov chain's posts, shuffled, with its
key; `score` reads the readers' ratings and reports per source the mean, the share rated
4-5, how well the readers agree, and whether the panel counts."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import fake_persona_dir

ROOT = Path(__file__).resolve().parents[1]
APHORISMS = Path(__file__).parent / "data" / "tiny" / "aphorisms.txt"
MAX_CHARS = 120
CONFIG = f"""
personas:
  ada:
    model: {{model}}
    temperature: 1.0
    candidates: 8
    max_rounds: 6
    filters:
      min_chars: 20
      max_chars: {MAX_CHARS}
      default_blocklist: false
"""
# The instruction, verbatim: panels stay comparable only if readers read this.
INSTRUCTION = (
    "For each numbered text, rate how well it makes sense as English prose, 1 to 5: 5 = fully "
    "grammatical and its meaning is clear and coherent throughout; 4 = grammatical and "
    "meaningful with at most a small slip; 3 = partly meaningful, some broken grammar or a "
    "drifting thought; 2 = mostly broken, fragments of sense; 1 = word salad. Judge only sense "
    "and grammar, not style, authorship or whether you recognise the text; archaic forms are "
    "fine."
)
NUMBERED = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)


def load_panel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_panel", ROOT / "bench" / "panel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def panel() -> ModuleType:
    return load_panel()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose persona ada is the committed tiny persona, composing from few
    candidates (fast)."""
    root = tmp_path_factory.mktemp("panel")
    model = fake_persona_dir(root / "models" / "ada")
    path = root / "config.yaml"
    path.write_text(CONFIG.format(model=model), encoding="utf-8")
    return path


def make(panel: ModuleType, config: Path, out: Path, seed: int) -> tuple[int, str, str]:
    """`bench/panel.py make` in this process: exit code, stdout, stderr."""
    pytest.importorskip("markovify")
    return run(panel, "make", "-c", str(config), "-p", "ada", "--corpus", str(APHORISMS),
               "--seed", str(seed), "-o", str(out))  # fmt: skip


def run(panel: ModuleType, *args: str) -> tuple[int, str, str]:
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = panel.main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def sheet(panel: ModuleType, config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sheet, seed 7 (made once for the module)."""
    out = tmp_path_factory.mktemp("sheets") / "seed7"
    code, stdout, stderr = make(panel, config, out, 7)
    assert code == 0, stderr
    assert "sheet.md" in stdout
    return out


def key_of(sheet: Path) -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = json.loads((sheet / "key.json").read_text())["texts"]
    return texts


def test_make_writes_sixty_shuffled_numbered_texts_and_their_key(sheet: Path) -> None:
    text = (sheet / "sheet.md").read_text(encoding="utf-8")
    numbered = {int(n): t for n, t in NUMBERED.findall(text)}
    assert sorted(numbered) == list(range(1, 61))
    key = key_of(sheet)
    assert {int(n): item["text"] for n, item in key.items()} == numbered
    sources = [key[str(n)]["source"] for n in range(1, 61)]
    assert {s: sources.count(s) for s in set(sources)} == {"posts": 20, "real": 20,
                                                           "markov": 20}  # fmt: skip
    changes = sum(a != b for a, b in pairwise(sources))
    assert changes >= 20  # shuffled: in blocks there would be 2 changes
    assert INSTRUCTION in text  # verbatim
    rest = NUMBERED.sub("", text).lower()  # what the sheet says besides the texts
    assert not {"markov", "posts", "real", "author", "ada", "7"} & set(re.findall(r"\w+", rest))


def test_the_sheet_is_blind_to_typography(sheet: Path) -> None:
    """The same typography for every source: no _emphasis_ marks, straight quotes, one kind
    of dash; whitespace collapsed."""
    for item in key_of(sheet).values():
        t = item["text"]
        assert "_" not in t and not set(t) & set("\u2018\u2019\u201c\u201d\u2013\u2014`")
        assert " --" not in t and "-- " not in t and " - " not in t
        assert t == " ".join(t.split()) and t


def test_every_source_gets_the_same_typography(panel: ModuleType) -> None:
    """A post, a Gutenberg sentence and a Markov line written with other marks read alike."""
    same = 'He said "no"--truly--then--more, my_friend\'s'
    for text in ("He said \u201cno\u201d \u2014 _truly_ -- then - more, my_friend`s",
                 'He  said "no"--truly --then  -  more,\nmy_friend\'s'):  # fmt: skip
        assert panel.normalise(text) == same.replace("my_friend", "myfriend")


def test_posts_are_the_daemons_and_real_runs_match_their_length(
    panel: ModuleType, sheet: Path
) -> None:
    key = key_of(sheet).values()
    posts, real, chain = ([i["text"] for i in key if i["source"] == s]
                          for s in ("posts", "real", "markov"))  # fmt: skip
    assert all(20 <= len(p) <= MAX_CHARS for p in posts)  # the configured filters
    assert len(set(posts)) == 20
    mean_posts, mean_real = sum(map(len, posts)) / 20, sum(map(len, real)) / 20
    assert abs(mean_real - mean_posts) < 0.3 * mean_posts
    from bot.corpus.hygiene import clean_book  # the text as the persona is trained on it

    corpus = panel.normalise(clean_book(APHORISMS.read_text(encoding="utf-8")))
    assert all(r in corpus for r in real)  # the author's own sentences
    assert not any(m in corpus for m in chain)  # novel


def test_the_same_seed_gives_the_same_sheet_another_seed_another(
    panel: ModuleType, config: Path, sheet: Path, tmp_path: Path
) -> None:
    assert make(panel, config, tmp_path / "again", 7)[0] == 0
    assert (tmp_path / "again" / "sheet.md").read_text() == (sheet / "sheet.md").read_text()
    assert make(panel, config, tmp_path / "fresh", 8)[0] == 0
    fresh = key_of(tmp_path / "fresh")
    assert {i["text"] for i in fresh.values()} != {i["text"] for i in key_of(sheet).values()}


def test_make_refuses_an_existing_directory(panel: ModuleType, config: Path, sheet: Path) -> None:
    before = (sheet / "sheet.md").read_text()
    code, _, stderr = make(panel, config, sheet, 9)
    assert code == 1 and len(stderr.strip().splitlines()) == 1
    assert "already exists" in stderr
    assert (sheet / "sheet.md").read_text() == before


def ratings(sheet: Path, path: Path, by_source: dict[str, list[int]]) -> Path:
    """A reader's file: the k-th text of a source (in sheet order) gets by_source[source][k]."""
    seen: dict[str, int] = {}
    lines = []
    for n, item in sorted(key_of(sheet).items(), key=lambda kv: int(kv[0])):
        k = seen[item["source"]] = seen.get(item["source"], -1) + 1
        lines.append(f"{n}: {by_source[item['source']][k]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_score_reports_means_shares_and_agreement(
    panel: ModuleType, sheet: Path, tmp_path: Path
) -> None:
    a = ratings(sheet, tmp_path / "a.txt", {"posts": [1] * 20, "real": [5] * 20,
                                            "markov": [2] * 20})  # fmt: skip
    b = ratings(sheet, tmp_path / "b.txt", {"posts": [4] * 5 + [2] * 15, "real": [4] * 20,
                                            "markov": [2] * 19 + [3]})  # fmt: skip
    code, out, err = run(panel, "score", str(sheet), "--ratings", str(a), "--ratings", str(b),
                         "--json")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert r["sources"]["posts"]["mean"] == pytest.approx(1.75)
    assert r["sources"]["posts"]["share_4_5"] == pytest.approx(0.125)
    assert [x["mean"] for x in r["sources"]["posts"]["readers"]] == pytest.approx([1.0, 2.5])
    assert r["sources"]["real"]["mean"] == pytest.approx(4.5)
    assert r["sources"]["real"]["share_4_5"] == 1.0
    assert r["sources"]["markov"]["mean"] == pytest.approx(2.025)
    assert r["sources"]["markov"]["share_4_5"] == 0.0
    assert r["agreement"] == pytest.approx(1.5)  # posts: 1.0 against 2.5
    assert r["counts"] is True

    code, out, _ = run(panel, "score", str(sheet), "--ratings", str(a), "--ratings", str(b))
    assert code == 0
    assert re.search(r"\| posts .*\| 1\.75 \| 12\.5% \|", out)
    assert "counts" in out and "1.50" in out


def test_a_panel_counts_only_with_two_readers_who_see_sense_in_the_real_runs(
    panel: ModuleType, sheet: Path, tmp_path: Path
) -> None:
    good = ratings(sheet, tmp_path / "good.txt", {"posts": [1] * 20, "real": [5] * 20,
                                                  "markov": [2] * 20})  # fmt: skip
    harsh = ratings(sheet, tmp_path / "harsh.txt", {"posts": [1] * 20,
                                                    "real": [5] * 17 + [3] * 3,
                                                    "markov": [2] * 20})  # fmt: skip
    code, out, _ = run(panel, "score", str(sheet), "--ratings", str(good), "--json")
    assert code == 0 and json.loads(out)["counts"] is False  # one reader
    code, out, _ = run(panel, "score", str(sheet), "--ratings", str(good), "--ratings",
                       str(harsh), "--json")  # fmt: skip
    r = json.loads(out)
    assert code == 0 and r["counts"] is False and "harsh.txt" in r["why"]  # 85% < 90%
    code, out, _ = run(panel, "score", str(sheet), "--ratings", str(good), "--ratings", str(harsh))
    assert "does not count" in out


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda lines: [x for x in lines if not x.startswith("17:")], "17"),
        (lambda lines: [re.sub(r"^5: \d", "5: 6", x) for x in lines], "1-5"),
        (lambda lines: [re.sub(r"^5: \d", "5: 0", x) for x in lines], "1-5"),
        (lambda lines: [*lines, "61: 3"], "61"),
        (lambda lines: [*lines, "lovely"], "number: rating"),
    ],
)
def test_score_refuses_a_bad_ratings_file_with_one_line(
    panel: ModuleType,
    sheet: Path,
    tmp_path: Path,
    edit: Callable[[list[str]], list[str]],
    said: str,
) -> None:
    path = ratings(sheet, tmp_path / "r.txt", {s: [3] * 20 for s in ("posts", "real", "markov")})
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    code, out, err = run(panel, "score", str(sheet), "--ratings", str(path), "--ratings",
                         str(path))  # fmt: skip
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and said in err and "r.txt" in err


def test_panel_runs_as_a_script(tmp_path: Path, sheet: Path) -> None:
    """The command BENCHMARKS.md gives: a fresh interpreter, one-line error, exit 1."""
    import subprocess

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "panel.py"), "score",
                             str(tmp_path / "nowhere"), "--ratings", str(tmp_path / "r.txt")],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "key.json" in result.stderr


def test_benchmarks_holds_the_instruction_the_sheet_gives(panel: ModuleType) -> None:
    assert panel.INSTRUCTION == INSTRUCTION
    assert INSTRUCTION in (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
