"""config.yaml's `defaults:` block: shared by every persona, overridden per persona, merged
key by key in nested blocks, and checked with the same one-line errors (issue 18, point 5).
Everything goes through the real loader (`load_config`) and, for the errors, `bot check`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.commands.cli import cli
from bot.config import load_config
from bot.core.errors import ConfigError
from bot.publishers.mastodon.kind import mastodon_settings

FLEET = """\
defaults:
  temperature: 0.6
  candidates: 32
  prompts: ["Man is "]
  schedule: {interval_minutes: 30, jitter_seconds: 60, first_run_seconds: null}
  filters: {min_chars: 50, max_chars: 280, blocklist: [tax]}
  publisher: mastodon
  mastodon: {base_url: 'https://one.example', request_timeout_seconds: 20}
  replies: {enabled: true, per_account_per_hour: 1}
personas:
  ada: {}
  bob:
    temperature: 0.9
    prompts: []
    schedule: {jitter_seconds: 0, first_run_seconds: 5}
    filters: {max_chars: 500}
    mastodon: {access_token_env: BOB_TOKEN}
  cyd:
    schedule: {cron: '0 9 * * *'}
    mastodon: {base_url_env: CYD_URL}
    publisher: outbox
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cwd = tmp_path, so messages read `config.yaml: ...` as users see them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REVENANT_CONFIG", "config.yaml")


@pytest.fixture
def fleet(write_config: Callable[[str], Path]) -> Path:
    return write_config(FLEET)


def test_defaults_apply_to_a_persona_that_sets_nothing(fleet: Path) -> None:
    ada = load_config(check_models=False).persona("ada")
    assert ada.temperature == 0.6 and ada.candidates == 32 and ada.prompts == ("Man is ",)
    assert ada.schedule.interval_minutes == 30 and ada.schedule.jitter_seconds == 60
    assert ada.schedule.first_run_seconds is None  # null in defaults is a value too
    assert (ada.filters.min_chars, ada.filters.max_chars) == (50, 280)
    assert ada.filters.blocklist == ("tax",)
    assert ada.publisher == "mastodon"
    assert mastodon_settings(ada).base_url == "https://one.example"
    assert mastodon_settings(ada).request_timeout_seconds == 20
    assert ada.replies.enabled and ada.replies.per_account_per_hour == 1
    assert ada.model == Path("models/ada")  # the model default stays per persona
    assert ada.top_k == 0  # neither set: the built-in default


def test_persona_keys_win_and_nested_blocks_merge_key_by_key(fleet: Path) -> None:
    bob = load_config(check_models=False).persona("bob")
    assert bob.temperature == 0.9 and bob.candidates == 32
    assert bob.prompts == ()  # a list is replaced whole, even by an empty one
    assert bob.schedule.interval_minutes == 30  # inherited next to bob's own schedule keys
    assert bob.schedule.jitter_seconds == 0 and bob.schedule.first_run_seconds == 5
    assert (bob.filters.min_chars, bob.filters.max_chars) == (50, 500)
    settings = mastodon_settings(bob)
    assert settings.access_token_env == "BOB_TOKEN"
    assert settings.base_url == "https://one.example" and settings.request_timeout_seconds == 20


def test_a_persona_choosing_an_alternative_drops_the_inherited_one(fleet: Path) -> None:
    cyd = load_config(check_models=False).persona("cyd")
    assert cyd.schedule.cron == "0 9 * * *" and cyd.schedule.interval_minutes is None
    assert cyd.schedule.jitter_seconds == 60
    settings = mastodon_settings(cyd)
    assert settings.base_url_env == "CYD_URL" and settings.base_url is None
    assert cyd.publisher == "outbox"


