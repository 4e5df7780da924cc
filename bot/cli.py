"""The `bot` command line (Click). Commands parse flags and call into `bot/` modules.

Adding a command: write a 10-30-line function below with `@cli.command()`, the shared
decorators (`persona_option`, `json_option`) and `@pass_app`; get the validated config with
`app.config()`. A command defined in another module is attached with
`cli.add_command(command)` and finds the App with `App.current()`. Import heavy modules
(NumPy, the sampler, Keras) inside the command function: `import bot.cli` must stay
light so `bot --help` answers at once, and TensorFlow is only ever imported by `bot train`.

Every `BotError` raised anywhere under a command becomes one line on stderr and exit code
1 (`BotGroup.invoke`); usage errors exit 2 (Click); anything else is a bug.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from bot import __version__
from bot.config import Config, Persona, load_config, resolve_base_url, resolve_token
from bot.errors import BotError, ModelError
from bot.log import redact, setup_logging

F = TypeVar("F", bound=Callable[..., Any])


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


def persona_option(fn: F) -> F:
    """`-p/--persona NAME`, repeatable; none given means every persona."""
    return click.option(
        "-p",
        "--persona",
        "personas",
        multiple=True,
        metavar="NAME",
        help="Persona to act on (repeatable; default: all).",
    )(fn)


def json_option(fn: F) -> F:
    """`--json`: stable, machine-readable output (tested)."""
    return click.option("--json", "as_json", is_flag=True, help="Output JSON.")(fn)


@click.group(
    cls=BotGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="REVENANT_CONFIG",
    help="Config file [env REVENANT_CONFIG; default: ./config.yaml].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.version_option(__version__, "--version", prog_name="bot", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, verbose: bool, quiet: bool, log_json: bool
) -> None:
    """Revenant: a persona bot that posts in a voice learned by a char-level LSTM.

    \b
    Examples:
      bot check                 validate config.yaml and the persona models
      bot status -p nietzsche   what a persona posted, rejected and failed
      bot -c other.yaml check   use another config file
    """
    app = App(config_path=config_path, verbose=verbose, quiet=quiet, log_json=log_json)
    ctx.obj = app
    app.setup_logging()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


# --- bot check ------------------------------------------------------------------------


@cli.command()
@persona_option
@pass_app
def check(app: App, personas: tuple[str, ...]) -> None:
    """Validate config and persona models offline; show what would run.

    \b
    Example:
      bot check -p nietzsche
    """
    config = app.config()
    now = datetime.now(UTC)
    click.echo(f"config: {config.path}")
    click.echo(f"store: {config.store}")
    ready = 0
    for persona in config.select(personas):
        if not persona.enabled:
            click.echo(f"persona {persona.name}: disabled, not checked")
            continue
        click.echo(f"persona {persona.name}:")
        click.echo(f"  model: {_describe_model(persona)}")
        click.echo(f"  publisher: {_describe_publisher(config, persona)}")
        click.echo(f"  schedule: {persona.schedule.describe()}")
        times = persona.schedule.next_run_times(now, 3)
        click.echo("  next runs: " + ", ".join(t.strftime("%Y-%m-%d %H:%M:%S %Z") for t in times))
        ready += 1
    click.echo(f"ok: {ready} persona{'s' if ready != 1 else ''} ready")


def _describe_model(persona: Persona) -> str:
    from bot.card import MODEL_FILE, read_card

    card = read_card(persona.model)
    weights = persona.model / MODEL_FILE
    if not weights.is_file():
        raise ModelError(
            f"{weights}: model file missing", f"run `bot train -p {persona.name}` or fix the path"
        )
    arch = card.architecture
    text = f"{persona.model} ({arch.vocab_size} tokens, {arch.n_layer}x{arch.n_hidden} LSTM"
    bits = card.metrics.get("val_bits_per_char")
    if isinstance(bits, int | float):
        text += f", {bits:.3f} bits/char on validation"
    return text + ")"


def _describe_publisher(config: Config, persona: Persona) -> str:
    if persona.publisher == "mastodon":
        url = resolve_base_url(persona)
        resolve_token(persona)  # present in the environment; never printed
        where = f"mastodon {url} (token from ${persona.mastodon.access_token_env})"
    else:
        where = f"outbox {config.outbox / (persona.name + '.jsonl')}"
    return f"{where}, {persona.visibility}"


# --- bot status -----------------------------------------------------------------------


@cli.command()
@persona_option
@click.option(
    "-n",
    "--limit",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Recent posts per persona.",
)
@json_option
@pass_app
def status(app: App, personas: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Show recent posts, rejection counts, failures and heartbeats.

    \b
    Example:
      bot status -p nietzsche -n 10
    """
    config = app.config(check_models=False)
    report = _status_report(config, config.select(personas), limit)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    if not config.store.exists():
        click.echo(f"no state yet: {config.store} does not exist (nothing has run)")
    for name, info in report["personas"].items():
        state = "enabled" if info["enabled"] else "disabled"
        click.echo(f"{name} ({state}, {info['publisher']}):")
        posts = info["posts"]
        click.echo(f"  posts: {'none yet' if not posts else ''}".rstrip())
        for post in posts:
            click.echo(f"    {post['created_at_utc']}  {post['url'] or post['remote_id']}")
            click.echo(f"      {_shorten(post['text'], 90)}")
        click.echo(f"  rejections: {_counts(info['rejections'])}")
        click.echo(f"  failures: {_counts(info['failures'])}")
        for failure in info["recent_failures"][:1]:
            click.echo(
                f"    last: {failure['created_at_utc']} {failure['kind']}: "
                f"{_shorten(failure['error'], 80)}"
            )
    beats = report["heartbeats"]
    click.echo(
        "heartbeats: " + (", ".join(f"{k} {v}" for k, v in beats.items()) if beats else "none")
    )


def _status_report(config: Config, personas: list[Persona], limit: int) -> dict[str, Any]:
    """The `bot status --json` document; read-only, and no store is created."""
    from bot.store import Store

    report: dict[str, Any] = {"store": str(config.store), "personas": {}, "heartbeats": {}}
    store = Store(config.store) if config.store.exists() else None
    try:
        for persona in personas:
            info: dict[str, Any] = {
                "enabled": persona.enabled,
                "publisher": persona.publisher,
                "posts": [],
                "rejections": {},
                "failures": {},
                "recent_failures": [],
            }
            if store is not None:
                info["posts"] = [asdict(row) for row in store.recent_posts(persona.name, limit)]
                info["rejections"] = store.rejection_counts(persona.name)
                info["failures"] = store.failure_counts(persona.name)
                info["recent_failures"] = [
                    asdict(row) for row in store.recent_failures(persona.name, limit)
                ]
            report["personas"][persona.name] = info
        if store is not None:
            report["heartbeats"] = {
                name: at.isoformat().replace("+00:00", "Z")
                for name, at in store.heartbeats().items()
            }
    finally:
        if store is not None:
            store.close()
    return report


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{key}={n}" for key, n in counts.items()) or "none"


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"
