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
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from bot import __version__
from bot.app import App, BotGroup, pass_app
from bot.app import counts_text as _counts
from bot.app import shorten as _shorten
from bot.config import MAX_TOP_K, Config, PersonaSettings
from bot.corpus.commands import scrape
from bot.publishers import registry
from bot.status import status

F = TypeVar("F", bound=Callable[..., Any])


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
@click.option(
    "--online",
    is_flag=True,
    help="Also verify Mastodon tokens with their instances (the only networked check).",
)
@pass_app
def check(app: App, personas: tuple[str, ...], online: bool) -> None:
    """Validate config and persona models offline; show what would run.

    \b
    Examples:
      bot check -p nietzsche
      bot check --online        # token, account, bot flag, the instance's length limit
    """
    from bot.sampler import describe_engine
    from bot.scheduler import next_run_times

    config = app.config()
    now = datetime.now(UTC)
    click.echo(f"config: {config.path}")
    click.echo(f"store: {config.store}")
    click.echo(f"engine: {describe_engine()}")
    ready = 0
    for persona in config.select(personas):
        if not persona.enabled:
            click.echo(f"persona {persona.name}: disabled, not checked")
            continue
        click.echo(f"persona {persona.name}:")
        click.echo(f"  model: {_describe_model(persona)}")
        _check_music_tools(persona)
        click.echo(f"  publisher: {_describe_publisher(config, persona)}")
        click.echo(f"  schedule: {persona.schedule.describe()}")
        done = _finished_first_slot(config, persona, now)
        times = next_run_times(persona.schedule, now, 3, first_run=done is None)
        shown = [t.strftime("%Y-%m-%d %H:%M:%S %Z") for t in times]
        if done is not None:  # a second `bot run` in the same slot (hour) posts nothing now
            jitter = " plus jitter" if persona.schedule.jitter_seconds else ""
            click.echo(f"  first run: none: slot {done.slot_key} is done ({done.status} at "
                       f"{done.updated_at_utc}) and a slot gets one post, so `bot run` started "
                       f"now posts first at {shown[0] if shown else 'no time'}{jitter}")  # fmt: skip
        click.echo("  next runs: " + ", ".join(shown))
        if online and registry.of(persona).online_check is not None:
            _check_online(config, persona)
        ready += 1
    click.echo(f"ok: {ready} persona{'s' if ready != 1 else ''} ready")


def _finished_first_slot(config: Config, persona: PersonaSettings, now: datetime) -> Any:
    """The `SlotRow` that a `bot run` started now would find already done (so its first run
    posts nothing), from a read-only look at the store; None when it would post."""
    from functools import partial

    from bot.scheduler import finished_first_slot
    from bot.store import read_only

    if persona.schedule.first_run_seconds is None:
        return None
    return read_only(
        config.store,
        lambda store: finished_first_slot(persona.schedule, now, partial(store.slot, persona.name)),
        None,
    )


def _check_online(config: Config, persona: PersonaSettings) -> None:
    online_check = registry.of(persona).online_check
    assert online_check is not None
    info = online_check(config, persona)
    flag = "flagged as a bot" if info["bot"] else "NOT flagged as a bot (run `bot setup`)"
    click.echo(f"  account: {info['acct']} at {info['instance']}, {flag}")
    click.echo(f"  instance limit: {info['instance_limit']} characters per post")
    if info["missing_scopes"]:
        click.echo(f"  token lacks scopes: {' '.join(info['missing_scopes'])} (give it "
                   f"{info['scopes_wanted']})")  # fmt: skip


@cli.command(short_help="Flag Mastodon accounts as bots; optionally set their profile note.")
@persona_option
@click.option("--note", help="Set the profile note (the persona's disclaimer) to this text.")
@pass_app
def setup(app: App, personas: tuple[str, ...], note: str | None) -> None:
    """Flag each Mastodon persona's account as a bot; optionally set its profile note.

    \b
    Example:
      bot setup -p nietzsche --note "Generated text in the voice of F. Nietzsche. A bot."
    """
    config = app.config()
    done = 0
    for persona in config.select(personas):
        setup_account = registry.of(persona).setup
        if setup_account is None:
            click.echo(f"{persona.name}: publishes to the {persona.publisher}, nothing to set up")
            continue
        info = setup_account(config, persona, note)
        if not info.bot:
            raise click.ClickException(
                f"{persona.name}: {info.acct} is still NOT flagged as a bot: the server "
                "accepted the change but did not keep it (read back); tick 'This is an "
                "automated account' in the profile settings by hand"
            )
        kept = {None: "", True: ", note set", False: ", but the note was NOT kept"}
        click.echo(f"{persona.name}: {info.acct} is flagged as a bot (read back)"
                   f"{kept[info.note_kept]}")  # fmt: skip
        done += 1
    if not done:
        raise click.ClickException("no persona publishes to Mastodon (set `publisher: mastodon`)")