def test_defaults_may_be_partial(write_config: Callable[[str], Path]) -> None:
    """A publisher chosen in defaults whose instance each persona names is fine; a persona
    that ends up without one is told so, by its own path."""
    write_config(
        "defaults: {publisher: mastodon, mastodon: {access_token_env: FLEET_TOKEN}}\n"
        "personas:\n"
        "  ada: {mastodon: {base_url: 'https://a.example'}}\n"
        "  bob: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(check_models=False)
    assert str(info.value).startswith(
        "config.yaml: personas.bob.mastodon.base_url is missing for the mastodon publisher"
    )


BAD_DEFAULTS = [
    pytest.param(
        "defaults: {temprature: 0.5}\npersonas: {ada: {}}",
        "config.yaml: unknown key defaults.temprature (did you mean temperature?)",
        id="unknown-key",
    ),
    pytest.param(
        "defaults: {temperature: 9}\npersonas: {ada: {temperature: 0.5}}",
        "config.yaml: defaults.temperature must be between 0 and 2 (got 9)",
        id="out-of-range-even-if-overridden",
    ),
    pytest.param(
        "defaults: {schedule: {interval_minuts: 5}}\npersonas: {ada: {}}",
        "config.yaml: unknown key defaults.schedule.interval_minuts (did you mean interval_minutes?)",
        id="nested-unknown-key",
    ),
    pytest.param(
        "defaults: {mastodon: {base_url: 'ftp://x'}}\npersonas: {ada: {}}",
        "config.yaml: defaults.mastodon.base_url must be an http(s) URL (got 'ftp://x') "
        "(write it like https://mastodon.example)",
        id="publisher-block",
    ),
    pytest.param(
        "defaults: [temperature]\npersonas: {ada: {}}",
        "config.yaml: defaults must be a mapping of key: value (got a list)",
        id="not-a-mapping",
    ),
    pytest.param(
        "defaults: {filters: {max_chars: 100}}\npersonas: {ada: {filters: {min_chars: 200}}}",
        "config.yaml: personas.ada.filters.max_chars (from defaults.filters.max_chars) must be "
        "at least min_chars (200) (got 100)",
        id="conflict-names-where-each-value-comes-from",
    ),
    pytest.param(
        "defaults: {filters: {min_chars: 20}}\npersonas: {ada: {filters: 5}}",
        "config.yaml: personas.ada.filters must be a mapping of key: value (got 5)",
        id="persona-block-wrong-type",
    ),
]


@pytest.mark.parametrize("yaml_text, message", BAD_DEFAULTS)
def test_bad_defaults_are_one_line_naming_the_key(
    write_config: Callable[[str], Path],
    make_persona: Callable[..., Path],
    yaml_text: str,
    message: str,
) -> None:
    make_persona("ada")
    write_config(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(check_models=False)
    assert str(info.value) == message
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1 and result.stderr == f"Error: {message}\n"


def test_a_literal_token_in_defaults_is_refused(write_config: Callable[[str], Path]) -> None:
    write_config(
        "defaults: {mastodon: {access_token: Zq3xT8vLw2Rk9mNp4Hs7Yd1Cb6Gf0Je5Ua8Xo2Vi3Kl}}\n"
        "personas: {ada: {}}"
    )
    with pytest.raises(ConfigError) as info:
        load_config(check_models=False)
    assert "defaults.mastodon.access_token is a literal secret" in str(info.value)


def test_a_thousand_personas_from_one_line_each(
    write_config: Callable[[str], Path], make_persona: Callable[..., Path]
) -> None:
    """The point of defaults: a fleet config without repetition, models checked per persona."""
    names = [f"poet-{i:04d}" for i in range(1000)]
    body = "".join(f"  {name}: {{model: models/shared}}\n" for name in names)
    make_persona("shared")
    write_config("defaults:\n  temperature: 0.7\n  schedule: {interval_minutes: 60}\n"
                 "personas:\n" + body)  # fmt: skip
    config = load_config()
    assert list(config.personas) == names
    assert {p.temperature for p in config.personas.values()} == {0.7}


def test_the_readme_example_loads_as_it_says(write_config: Callable[[str], Path]) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Many personas: defaults", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    write_config(example)
    config = load_config(check_models=False)
    ada, byron = config.persona("ada"), config.persona("byron")
    assert ada.temperature == 0.7 and byron.temperature == 0.9
    assert ada.schedule.interval_minutes == 60 and byron.schedule.interval_minutes is None
    assert byron.schedule.cron == "0 9 * * *" and byron.schedule.jitter_seconds == 600
    assert mastodon_settings(byron).base_url == "https://mastodon.example"
    assert mastodon_settings(byron).access_token_env == "BYRON_TOKEN"
    assert ada.filters.max_chars == byron.filters.max_chars == 280


def test_an_interval_replaces_an_inherited_cron(write_config: Callable[[str], Path]) -> None:
    write_config(
        "defaults: {schedule: {cron: '0 9 * * *', jitter_seconds: 30}, enabled: false}\n"
        "personas: {ada: {schedule: {interval_minutes: 15}, enabled: true}, bob: {}}"
    )
    config = load_config(check_models=False)
    ada, bob = config.persona("ada"), config.persona("bob")
    assert (ada.schedule.cron, ada.schedule.interval_minutes) == (None, 15)
    assert ada.schedule.jitter_seconds == 30 and ada.enabled
    assert bob.schedule.cron == "0 9 * * *" and not bob.enabled


def test_the_shipped_config_comment_works_uncommented(write_config: Callable[[str], Path]) -> None:
    shipped = (Path(__file__).parent.parent / "config.yaml").read_text(encoding="utf-8")
    lines = shipped.splitlines(keepends=True)
    start = lines.index("# defaults:\n")
    block = ["defaults:\n"]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    write_config("".join(block) + "personas: {ada: {filters: {max_chars: 500}}}\n")
    ada = load_config(check_models=False).persona("ada")
    assert ada.schedule.jitter_seconds == 300 and ada.filters.min_chars == 100
    assert ada.filters.max_chars == 500
