"""The `bot` CLI: help everywhere, documented commands, one-line errors, check and status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot import __version__
from bot.commands.cli import cli
from bot.core.post import Receipt
from bot.engine.card import MODEL_FILE
from bot.store import SQLiteStore
from tests.conftest import add_word_list_and_critic

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = sorted(cli.commands)


def test_bare_bot_prints_help() -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0
    assert "Usage:" in result.output and "Commands:" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.output == f"bot {__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_has_help(command: str) -> None:
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [command, flag])
        assert result.exit_code == 0, result.output
        assert f"Usage: cli {command}" in result.output
        short_help = cli.commands[command].get_short_help_str()
        assert short_help and short_help != "...", f"{command} needs a one-line docstring"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_documented(command: str) -> None:
    assert f"bot {command}" in README.read_text(encoding="utf-8"), f"README lacks `bot {command}`"


def test_usage_error_exits_2(ada_config: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "--no-such-flag"])
    assert result.exit_code == 2


def test_check_shows_what_would_run(ada_config: Path) -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "persona ada:" in out
    assert "70 tokens, 2x24 LSTM, 3.513 bits/char on validation" in out
    assert "publisher: outbox" in out and "ada.jsonl, unlisted" in out
    assert "schedule: every 60 min (UTC)" in out
    [runs] = [line for line in out.splitlines() if "next runs:" in line]
    assert runs.count("UTC") == 3
    assert out.rstrip().endswith("ok: 1 persona ready")


def test_check_says_which_engine_runs_the_model(
    ada_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.engine.sampler

    if bot.engine.sampler._lstm is not None:  # built (test_native insists, given a compiler)
        out = CliRunner().invoke(cli, ["check"]).output
        assert "engine: C loop for one candidate at a time, on up to " in out
    monkeypatch.setattr(bot.engine.sampler, "_lstm", None)  # as installed without a compiler
    out = CliRunner().invoke(cli, ["check"]).output
    [line] = [line for line in out.splitlines() if line.startswith("engine:")]
    assert "bot.engine._lstm was not built" in line and "install a C compiler" in line


def test_check_missing_model_file(ada_config: Path, tmp_path: Path) -> None:
    (tmp_path / "models" / "ada" / MODEL_FILE).unlink()
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path}/models/ada/model.keras: model file missing "
        "(run `bot train -p ada` or fix the path)\n"
    )


def test_check_missing_card(ada_config: Path, tmp_path: Path) -> None:
    (tmp_path / "models" / "ada" / "card.json").unlink()
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no persona card" in result.stderr


@pytest.mark.parametrize("name", ["words.npz", "critic.npz"])
def test_check_a_truncated_word_list_or_critic_is_one_line(
    ada_config: Path, tmp_path: Path, name: str
) -> None:
    folder = tmp_path / "models" / "ada"
    add_word_list_and_critic(folder)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])  # a copy cut short
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {folder / name}: cannot read the ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "`bot train -p ada --corpus <its corpus> --critic-only`" in result.stderr


def test_check_mastodon_needs_token_env(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path]
) -> None:
    make_persona("ada")
    write_config(
        "personas: {ada: {publisher: mastodon, mastodon: {base_url: 'https://x.example'}}}"
    )
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: environment variable MASTODON_ACCESS_TOKEN is not set; persona ada posts to "
        "Mastodon (export MASTODON_ACCESS_TOKEN=<the bot account's access token>)\n"
    )


def test_check_skips_disabled(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path]
) -> None:
    make_persona("ada")
    write_config("personas: {ada: {}, ghost: {enabled: false}}")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert "persona ghost: disabled, not checked" in result.output


def test_status_before_anything_ran(ada_config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "no state yet" in result.output and "posts: none yet" in result.output
    assert not (tmp_path / "home" / "revenant.db").exists()  # status creates nothing


def test_status_lists_posts_rejections_failures(ada_config: Path, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "home" / "revenant.db") as store:
        store.claim_slot("ada", "k1")
        store.record_post(
            "ada",
            "k1",
            "Man is a rope.",
            Receipt("outbox", "ada-1", "file:///o/ada.jsonl#ada-1"),
            rejections=[("x", "too_short"), ("y", "too_short"), ("@z", "has_mention")],
        )
        store.record_failure("ada", "k2", "publish", "instance unreachable", transient=True)
        store.beat("scheduler")
    result = CliRunner().invoke(cli, ["status", "-p", "ada"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "file:///o/ada.jsonl#ada-1" in out and "Man is a rope." in out
    assert "rejections: too_short=2 has_mention=1" in out
    assert "failures: publish=1" in out and "instance unreachable" in out
    assert "heartbeats: scheduler" in out

    data = json.loads(CliRunner().invoke(cli, ["status", "--json", "-n", "1"]).output)
    ada = data["personas"]["ada"]
    assert ada["posts"][0]["url"] == "file:///o/ada.jsonl#ada-1"
    assert ada["posts"][0]["text"] == "Man is a rope."
    assert ada["rejections"] == {"too_short": 2, "has_mention": 1}
    assert ada["failures"] == {"publish": 1}
    assert ada["recent_failures"][0]["transient"] is True
    assert set(data["heartbeats"]) == {"scheduler"}


def test_config_flag_beats_environment(ada_config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("personas: {ada: {temperature: 9}}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["-c", str(other), "check"])
    assert result.exit_code == 1
    assert "other.yaml: personas.ada.temperature must be between 0 and 2 (got 9)" in result.stderr


# --- exit codes, flag bounds and help text (#21) ----------------------------------------

BOT = Path(sys.executable).with_name("bot")

# Examples of every row of the README's exit-code table, run through the installed `bot`.
EXIT_CODE_EXAMPLES: dict[int, list[tuple[str, ...]]] = {
    0: [("check",), ("preview", "-n", "1", "--seed", "1")],
    1: [
        ("-c", "{bad_config}", "check"),  # a value out of range in the file
        ("status", "--check"),  # no daemon has run
        ("post", "--publisher", "mastodon", "--yes"),  # no Mastodon account configured
        ("preview", "-p", "nobody"),  # not in the config
    ],
    2: [
        ("no-such-command",),
        ("check", "--no-such-flag"),
        ("preview", "-n", "0"),
        ("preview", "-n", "-2"),
        ("preview", "-n", "many"),
        ("preview", "-t", "5"),
        ("preview", "--top-p", "0"),
        ("preview", "--top-k", "-1"),
        ("preview", "--candidates", "0"),
        ("train", "-p", "x", "--corpus", "no-such-file.txt"),
        ("train", "-p", "x", "--corpus", "c.txt", "--epochs", "0"),
        ("train", "-p", "x", "--corpus", "c.txt", "--val-fraction", "1"),
        ("status", "-n", "-1"),
    ],
}


def readme_exit_codes() -> list[int]:
    section = README.read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)]


def test_every_exit_code_in_the_readme_has_examples() -> None:
    assert readme_exit_codes() == sorted(EXIT_CODE_EXAMPLES)


@pytest.mark.parametrize(
    ("code", "args"),
    [(code, args) for code, examples in EXIT_CODE_EXAMPLES.items() for args in examples],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v),
)
def test_exit_codes_are_what_the_readme_says(
    ada_config: Path, tmp_path: Path, code: int, args: tuple[str, ...]
) -> None:
    (tmp_path / "c.txt").write_text("A corpus that exists.\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("personas: {ada: {model: models/ada, temperature: 9}}", encoding="utf-8")
    argv = [str(BOT), *(a.format(bad_config=bad) for a in args)]
    result = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    if code == 0:
        assert not errors, result.stderr
    elif code == 1:  # one line, nothing else
        assert result.stderr.count("\n") == 1 and len(errors) == 1, result.stderr
    else:  # Click: the usage, a hint, then one line naming what was wrong
        assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
        flags = [a for a in args if a.startswith("-") and not a.lstrip("-").isdigit()]
        if flags:  # the error names the flag that was wrong (the last one given)
            assert flags[-1] in errors[0], errors[0]


@pytest.mark.parametrize("count", ["0", "-2"])
def test_preview_count_below_one_is_a_usage_error_not_an_empty_preview(
    ada_config: Path, count: str
) -> None:
    result = CliRunner().invoke(cli, ["preview", "-n", count])
    assert result.exit_code == 2
    assert "no candidate survived" not in result.output
    assert f"Invalid value for '-n' / '--count': {count} is not in the range" in result.stderr


def all_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as argv prefixes: ("scrape", "text"), ..."""
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        found.append((*path, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*path, name)))
    return found