def _describe_model(persona: PersonaSettings) -> str:
    """Load the artifact the way the daemon will (card, weights, novelty index)."""
    from bot.persona import ModelHandle

    loaded = ModelHandle(persona.model).get()
    card = loaded.sampler.card
    arch = card.architecture
    text = f"{persona.model} ({arch.vocab_size} tokens, {arch.n_layer}x{arch.n_hidden} LSTM"
    bits = card.metrics.get("best_val_bits_per_char")
    if isinstance(bits, int | float):
        text += f", {bits:.3f} bits/char on validation"
    from bot.card import ABC_LSTM, BARS_FILE

    if card.kind == ABC_LSTM:
        index = "phrase index" if (persona.model / BARS_FILE).is_file() else "no phrase index"
        return text + f", tunes: music filters, {index})"
    if loaded.novelty_index is None:
        text += ", no novelty index: not_novel is off"
    if persona.vocabulary == "known":
        text += (f", {len(loaded.words):,} known words" if loaded.words is not None
                 else ", no word list: any word may be written")  # fmt: skip
    if persona.critic:
        text += (", a critic ranks" if loaded.critic is not None
                 else ", no critic (`bot train --critic-only` adds one)")  # fmt: skip
    return text + ")"


def _check_music_tools(persona: PersonaSettings) -> None:
    """For a music persona: the rendering tools found or missing, and the fix. Without
    abc2midi no tune can be checked; without the others a tune is posted as notation only
    (`media_fallback: notation`) or not at all, which is an error here."""
    from bot.card import ABC_LSTM, read_kind
    from bot.music import tools

    if read_kind(persona.model) != ABC_LSTM:
        return
    missing = tools.missing()
    if not missing:
        click.echo("  music tools: " + ", ".join(t.name for t in tools.TOOLS) + " (all found)")
        return
    names = ", ".join(f"{t.name} ({t.package})" for t in missing)
    fix = f"install them: {tools.install_hint(missing)}"
    if persona.media_fallback == "notation" and tools.find("abc2midi") is not None:
        click.echo(f"  music tools: missing {names}: tunes are posted as notation only ({fix})")
        return
    raise click.ClickException(
        f"persona {persona.name}: music tools missing: {names}; it cannot post tunes "
        f"({fix}{'' if tools.find('abc2midi') is None else ', or set media_fallback: notation'})"
    )


def _describe_publisher(config: Config, persona: PersonaSettings) -> str:
    kind = registry.of(persona)
    where = kind.describe(config, persona) if kind.describe is not None else kind.name
    return f"{where}, {persona.visibility}"


# --- bot preview / bot post --------------------------------------------------------------


def _seeded_rng(seed: int | None) -> Any:
    import numpy as np

    return np.random.default_rng(seed)


@cli.command()
@persona_option
# Flag values are checked by Click (exit 2, a usage error); the bounds are config.yaml's.
@click.option("-n", "--count", default=3, show_default=True, type=click.IntRange(1, 256),
              help="Posts to show.")  # fmt: skip
@click.option("-t", "--temperature", type=click.FloatRange(0, 2),
              help="Sampling temperature (0 = greedy).")  # fmt: skip
@click.option("--top-k", type=click.IntRange(0, MAX_TOP_K),
              help="Sample among the k likeliest characters (0 = off).")  # fmt: skip
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True),
              help="Nucleus sampling mass (1 = off).")  # fmt: skip
@click.option("--candidates", type=click.IntRange(1, 256), help="Candidates sampled per round.")
@click.option("--prompt", help="Prime with this text instead of a configured prompt.")
@click.option("--seed", type=int, help="Seed for a reproducible preview.")
@click.option("--all", "show_all", is_flag=True, help="Also show rejected candidates.")
@click.option("--media-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Music personas: write sound and score here "
                   "[default: $REVENANT_HOME/preview/NAME/<time>].")  # fmt: skip
