"""`bot check` (config, models, next runs; `--online` asks the instance) and `bot setup`
(flag accounts as bots). Registered by bot/commands/cli.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from bot.commands.app import App, pass_app, persona_option
from bot.config import Config, PersonaSettings, registry

# --- bot check ------------------------------------------------------------------------


@click.command()
@persona_option
@click.option(
    "--online",
    is_flag=True,
    help="Also verify each account with its server: Mastodon tokens, Bluesky sessions "
    "(the only networked check).",
)
@pass_app
def check(app: App, personas: tuple[str, ...], online: bool) -> None:
    """Validate config and models (--online: accounts); show next runs.

    Offline unless --online: the config, each persona's model folder, the music tools,
    the publisher's settings, and when each persona would post.

    \b
    Examples:
      bot check -p nietzsche
      bot check --online        # token, account, bot flag, the instance's length limit
    """
    from bot.daemon.slots import next_run_times
    from bot.engine.sampler import describe_engine

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

    from bot.daemon.slots import finished_first_slot
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
    if info["bot"] is None:  # a network without a bot flag (Bluesky): the profile says it
        flag = ("its profile says it is automated" if info.get("disclosed") else
                "its profile does NOT say it is automated (run `bot setup`)")  # fmt: skip
    else:
        flag = "flagged as a bot" if info["bot"] else "NOT flagged as a bot (run `bot setup`)"
    click.echo(f"  account: {info['acct']} at {info['instance']}, {flag}")
    unit = info.get("limit_unit", "characters")
    click.echo(f"  instance limit: {info['instance_limit']} {unit} per post")
    if info["missing_scopes"]:
        click.echo(f"  token lacks scopes: {' '.join(info['missing_scopes'])} (give it "
                   f"{info['scopes_wanted']})")  # fmt: skip


@click.command(short_help="Mark accounts as bots (Mastodon's flag, Bluesky's profile).")
@persona_option
@click.option("--note", help="Set the profile note (the persona's disclaimer) to this text.")
@pass_app
def setup(app: App, personas: tuple[str, ...], note: str | None) -> None:
    """Mark each persona's account as automated: Mastodon's bot flag (and, with --note,
    the profile note); on Bluesky, which has no bot flag, the profile description (the
    note, with a line saying the account is automated when it does not say so).

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
        marker = getattr(info, "marker", "flagged as a bot")
        if not info.bot:
            by_hand = ("tick 'This is an automated account' in the profile settings" if
                       marker == "flagged as a bot" else "edit the profile's description")  # fmt: skip
            raise click.ClickException(
                f"{persona.name}: {info.acct} is still NOT {marker}: the server accepted "
                f"the change but did not keep it (read back); {by_hand} by hand"
            )
        kept = {None: "", True: ", note set", False: ", but the note was NOT kept"}
        click.echo(f"{persona.name}: {info.acct} is {marker} (read back)"
                   f"{kept[info.note_kept]}")  # fmt: skip
        done += 1
    if not done:
        remote = " or ".join(k.name for k in registry.kinds().values() if k.setup is not None)
        raise click.ClickException(
            f"no persona publishes to an account to set up (set `publisher:` to {remote})"
        )


def _describe_model(persona: PersonaSettings) -> str:
    """Load the artifact the way the daemon will (card, weights, novelty index)."""
    from bot.posting.persona import ModelHandle

    loaded = ModelHandle(persona.model).get()
    card = loaded.sampler.card
    arch = card.architecture
    text = f"{persona.model} ({arch.vocab_size} tokens, {arch.n_layer}x{arch.n_hidden} LSTM"
    bits = card.metrics.get("best_val_bits_per_char")
    if isinstance(bits, int | float):
        text += f", {bits:.3f} bits/char on validation"
    from bot.engine.card import ABC_LSTM, BARS_FILE

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
    from bot.engine.card import ABC_LSTM, read_kind
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
