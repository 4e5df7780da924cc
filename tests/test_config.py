"""config.yaml: every user mistake is one line naming the file, key path, bad value and fix."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import (
    LITERAL_TOKEN_HINT,
    Secret,
    load_config,
    with_overrides,
)
from bot.core.errors import ConfigError
from bot.publishers.mastodon.kind import mastodon_settings, resolve_base_url, resolve_token

# A fake token shaped like Mastodon's (43 url-safe base64 characters).
FAKE_TOKEN = "Zq3xT8vLw2Rk9mNp4Hs7Yd1Cb6Gf0Je5Ua8Xo2Vi3Kl"

BAD_CONFIGS = [
    pytest.param(
        "personas: {ada: {temperature: 5.0}}",
        "config.yaml: personas.ada.temperature must be between 0 and 2 (got 5.0)",
        id="out-of-range",
    ),
    pytest.param(
        "personas: {ada: {temperature: hot}}",
        "config.yaml: personas.ada.temperature must be a number (got 'hot')",
        id="wrong-type",
    ),
    pytest.param(
        "personas: {ada: {temprature: 0.5}}",
        "config.yaml: unknown key personas.ada.temprature (did you mean temperature?)",
        id="unknown-key-typo",
    ),
    pytest.param(
        "persona: {ada: {}}",
        "config.yaml: unknown key persona (did you mean personas?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "personas: {ada: {schedule: {colour: red}}}",
        "config.yaml: unknown key personas.ada.schedule.colour (valid keys: coalesce, "
        "cron, first_run_seconds, interval_minutes, jitter_seconds, misfire_grace_seconds, "
        "timezone)",
        id="unknown-key-no-close-match",
    ),
    pytest.param(
        "personas: {ada: {top_p: 0}}",
        "config.yaml: personas.ada.top_p must be greater than 0 and at most 1 (got 0)",
        id="open-range",
    ),
    pytest.param(
        "personas: {ada: {candidates: 2.5}}",
        "config.yaml: personas.ada.candidates must be a whole number (got 2.5)",
        id="not-whole",
    ),
    pytest.param(
        "personas: {ada: {candidates: 1000}}",
        "config.yaml: personas.ada.candidates must be between 1 and 256 (got 1000)",
        id="candidates-range",
    ),
    pytest.param(
        "personas: {ada: {top_k: -1}}",
        "config.yaml: personas.ada.top_k must be between 0 and 1000 (got -1)",
        id="negative-top-k",
    ),
    pytest.param(
        "personas: {ada: {enabled: 'yes please'}}",
        "config.yaml: personas.ada.enabled must be true or false (got 'yes please')",
        id="not-bool",
    ),
    pytest.param(
        "personas: {ada: {visibility: loud}}",
        "config.yaml: personas.ada.visibility must be one of public, unlisted, private, direct "
        "(got 'loud')",
        id="bad-choice",
    ),
    pytest.param(
        "personas: {ada: {language: no}}",
        "config.yaml: personas.ada.language must be text (got false) (put it in quotes)",
        id="norway-problem",
    ),
    pytest.param(
        "personas: {ada: {prompts: 'Man is'}}",
        "config.yaml: personas.ada.prompts must be a list of text (got 'Man is') "
        "(write one '- item' per line)",
        id="prompts-not-list",
    ),
    pytest.param(
        "personas: {ada: {prompts: ['Man is', 42]}}",
        "config.yaml: personas.ada.prompts[1] must be text (got 42) (put it in quotes)",
        id="prompt-not-text",
    ),
    pytest.param(
        "personas: {ada: {schedule: {cron: 'every day'}}}",
        "config.yaml: personas.ada.schedule.cron is not a 5-field crontab line (got 'every day') "
        "(write minute hour day month weekday, e.g. '0 9 * * *')",
        id="bad-cron",
    ),
    pytest.param(
        "personas: {ada: {schedule: {cron: '0 9 * * *', interval_minutes: 60}}}",
        "config.yaml: personas.ada.schedule.cron and interval_minutes are both set "
        "(keep one of them)",
        id="cron-and-interval",
    ),
    pytest.param(
        "personas: {ada: {schedule: {timezone: Mars/Olympus}}}",
        "config.yaml: personas.ada.schedule.timezone is not a known time zone "
        "(got 'Mars/Olympus') (use an IANA name such as UTC or Europe/Berlin)",
        id="bad-zone",
    ),
    pytest.param(
        "personas: {ada: {filters: {novelty_words: 3}}}",
        "config.yaml: personas.ada.filters.novelty_words must be between 8 and 1000 (got 3)",
        id="novelty-words",
    ),
    pytest.param(
        "personas: {ada: {filters: {min_chars: 100, max_chars: 50}}}",
        "config.yaml: personas.ada.filters.max_chars must be at least min_chars (100) (got 50)",
        id="max-below-min",
    ),
    pytest.param(
        "personas: {ada: {filters: {urls: allow}}}",
        "config.yaml: personas.ada.filters.urls must be one of reject, strip (got 'allow')",
        id="urls-choice",
    ),
    pytest.param(
        "personas: {ada: {replies: {per_account_per_hour: -1}}}",
        "config.yaml: personas.ada.replies.per_account_per_hour must be between 0 and 1000 (got -1)",
        id="replies-range",
    ),
    pytest.param(
        "personas: {ada: {filters: [1, 2]}}",
        "config.yaml: personas.ada.filters must be a mapping of key: value (got a list)",
        id="section-not-mapping",
    ),
    pytest.param(
        "personas: {ada: {publisher: mastodon}}",
        "config.yaml: personas.ada.mastodon.base_url is missing for the mastodon publisher "
        "(set mastodon.base_url to your instance, e.g. https://mastodon.example)",
        id="mastodon-without-url",
    ),
    pytest.param(
        "personas: {ada: {mastodon: {base_url: mastodon.example}}}",
        "config.yaml: personas.ada.mastodon.base_url must be an http(s) URL "
        "(got 'mastodon.example') (write it like https://mastodon.example)",
        id="url-without-scheme",
    ),
    pytest.param(
        "personas: {ada: {mastodon: {access_token_env: 'MY TOKEN'}}}",
        "config.yaml: personas.ada.mastodon.access_token_env must name an environment "
        "variable (got 'MY TOKEN') (e.g. MASTODON_ACCESS_TOKEN)",
        id="bad-env-name",
    ),
    pytest.param(
        "personas: {ada: {model: models/nobody}}",
        "config.yaml: personas.ada.model: model folder models/nobody does not exist "
        "(run `bot train -p ada` or fix the path)",
        id="missing-model",
    ),
    pytest.param(
        "personas: {bob: {}}",
        "config.yaml: personas.bob.model (default): model folder models/bob does not exist "
        "(run `bot train -p bob` or fix the path)",
        id="missing-default-model",
    ),
    pytest.param(
        "personas: {}",
        "config.yaml: personas is empty (add at least one persona; see README.md)",
        id="no-personas",
    ),
    pytest.param(
        "",
        "config.yaml: personas is empty (add at least one persona; see README.md)",
        id="empty-file",
    ),
    pytest.param(
        "personas: {ada/x: {}}",
        "config.yaml: personas.ada/x is not a valid persona name "
        "(use letters, digits, '-' and '_'; it names files)",
        id="bad-persona-name",
    ),
    pytest.param(
        "logging: {level: LOUD}\npersonas: {ada: {}}",
        "config.yaml: logging.level must be one of DEBUG, INFO, WARNING, ERROR (got 'LOUD')",
        id="log-level",
    ),
    pytest.param(
        "timezone: Nowhere/Land\npersonas: {ada: {}}",
        "config.yaml: timezone is not a known time zone (got 'Nowhere/Land') "
        "(use an IANA name such as UTC or Europe/Berlin)",
        id="top-zone",
    ),
    pytest.param(
        "timezone: America\npersonas: {ada: {}}",
        "config.yaml: timezone is not a known time zone (got 'America') "
        "(use an IANA name such as UTC or Europe/Berlin)",
        id="zone-is-a-tzdata-folder",
    ),
    pytest.param(
        "personas: {ada: {schedule: {timezone: Europe}}}",
        "config.yaml: personas.ada.schedule.timezone is not a known time zone "
        "(got 'Europe') (use an IANA name such as UTC or Europe/Berlin)",
        id="schedule-zone-is-a-tzdata-folder",
    ),
    pytest.param(
        "- just\n- a list",
        "config.yaml: the top level must be a mapping of key: value (got a list)",
        id="top-not-mapping",
    ),
    pytest.param(
        "personas:\n  ada: [\n    model: x\n",
        "config.yaml: YAML syntax error at line 4, column 1: expected ',' or ']', but got "
        "'<stream end>' (fix the YAML syntax there)",
        id="yaml-syntax",
    ),
    pytest.param(
        "personas:\n  ada:\n    model: models/ada\n   temperature: 1\n",
        "config.yaml: YAML syntax error at line 4, column 4: expected <block end>, but found "
        "'<block mapping start>' (fix the YAML syntax there)",
        id="yaml-indent",
    ),
    pytest.param(
        f"personas: {{ada: {{mastodon: {{access_token: {FAKE_TOKEN}}}}}}}",
        f"config.yaml: personas.ada.mastodon.access_token is a literal secret "
        f"({LITERAL_TOKEN_HINT})",
        id="literal-token",
    ),
    pytest.param(
        f"personas: {{ada: {{mastodon: {{access_token_env: {FAKE_TOKEN}}}}}}}",
        f"config.yaml: personas.ada.mastodon.access_token_env looks like a literal token "
        f"({LITERAL_TOKEN_HINT})",
        id="token-in-env-key",
    ),
    pytest.param(
        f"personas: {{ada: {{}}}}\nbot_token: {FAKE_TOKEN}",
        f"config.yaml: bot_token is a literal secret ({LITERAL_TOKEN_HINT})",
        id="token-anywhere",
    ),
]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_persona: Callable[..., Path]):
    """cwd = tmp_path with models/ada, so messages read `config.yaml: ...` as users see them."""
    make_persona("ada")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVENANT_CONFIG", "config.yaml")
    return tmp_path


@pytest.mark.parametrize(("yaml_text", "message"), BAD_CONFIGS)
def test_bad_config_is_one_line(in_tmp: Path, yaml_text: str, message: str) -> None:
    (in_tmp / "config.yaml").write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(info.value) == message
    assert FAKE_TOKEN not in str(info.value)

    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output


def test_missing_file(in_tmp: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", "nowhere.yaml", "check"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nowhere.yaml: config file not found (create it from the example in "
        "README.md, or point -c/--config or REVENANT_CONFIG at it)\n"
    )


def test_defaults(ada_config: Path, tmp_path: Path) -> None:
    config = load_config()
    ada = config.persona("ada")
    assert config.store == tmp_path / "home" / "revenant.db"
    assert config.outbox == tmp_path / "home" / "outbox"
    assert ada.model == tmp_path / "models" / "ada"
    assert (ada.temperature, ada.top_k, ada.top_p, ada.candidates) == (0.8, 0, 1.0, 16)
    assert (ada.publisher, ada.visibility, ada.ranking) == ("outbox", "unlisted", "weighted")
    assert ada.schedule.interval_minutes == 60 and ada.schedule.first_run_seconds == 5
    assert ada.schedule.coalesce and ada.schedule.misfire_grace_seconds == 300
    assert ada.filters.min_chars == 20 and ada.filters.max_chars == 500
    assert ada.filters.mentions == "reject" and ada.filters.novelty_words == 8
    assert not ada.replies.enabled and ada.replies.max_thread_depth == 4
    assert mastodon_settings(ada).access_token_env == "MASTODON_ACCESS_TOKEN"


def test_full_persona(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path]
) -> None:
    make_persona("ada")
    write_config(
        """\
        timezone: Europe/Berlin
        store: state/bot.db
        logging: {level: debug, json: true}
        personas:
          ada:
            prompts: ["Man is ", "On {weekday}, "]
            temperature: 0
            top_k: 5
            top_p: 0.9
            ranking: best
            schedule: {cron: "0 9 * * 1-5", jitter_seconds: 60, first_run_seconds: null}
            filters: {blocklist: [foo], mentions: strip, urls: strip}
            publisher: mastodon
            mastodon: {base_url: "https://example.social/", request_timeout_seconds: 5}
            visibility: public
            spoiler_text: "bot"
            language: de
            replies: {enabled: true, bot_allowlist: ["@friend@example.social"]}
        """
    )
    config = load_config()
    ada = config.persona("ada")
    assert config.logging.level == "DEBUG" and config.logging.json
    assert config.store == config.path.parent / "state" / "bot.db"
    assert ada.prompts == ("Man is ", "On {weekday}, ")
    assert ada.temperature == 0.0 and ada.ranking == "best"
    assert ada.schedule.cron == "0 9 * * 1-5" and ada.schedule.interval_minutes is None
    assert ada.schedule.timezone == "Europe/Berlin"  # inherited from the top level
    assert ada.schedule.first_run_seconds is None
    assert mastodon_settings(ada).base_url == "https://example.social"
    assert ada.replies.bot_allowlist == ("@friend@example.social",)


def test_disabled_persona_needs_no_model(write_config: Callable[[str], Path]) -> None:
    write_config("personas: {ghost: {enabled: false}}")
    assert not load_config().persona("ghost").enabled


def test_train_can_load_without_model(write_config: Callable[[str], Path]) -> None:
    write_config("personas: {newbie: {}}")
    with pytest.raises(ConfigError):
        load_config()
    assert load_config(check_models=False).persona("newbie").name == "newbie"


def test_unknown_persona_suggests(ada_config: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "-p", "adda"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {ada_config}: no persona named 'adda' (did you mean ada?)\n"


def test_home_from_environment(ada_config: Path, tmp_path: Path) -> None:
    config = load_config(env={"REVENANT_CONFIG": str(ada_config), "REVENANT_HOME": "/srv/rv"})
    assert config.store == Path("/srv/rv/revenant.db")


def test_overrides_are_validated(ada_config: Path) -> None:
    ada = load_config().persona("ada")
    assert with_overrides(ada, temperature=1.2, top_k=None).temperature == 1.2
    with pytest.raises(ConfigError) as info:
        with_overrides(ada, temperature=5.0)
    assert str(info.value) == "command line: --temperature must be between 0 and 2 (got 5.0)"


def test_secret_from_environment(write_config: Callable[[str], Path], make_persona) -> None:
    make_persona("ada")
    write_config(
        """\
        personas:
          ada:
            publisher: mastodon
            mastodon: {base_url_env: ADA_URL, access_token_env: ADA_TOKEN}
        """
    )
    ada = load_config().persona("ada")  # a missing variable is no error until it is used
    with pytest.raises(ConfigError) as info:
        resolve_token(ada, env={})
    assert str(info.value) == (
        "environment variable ADA_TOKEN is not set; persona ada posts to Mastodon "
        "(export ADA_TOKEN=<the bot account's access token>)"
    )
    secret = resolve_token(ada, env={"ADA_TOKEN": FAKE_TOKEN})
    assert secret.reveal() == FAKE_TOKEN
    assert repr(secret) == str(secret) == "Secret(***)"
    assert FAKE_TOKEN not in f"{secret} {secret!r} {[secret]}"
    assert resolve_base_url(ada, env={"ADA_URL": "https://x.example/"}) == "https://x.example"
    with pytest.raises(ConfigError, match="ADA_URL is not set"):
        resolve_base_url(ada, env={})


def test_secret_equality_never_shows_value() -> None:
    assert Secret("abc") == Secret("abc")
    assert "abc" not in repr({"t": Secret("abc")})


def test_next_run_times_in_zone(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path]
) -> None:
    make_persona("ada")
    write_config(
        """\
        personas:
          ada:
            schedule: {cron: "30 9 * * *", timezone: Europe/Berlin, jitter_seconds: 600}
        """
    )
    from bot.daemon.slots import next_run_times

    schedule = load_config().persona("ada").schedule
    # 2025-03-29 12:00 UTC: Berlin switches to summer time the next night.
    now = datetime(2025, 3, 29, 12, 0, tzinfo=UTC)
    times = next_run_times(schedule, now, 3)
    assert [t.isoformat() for t in times] == [
        "2025-03-29T13:00:05+01:00",  # first_run_seconds after start
        "2025-03-30T09:30:00+02:00",
        "2025-03-31T09:30:00+02:00",
    ]


def test_interval_run_times() -> None:
    from bot.config import Schedule
    from bot.daemon.slots import next_run_times

    now = datetime(2025, 1, 1, 10, 0, 30, tzinfo=UTC)
    times = next_run_times(Schedule(interval_minutes=60), now, 3)
    # the first run 5 s after start, then the hourly grid the daemon's slots sit on
    assert [t.strftime("%H:%M:%S") for t in times] == ["10:00:35", "11:00:00", "12:00:00"]


def test_example_config_parses() -> None:
    """The shipped config.yaml stays valid (its model may not be trained yet)."""
    example = Path(__file__).resolve().parents[1] / "config.yaml"
    config = load_config(example, check_models=False)
    assert "nietzsche" in config.personas
    assert config.persona("nietzsche").publisher == "outbox"


def test_triggers_carry_jitter_and_zone() -> None:
    from bot.config import Schedule

    cron = Schedule(cron="0 9 * * *", jitter_seconds=60, timezone="Europe/Berlin").trigger()
    assert cron.jitter == 60 and str(cron.timezone) == "Europe/Berlin"
    interval = Schedule(interval_minutes=30, jitter_seconds=0).trigger()
    assert interval.jitter is None and interval.interval.total_seconds() == 1800


# --- every numeric key has bounds (issue 16) ------------------------------------------

NUMERIC_KEYS = [
    "lease_seconds",
    "personas.ada.temperature",
    "personas.ada.top_k",
    "personas.ada.top_p",
    "personas.ada.candidates",
    "personas.ada.max_rounds",
    "personas.ada.schedule.interval_minutes",
    "personas.ada.schedule.jitter_seconds",
    "personas.ada.schedule.first_run_seconds",
    "personas.ada.schedule.misfire_grace_seconds",
    "personas.ada.filters.min_chars",
    "personas.ada.filters.max_chars",
    "personas.ada.filters.novelty_words",
    "personas.ada.filters.duplicate_jaccard",
    "personas.ada.filters.history",
    "personas.ada.mastodon.request_timeout_seconds",
    "personas.ada.mastodon.settle_seconds",
    "personas.ada.replies.interval_minutes",
    "personas.ada.replies.max_age_minutes",
    "personas.ada.replies.per_account_per_hour",
    "personas.ada.replies.max_thread_depth",
]
BAD_NUMBERS = [".inf", "-.inf", ".nan", "1e20", "-1", "1000000000"]


def _nested(path: str, value: str) -> str:
    *parents, key = path.split(".")
    text = f"{key}: {value}"
    for parent in reversed(parents):
        text = f"{parent}: {{{text}}}"
    return text if parents else f"personas: {{ada: {{}}}}\n{text}"


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("path", NUMERIC_KEYS)
def test_bad_numbers_are_one_line_errors(in_tmp: Path, path: str, value: str) -> None:
    (in_tmp / "config.yaml").write_text(_nested(path, value), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: config.yaml: {path} must "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_one_minute_intervals_are_allowed(in_tmp: Path) -> None:
    (in_tmp / "config.yaml").write_text(
        _nested("personas.ada.schedule.interval_minutes", "1"), encoding="utf-8"
    )
    assert load_config().personas["ada"].schedule.interval_minutes == 1.0


def test_duplicate_keys_are_refused(in_tmp: Path) -> None:
    (in_tmp / "config.yaml").write_text(
        "personas:\n  ada: {}\n  ada: {temperature: 1}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr == "Error: config.yaml: duplicate key 'ada' at line 3 (keep one of them)\n"