@json_option
@pass_app
def preview(
    app: App,
    personas: tuple[str, ...],
    count: int,
    temperature: float | None,
    top_k: int | None,
    top_p: float | None,
    candidates: int | None,
    prompt: str | None,
    seed: int | None,
    show_all: bool,
    media_dir: Path | None,
    as_json: bool,
) -> None:
    """Dry run: sample, filter, show posts; sends and stores nothing.

    A music persona's tunes are rendered (sound and score) into a folder it prints.

    \b
    Examples:
      bot preview
      bot preview -p nietzsche -n 5 --prompt "Woman " --all
      bot preview --seed 7 --json
    """
    from bot.config import with_overrides
    from bot.persona import Persona as Runner
    from bot.persona import length_function
    from bot.store import read_history

    config = app.config()
    rng = _seeded_rng(seed)
    report: list[dict[str, Any]] = []
    for settings in config.select(personas):
        settings = with_overrides(
            settings, temperature=temperature, top_k=top_k, top_p=top_p, candidates=candidates
        )
        runner = Runner(settings, rng=rng, length=length_function(settings))
        history = read_history(config.store, settings.name, settings.filters.history)
        comp = runner.compose(want=count, prompt=prompt, history=history)
        media = _preview_media(config, settings.name, runner, comp.chosen, media_dir)
        report.append(
            {
                "persona": settings.name,
                "prompt": comp.prompt if prompt is not None or len(settings.prompts) < 2 else None,
                "unknown_chars": comp.unknown_chars,
                "rounds": comp.rounds,
                "candidates": len(comp.verdicts),
                "posts": [
                    {
                        "text": c.text,
                        "prompt": c.prompt,
                        "mean_logprob": round(c.mean_logprob, 4),
                        "critic": None if c.critic is None else round(c.critic, 3),
                        "stop": c.stop,
                        **({"media": media[i]} if media is not None else {}),
                    }
                    for i, c in enumerate(comp.chosen)
                ],
                "rejections": comp.reason_counts(),
                "rejected": [{"text": v.candidate.text, "reason": v.reason} for v in comp.rejected]
                if show_all
                else [],
            }
        )
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for item in report:
        click.echo(f"== {item['persona']} ({item['candidates']} candidates, "
                   f"{item['rounds']} rounds; rejected: {_counts(item['rejections'])})")  # fmt: skip
        if item["unknown_chars"]:
            chars = "".join(item["unknown_chars"])
            click.echo(f"note: prompt characters not in the vocabulary were replaced: {chars!r}")
        if not item["posts"]:
            click.echo("no candidate survived the filters; try --all to see why")
        for i, post in enumerate(item["posts"], 1):
            critic = "" if post["critic"] is None else f", critic {post['critic']:+.2f}"
            click.echo(f"\n{i}. [{post['mean_logprob']:.3f} nats/char{critic}, {post['stop']}]")
            click.echo(post["text"])
            for path in post.get("media", []):
                click.echo(f"   {path}")
        if show_all and item["rejected"]:
            click.echo("\nrejected:")
            for rej in item["rejected"]:
                click.echo(f"  - {rej['reason']}: {_shorten(rej['text'], 100)}")


def _preview_media(config: Config, name: str, runner: Any, chosen: list[Any],
                   media_dir: Path | None) -> list[list[str]] | None:  # fmt: skip
    """For a music persona: each chosen tune's sound and score in a fresh folder (printed);
    None for other personas. Rendering failures are one Error line naming the tool."""
    if not chosen or not runner.is_music():
        return None
    from bot.music import tools
    from bot.music.render import render

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = media_dir or config.home / "preview" / name / stamp
    out: list[list[str]] = []
    for number, cand in enumerate(chosen, 1):
        try:
            done = render(cand.text, folder, stem=f"{number}-{cand.text.split(chr(10))[0][2:]}")
        except tools.ToolError as err:
            raise click.ClickException(f"{err} ({tools.INSTALL})") from err
        out.append([str(done.audio), str(done.image)])
    click.echo(f"sound and score of {len(out)} tune{'s' if len(out) != 1 else ''}: {folder}",
               err=True)  # fmt: skip
    return out


