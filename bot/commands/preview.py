"""`bot preview` (a dry run: posts printed, nothing sent, nothing stored) and `bot post`
(one post now, recorded like a scheduled one). Registered by bot/commands/cli.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bot.commands.app import App, json_option, pass_app, persona_option, publisher_option
from bot.commands.app import counts_text as _counts
from bot.commands.app import shorten as _shorten
from bot.config import MAX_TOP_K, Config, PersonaSettings, registry
from bot.core.errors import BotError, ConfigError
from bot.store import MANUAL_PREFIX, Store
from bot.store.protocol import parse_ts

NAMES_SHOWN = 8  # personas named in `bot post`'s "which one?" line
LEASE_MARGIN_SECONDS = 0.5  # after an earlier `bot post`'s lease, before a look

# --- bot preview / bot post --------------------------------------------------------------


def _seeded_rng(seed: int | None) -> Any:
    import numpy as np

    return np.random.default_rng(seed)


@click.command()
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
    from bot.config.registry import length_function
    from bot.posting.persona import Persona as Runner
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


@click.command()
@click.option("-p", "--persona", "personas", multiple=True, metavar="NAME",
              help="Persona name or glob, e.g. 'poet-*' (repeatable; default: the only "
                   "persona; --all for every one).")  # fmt: skip
@click.option("--all", "every", is_flag=True, help="Post as every persona in the config.")
@publisher_option
@click.option("--yes", is_flag=True, help="Do not ask before posting to Mastodon.")
@click.option("--seed", type=int, help="Seed the sampler.")
@pass_app
def post(
    app: App,
    personas: tuple[str, ...],
    every: bool,
    publisher_name: str | None,
    yes: bool,
    seed: int | None,
) -> None:
    """Post once now, through the same path as a scheduled wake.

    With several personas in the config, name one with -p (or --all for every one). A
    `bot post` that did not finish (killed, or failed) is finished by the next one: its
    post is looked for on the server and recorded (or its text sent), nothing new.

    \b
    Examples:
      bot post                       # the only persona (the shipped one), to the outbox
      bot post -p ada --publisher mastodon --yes
      bot post --all
    """
    from bot.config import with_overrides
    from bot.config.registry import build_publisher, length_function
    from bot.posting.persona import Persona as Runner
    from bot.store import open_store

    config = app.config()
    chosen = _post_personas(config, personas, every)
    rng = _seeded_rng(seed)
    failed = []
    with open_store(config.store) as store:
        for settings in chosen:
            settings = with_overrides(settings, publisher=publisher_name)
            publisher = build_publisher(config, settings)
            if registry.of(settings).remote and not yes:
                click.confirm(f"Post as {settings.name} to {publisher.name}?", abort=True)
            runner = Runner(
                settings, store=store, publisher=publisher, rng=rng,
                length=length_function(settings), lease_seconds=config.lease_seconds,
            )  # fmt: skip
            earlier = _unfinished_post(store, settings.name)
            slot = earlier or MANUAL_PREFIX + datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            result = runner.wake(slot)
            if result.outcome == "posted" and result.receipt:
                if earlier is not None:
                    click.echo(f"{settings.name}: finished the earlier `bot post` of {earlier}; "
                               "nothing new was posted")  # fmt: skip
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
        # A manual post has its own slot and nothing retries it on its own; the next
        # `bot post` finishes it first (`_unfinished_post`), so it never doubles.
        raise click.ClickException(
            "; ".join(failed) + " (nothing retries a manual post: run `bot post` again, or see"
            " `bot preview --all` and `bot status` for why)"
        )


def _post_personas(config: Config, names: tuple[str, ...], every: bool) -> list[PersonaSettings]:
    """The personas `bot post` posts as: those named with -p, every one with --all, the
    only one when there is one; with several and neither, a one-line error naming them."""
    if names and every:
        raise click.UsageError("-p and --all exclude each other")
    if names or every or len(config.personas) == 1:
        return config.select(names)
    listed = list(config.personas)
    shown = ", ".join(listed[:NAMES_SHOWN]) + (
        f" and {len(listed) - NAMES_SHOWN} more" if len(listed) > NAMES_SHOWN else ""
    )
    raise ConfigError(
        f"{config.label}: {len(listed)} personas ({shown}); `bot post` posts as one",
        "name it with -p NAME, or post as every one with --all",
    )


def _unfinished_post(store: Store, name: str) -> str | None:
    """The slot of an earlier `bot post` of `name` that did not finish (killed mid-send,
    or failed), which this one finishes instead of posting anew; None when there is none.

    A claim still under lease is waited for: a dead holder's lease runs out and its slot
    is resumed here (the post it may have sent is looked for first); a live holder renews
    it, and this `bot post` stops with one line."""
    rows = store.unfinished_slots(name, MANUAL_PREFIX)
    if not rows:
        return None
    row = rows[0]
    if row.status != "claimed" or row.lease_until_utc is None:
        return row.slot_key
    left = (parse_ts(row.lease_until_utc) - datetime.now(UTC)).total_seconds()
    if left <= 0:
        return row.slot_key
    click.echo(f"{name}: an earlier `bot post` holds {row.slot_key} for {left:.1f} s more; "
               "waiting to see whether it is alive", err=True)  # fmt: skip
    time.sleep(left + LEASE_MARGIN_SECONDS)
    now = store.slot(name, row.slot_key)
    if now is None or now.status not in ("claimed", "failed"):
        return None  # it finished while this one waited: post anew
    if now.status == "claimed" and now.lease_until_utc != row.lease_until_utc:
        raise BotError(
            f"{name}: another `bot post` is posting {row.slot_key} now (held by {now.holder})",
            "let it finish; nothing was posted here",
        )
    return row.slot_key