def listed_summaries(output: str) -> dict[str, str]:
    """Command name -> its summary as `--help` lists it (wrapped lines joined)."""
    listing = output.split("Commands:\n", 1)[1]
    summaries: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        match = re.match(r"^  (\S+)\s+(.*)$", line)
        if match:
            name = match.group(1)
            summaries[name] = match.group(2).strip()
        elif line.strip() and name:
            summaries[name] += " " + line.strip()
    return summaries


@pytest.mark.parametrize("group", [(), ("scrape",)], ids=["bot", "bot scrape"])
def test_help_lists_every_command_with_its_whole_summary(group: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*group, "--help"], terminal_width=80)
    assert result.exit_code == 0
    summaries = listed_summaries(result.output)
    command = cli if not group else cli.commands[group[0]]
    assert isinstance(command, click.Group)
    assert set(summaries) == set(command.commands)
    for name, summary in summaries.items():
        assert not summary.endswith("..."), f"`bot {' '.join((*group, name))}`: {summary!r}"
        assert summary.endswith((".", ")")), f"{name}: {summary!r} is not a whole sentence"


@pytest.mark.parametrize("argv", [(), *all_commands()], ids=lambda a: " ".join(("bot", *a)))
def test_every_option_says_what_it_does(argv: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in argv:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            text = (param.help or "").strip()
            assert len(text.split()) >= 2, f"bot {' '.join(argv)} {param.opts[0]}: {text!r}"
            assert text not in ("Override the config.", "Fine-tune from."), param.opts[0]
    assert "Rarer chars are rare." not in CliRunner().invoke(cli, [*argv, "--help"]).output


# --- one meaning per flag (#26.24) ------------------------------------------------------


def command_at(argv: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in argv:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_p_takes_names_and_globs_wherever_it_selects_personas() -> None:
    helps = {
        " ".join(argv): param.help
        for argv in all_commands()
        if argv != ("train",)  # `bot train -p NAME` names the one persona it makes
        for param in command_at(argv).params
        if isinstance(param, click.Option) and "-p" in param.opts
    }
    assert {"check", "eval", "post", "preview", "report", "run", "setup", "status"} <= set(helps)
    meanings = {text.split(" (")[0] for text in helps.values()}  # what follows: the default
    assert meanings == {"Persona name or glob, e.g. 'poet-*'"}, helps


@pytest.mark.parametrize("argv", [("check",), ("preview", "-n", "1", "--seed", "1", "--json")])
def test_p_takes_a_glob_in_check_and_preview_as_in_status(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path], argv: tuple[str, ...]
) -> None:
    for name in ("ada", "adam", "bob"):
        make_persona(name)
    write_config("personas: {ada: {}, adam: {}, bob: {}}")
    result = CliRunner().invoke(cli, [*argv, "-p", "ad*"])
    assert result.exit_code == 0, result.output
    if argv[0] == "check":
        assert "persona ada:" in result.output and "persona adam:" in result.output
        assert "persona bob:" not in result.output
    else:
        assert [item["persona"] for item in json.loads(result.stdout)] == ["ada", "adam"]


def test_a_folder_to_fine_tune_from_is_base_in_train_as_in_new(tmp_path: Path) -> None:
    for argv in (("train",), ("new",)):
        options = {opt for p in command_at(argv).params for opt in p.opts}
        assert "--base" in options, argv
    train_from = [p for p in command_at(("train",)).params if "--from" in p.opts]
    assert all(getattr(p, "hidden", False) for p in train_from)  # only to say it moved
    corpus = tmp_path / "c.txt"
    corpus.write_text("A corpus.\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", "-p", "x", "--corpus", str(corpus),
                                      "--from", "models/nietzsche"])  # fmt: skip
    assert result.exit_code == 2
    assert "--base" in result.stderr and "Traceback" not in result.output


def test_check_summary_names_its_online_part() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    summary = listed_summaries(result.output)["check"]
    assert "--online" in summary, summary
