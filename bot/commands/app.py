"""What every `bot` command shares: the global options (`App`, handed to commands by
`@pass_app`) and the group that turns a BotError into one line and exit code 1.

Its own module so that `bot/commands/cli.py` and the command modules it registers (`bot scrape`
in bot/commands/scrape.py) both import it, and not each other.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import click

from bot.config import Config, load_config, registry
from bot.core.errors import BotError
from bot.core.log import redact, setup_logging


class BotGroup(click.Group):
    """A Click group that turns every BotError into one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotError as err:
            raise click.ClickException(redact(str(err))) from None


@dataclass
class App:
    """What the global options decided; commands get it with `@pass_app`."""

    config_path: Path | None = None
    verbose: bool = False
    quiet: bool = False
    log_json: bool = False
    _config: Config | None = None

    @staticmethod
    def current() -> App:
        return click.get_current_context().ensure_object(App)

    def config(self, *, check_models: bool = True) -> Config:
        """Load and validate the config once; its logging settings apply unless flags won."""
        if self._config is None:
            self._config = load_config(self.config_path, check_models=check_models)
            self.setup_logging(self._config)
        return self._config

    def setup_logging(self, config: Config | None = None) -> None:
        level: int | str = config.logging.level if config else logging.INFO
        if self.verbose:
            level = logging.DEBUG
        elif self.quiet:
            level = logging.WARNING
        json_lines = self.log_json or bool(config and config.logging.json)
        setup_logging(level, json_lines=json_lines)


pass_app = click.make_pass_decorator(App)


def counts_text(counts: dict[str, int]) -> str:
    """{"too_short": 2} -> "too_short=2" ("none" when empty)."""
    return " ".join(f"{key}={n}" for key, n in counts.items()) or "none"


def shorten(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"


F = TypeVar("F", bound=Callable[..., Any])


def persona_option(fn: F) -> F:
    """`-p/--persona NAME`, a name or a glob, repeatable; none given means every persona.
    The same in every command that selects personas (`Config.select`)."""
    return click.option(
        "-p",
        "--persona",
        "personas",
        multiple=True,
        metavar="NAME",
        help="Persona name or glob, e.g. 'poet-*' (repeatable; default: all).",
    )(fn)


class _PublisherChoice(click.Choice):
    """The registered publisher kinds, read when click looks (a kind registered after
    import, e.g. by a test, is a valid choice)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return registry.names()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        pass  # click's __init__ sets it; the registry is the source


def publisher_option(fn: F) -> F:
    """`--publisher KIND` (outbox, mastodon, ...): override every selected persona's publisher."""
    return click.option(
        "--publisher",
        "publisher_name",
        type=_PublisherChoice(),
        help="Override the configured publisher.",
    )(fn)


def json_option(fn: F) -> F:
    """`--json`: stable, machine-readable output (tested)."""
    return click.option("--json", "as_json", is_flag=True, help="Output JSON.")(fn)


def cursor_store() -> Any:
    """The state database that holds scrape cursors: config.yaml's `store:` when there is
    a config file, else REVENANT_HOME's default (scraping needs no persona)."""
    from bot.config import DEFAULT_CONFIG, DEFAULT_HOME, HOME_ENV, STORE_FILE
    from bot.store import open_store

    app = App.current()
    config_path = app.config_path or DEFAULT_CONFIG
    if config_path.exists():
        return open_store(app.config(check_models=False).store)
    return open_store(Path(os.environ.get(HOME_ENV) or DEFAULT_HOME) / STORE_FILE)


class ProgressBar:
    """`bot.corpus.mastodon.Progress` as a click progress bar on stderr (statuses fetched)."""

    def __init__(self, label: str = "statuses") -> None:
        self._bar: Any = None
        self._label = label

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.render_finish()

    def start(self, total: int | None) -> None:
        self._bar = click.progressbar(
            length=max(total or 0, 1), label=self._label, file=sys.stderr, show_pos=True
        )

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)