@cli.command()
@persona_option
@publisher_option
@click.option("--yes", is_flag=True, help="Do not ask before posting to Mastodon.")
@click.option("--seed", type=int, help="Seed the sampler.")
@pass_app
def post(
    app: App, personas: tuple[str, ...], publisher_name: str | None, yes: bool, seed: int | None
) -> None:
    """Post once now, through the same path as a scheduled wake.

    \b
    Examples:
      bot post                       # the shipped persona, to the local outbox
      bot post -p ada --publisher mastodon --yes
    """
    from bot.config import with_overrides
    from bot.persona import Persona as Runner
    from bot.persona import build_publisher, length_function
    from bot.store import open_store

    config = app.config()
    rng = _seeded_rng(seed)
    failed = []
    with open_store(config.store) as store:
        for settings in config.select(personas):
            settings = with_overrides(settings, publisher=publisher_name)
            publisher = build_publisher(config, settings)
            if registry.of(settings).remote and not yes:
                click.confirm(f"Post as {settings.name} to {publisher.name}?", abort=True)
            runner = Runner(
                settings, store=store, publisher=publisher, rng=rng,
                length=length_function(settings),
            )  # fmt: skip
            slot = "manual:" + datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            result = runner.wake(slot)
            if result.outcome == "posted" and result.receipt:
                click.echo(f"{settings.name}: posted to {result.receipt.publisher} "
                           f"{result.receipt.url or result.receipt.remote_id}")  # fmt: skip
                click.echo(result.text or "")
            elif result.outcome == "no_candidate":
                failed.append(f"{settings.name}: no candidate survived ({_counts(result.reasons)})")
            elif result.outcome == "unknown":
                failed.append(f"{settings.name}: may have been posted; not sent again "
                              f"({result.error or 'outcome unknown'})")  # fmt: skip
            else:
                failed.append(f"{settings.name}: not posted ({result.error or result.outcome})")
    if failed:
        # A manual post has its own slot and nothing retries it; a new `bot post` first
        # looks whether this one reached the server (Persona.recover), so it never doubles.
        raise click.ClickException(
            "; ".join(failed) + " (nothing retries a manual post: run `bot post` again, or see"
            " `bot preview --all` and `bot status` for why)"
        )


# --- bot train / bot eval ----------------------------------------------------------------


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
              help="Wall-clock budget; stops cleanly and keeps the best model so far.")  # fmt: skip
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
@click.option("--from", "from_dir", type=click.Path(path_type=Path),
              help="Fine-tune from this persona folder (e.g. models/nietzsche).")  # fmt: skip
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
      bot train -p trump --corpus corpus/trump.jsonl --from models/nietzsche
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

    from bot.evaluate import load_persona_corpus
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
@click.option("--seed", type=int, default=1337, show_default=True,
              help="Seed for sampling and the judges' folds.")  # fmt: skip
@json_option
@pass_app
def eval_persona(
    app: App, personas: tuple[str, ...], corpus: tuple[Path, ...], count: int,
    temperature: float | None, critic: bool | None, vocabulary: str | None, markov: bool,
    seed: int, as_json: bool,
) -> None:  # fmt: skip
    """Measure a persona's posts: distinguishability, invented words, diversity, bits/char.

    Needs requirements-train.txt (scikit-learn, wordfreq, markovify) for the judges.

    \b
    Examples:
      bot eval -p nietzsche --corpus texts/ --markov
      bot eval -p nietzsche --corpus texts/ -n 100 --no-critic --vocabulary any
    """
    from dataclasses import replace

    from bot.evaluate import evaluate

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
                                markov=markov))  # fmt: skip
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
        if r.markov is not None:
            m = r.markov
            judges = ", ".join(f"{j} {a:.3f}" for j, a in m.auc.items())
            click.echo(f"word Markov chain ({m.posts} novel posts, mean {m.mean_chars:.0f} "
                       f"chars): {judges}; invented {m.invented_rate:.3%}; "
                       f"diversity {m.diversity:.3f}")  # fmt: skip
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
    from bot.scheduler import Daemon
    from bot.store import open_store

    config = app.config()
    selected = [
        with_overrides(p, publisher=publisher_name) for p in config.select(personas) if p.enabled
    ]
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


cli.add_command(scrape)
cli.add_command(status)
