"""`bot status`: what the bot did and will do, for one persona or a thousand.

    bot status                     one line per persona (a table), the daemon's state on top
    bot status -p ada              one persona: the detail view (posts, rejections, failures)
    bot status -p 'poet-*' --json  the document `status_report` builds (README lists fields)
    bot status --check             a liveness probe on the daemon's heartbeat

Reads only: no store is created before the first run (an existing one is opened as every
command opens it, pending migrations applied), and no SQL is here (the store's
`persona_summaries`, `cursors` and per-persona reads). Whether a daemon runs comes from the
heartbeats `bot run` writes (bot/daemon/scheduler.py: "daemon" every 30 s, STARTED_BEAT and
STOPPED_BEAT); a persona's health (failing, backoff, disabled) from the state cursor the
running daemon keeps (`Daemon._record_state`). A next run is shown as scheduled only while
a daemon runs and serves that persona; otherwise status says so and what would come next if
`bot run` started now (as `bot check` shows it, less a first run whose slot is posted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click

from bot.commands.app import App, counts_text, persona_option, shorten
from bot.config import Config, PersonaSettings
from bot.store import PersonaSummary, Store, isoformat_utc, store_exists

HEARTBEAT_MAX_AGE_SECONDS = 180.0  # 6 x bot.daemon.scheduler.HEARTBEAT_SECONDS (a test keeps them in step)
NOT_SCHEDULED = "the running daemon does not run it (added since it started, or left out by -p)"
STATES = ("ok", "failing", "backoff", "disabled", "not_scheduled", "not_running", "off")


@click.command()
@persona_option
@click.option(
    "-s",
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only personas in this state, e.g. failing (repeatable).",
)
@click.option(
    "-l", "--long", "long_view", is_flag=True, help="The detail view for every selected persona."
)
@click.option(
    "-n",
    "--limit",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Recent posts per persona in the detail view and JSON (0: totals only).",
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON (fields: README).")
@click.option(
    "--check", "check_alive", is_flag=True, help="Exit 1 if the daemon's heartbeat is stale."
)
@click.option(
    "--max-age-seconds",
    default=HEARTBEAT_MAX_AGE_SECONDS,
    show_default=True,
    type=click.FloatRange(min=1),
    help="How old the heartbeat may be for the daemon to count as running.",
)
def status(
    personas: tuple[str, ...], states: tuple[str, ...], long_view: bool, limit: int, as_json: bool, check_alive: bool,
    max_age_seconds: float,
) -> None:  # fmt: skip
    """Show each persona's last post, next run and failures.

    The first line says whether `bot run` is running; a next run is shown as scheduled
    only while it is. One persona selected (or --long): the detail view.

    \b
    Examples:
      bot status                    # one line per persona
      bot status -p nietzsche -n 10 # one persona in detail
      bot status -p 'poet-*' --json
      bot status -s failing -s backoff -s disabled   # what needs a look
      bot status --check            # liveness probe: exit 1 if `bot run` is not beating
    """
    config = App.current().config(check_models=False)
    if check_alive:
        click.echo(check_heartbeat(config, max_age_seconds))
        return
    chosen = select_personas(config, personas)
    report = status_report(config, chosen, limit, max_age_seconds=max_age_seconds)
    if states:
        report["personas"] = {
            name: info for name, info in report["personas"].items() if info["state"] in states
        }
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    if not store_exists(config.store):
        click.echo(f"no state yet: {config.store} does not exist (nothing has run)")
    if long_view or (len(chosen) == 1 and not states):
        _echo_detail(report)
    else:
        _echo_table(report)


def select_personas(config: Config, patterns: Sequence[str]) -> list[PersonaSettings]:
    """The personas named or matched by glob (`poet-*`) as every `-p` selects them
    (`Config.select`), in config order; all when none."""
    chosen = {p.name for p in config.select(patterns)}
    return [p for name, p in config.personas.items() if name in chosen]


# --- the document -------------------------------------------------------------------------


@dataclass(frozen=True)
class DaemonState:
    """Whether `bot run` runs, from its heartbeats: `running` (a beat within max age, none
    stopped since), `stopped` (a clean stop after the last beat), `stale` (no beat for
    longer than max age: killed, hung or gone) or `never` (no beat at all)."""

    state: str
    last_beat: datetime | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    once: datetime | None = None  # the last `bot run --once`

    @property
    def running(self) -> bool:
        return self.state == "running"


def daemon_state(store: Store | None, now: datetime, max_age_seconds: float) -> DaemonState:
    from bot.daemon.state import ONCE_BEAT, STARTED_BEAT, STOPPED_BEAT

    beats = store.heartbeats() if store is not None else {}
    beat, stopped = beats.get("daemon"), beats.get(STOPPED_BEAT)
    if beat is None:
        state = "never"
    elif stopped is not None and stopped >= beat:
        state = "stopped"
    elif (now - beat).total_seconds() > max_age_seconds:
        state = "stale"
    else:
        state = "running"
    return DaemonState(state, beat, beats.get(STARTED_BEAT), stopped, beats.get(ONCE_BEAT))


def status_report(
    config: Config,
    personas: Sequence[PersonaSettings],
    limit: int,
    *,
    max_age_seconds: float = HEARTBEAT_MAX_AGE_SECONDS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `bot status --json` document; read-only, and no store is created. Totals come
    from a fixed number of queries; `limit` > 0 adds per-persona lists (a few queries each)."""
    now = now or datetime.now(UTC)
    store = _open(config)
    try:
        daemon = daemon_state(store, now, max_age_seconds)
        summaries = store.persona_summaries() if store is not None else {}
        next_runs = store.cursors("next_run:") if store is not None else {}
        healths = _healths(store, daemon)
        report: dict[str, Any] = {
            "store": str(config.store),
            "generated_at_utc": _iso(now.replace(microsecond=0)),
            "daemon": {
                "state": daemon.state,
                "running": daemon.running,
                "last_beat_utc": _iso(daemon.last_beat),
                "started_at_utc": _iso(daemon.started),
                "stopped_at_utc": _iso(daemon.stopped),
                "last_once_utc": _iso(daemon.once),
            },
            "personas": {},
            "heartbeats": {},
        }
        for persona in personas:
            info = _persona_summary(persona, summaries.get(persona.name), daemon, now,
                                    healths.get(persona.name), next_runs.get(persona.name))  # fmt: skip
            if limit and store is not None:
                info.update(_persona_detail(store, persona.name, limit))
            elif limit:
                info.update(posts=[], rejections={}, failures={}, recent_failures=[],
                            reply_skips={}, unknown=[])  # fmt: skip
            report["personas"][persona.name] = info
        if store is not None:
            report["heartbeats"] = {name: _iso(at) for name, at in store.heartbeats().items()}
    finally:
        if store is not None:
            store.close()
    return report


def _healths(store: Store | None, daemon: DaemonState) -> dict[str, dict[str, Any]]:
    """Each persona's health as the running daemon recorded it (older runs' are stale)."""
    if store is None or not daemon.running:
        return {}
    from bot.daemon.state import RUN_CURSOR, STATE_CURSOR

    run = store.get_cursor(RUN_CURSOR)
    fresh = {}
    for name, value in store.cursors(STATE_CURSOR).items():
        try:
            health = json.loads(value)
        except ValueError:
            continue
        if isinstance(health, dict) and run is not None and health.get("run") == run:
            fresh[name] = health
    return fresh


def _persona_summary(
    persona: PersonaSettings,
    summary: PersonaSummary | None,
    daemon: DaemonState,
    now: datetime,
    health: dict[str, Any] | None,
    next_run: str | None,
) -> dict[str, Any]:
    from bot.daemon.slots import next_run_times, post_trigger, slot_key

    if not persona.enabled:
        state, detail = "off", "enabled: false in the config"
    elif not daemon.running:
        state, detail = "not_running", ""
    elif health is None:
        state, detail = "not_scheduled", NOT_SCHEDULED
    else:
        state, detail = str(health.get("state", "ok")), str(health.get("detail", ""))
    scheduled = state in ("ok", "failing", "backoff") and next_run is not None
    if_started = next_slot = None
    if persona.enabled and not scheduled and state != "disabled":
        fire = post_trigger(persona.schedule, jitter=False).get_next_fire_time(None, now)
        next_slot = _iso(fire) if fire is not None else None
        times = next_run_times(persona.schedule, now, 1)  # a first run included, as `bot check`
        if_started = _iso(times[0].replace(microsecond=0)) if times else None
        posted = summary.last_post_slot_key if summary is not None else None
        if (
            persona.schedule.first_run_seconds is not None
            and times
            and posted == slot_key(persona.schedule, times[0])
        ):
            if_started = next_slot  # the first run's slot is posted: it would post nothing
    last_failure = summary.last_failure if summary is not None else None
    return {
        "enabled": persona.enabled,
        "publisher": persona.publisher,
        "state": state,
        "state_detail": detail,
        "last_post_at_utc": summary.last_post_at_utc if summary is not None else None,
        "post_count": summary.posts if summary is not None else 0,
        "failure_count": summary.failures if summary is not None else 0,
        "last_failure": asdict(last_failure) if last_failure is not None else None,
        "unknown_count": summary.unknown if summary is not None else 0,
        "next_run": next_run if scheduled else None,
        "next_run_if_started": if_started,
        "next_slot_if_started": next_slot,
    }


def _persona_detail(store: Store, name: str, limit: int) -> dict[str, Any]:
    return {
        "posts": [asdict(row) for row in store.recent_posts(name, limit)],
        "rejections": store.rejection_counts(name),
        "failures": store.failure_counts(name),
        "recent_failures": [asdict(row) for row in store.recent_failures(name, limit)],
        "reply_skips": store.mention_skip_counts(name),
        "unknown": [
            {"slot_key": row.slot_key, "text": row.text, "at_utc": row.updated_at_utc}
            for row in store.slots_with_status(name, "unknown", limit)
        ],
    }


# --- rendering ----------------------------------------------------------------------------


def _daemon_words(daemon: DaemonState, now: datetime | None = None) -> str:
    if daemon.state == "running":
        seconds = max(0.0, (now - daemon.last_beat).total_seconds()) if (
            now and daemon.last_beat) else None  # fmt: skip
        age = f", heartbeat {seconds:.0f} s ago" if seconds is not None else ""
        return f"running (since {_iso(daemon.started) or '?'}{age})"
    if daemon.state == "stopped":
        return f"not running (stopped at {_iso(daemon.stopped)})"
    if daemon.state == "stale":
        return f"not running (last heartbeat {_iso(daemon.last_beat)}; killed or hung?)"
    return "not running (it never ran on this store)"


def _daemon_line(report: dict[str, Any]) -> str:
    d = report["daemon"]
    daemon = DaemonState(d["state"], _parse(d["last_beat_utc"]), _parse(d["started_at_utc"]),
                         _parse(d["stopped_at_utc"]))  # fmt: skip
    line = f"daemon: {_daemon_words(daemon, _parse(report['generated_at_utc']))}"
    if not daemon.running:
        line += "; nothing is scheduled (next slots: if `bot run` started now)"
    return line


def _when(iso: str | None) -> str:
    """2026-12-02T14:00:05.000Z -> 2026-12-02 14:00 (UTC, to the minute)."""
    return iso[:16].replace("T", " ") if iso else "-"


def _next_cell(info: dict[str, Any]) -> str:
    if info["next_run"]:
        return _when(info["next_run"])
    if info["next_slot_if_started"]:
        return "(next slot " + _when(info["next_slot_if_started"]) + ")"
    return "-"


def _echo_table(report: dict[str, Any]) -> None:
    personas = report["personas"]
    click.echo(_daemon_line(report))
    width = min(32, max([7, *(len(n) for n in personas)]))
    click.echo(f"{'PERSONA':<{width}}  {'STATE':<13}  {'LAST POST (UTC)':<16}  "
               f"{'NEXT RUN (UTC)':<28}  {'POSTS':>5}  {'FAILS':>5}  LAST FAILURE")  # fmt: skip
    for name, info in personas.items():
        failure = info["last_failure"]
        last = (f"{_when(failure['created_at_utc'])} {failure['kind']}: "
                f"{shorten(failure['error'], 40)}" if failure else "")  # fmt: skip
        click.echo(f"{name:<{width}}  {info['state'].replace('_', ' '):<13}  "
                   f"{_when(info['last_post_at_utc']):<16}  {_next_cell(info):<28}  "
                   f"{info['post_count']:>5}  {info['failure_count']:>5}  {last}".rstrip())  # fmt: skip
    states = Counter(info["state"] for info in personas.values())
    tally = ", ".join(f"{states[s]} {s.replace('_', ' ')}" for s in STATES if states[s])
    unknown = sum(info["unknown_count"] for info in personas.values())
    noun = "persona" if len(personas) == 1 else "personas"
    slots = f"; {unknown} unknown slot{'s' if unknown != 1 else ''} (see `bot status -p NAME`)"
    click.echo(f"{len(personas)} {noun}: {tally or 'none'}{slots if unknown else ''}")


def _echo_detail(report: dict[str, Any]) -> None:
    click.echo(_daemon_line(report))
    for name, info in report["personas"].items():
        enabled = "enabled" if info["enabled"] else "disabled"
        click.echo(f"{name} ({enabled}, {info['publisher']}):")
        detail = f" ({info['state_detail']})" if info["state_detail"] else ""
        click.echo(f"  state: {info['state'].replace('_', ' ')}{detail}")
        posts = info.get("posts", [])
        if info["post_count"]:
            click.echo(f"  posts: {info['post_count']}, last at {info['last_post_at_utc']}")
        else:
            click.echo("  posts: none yet")
        for post in posts:
            click.echo(f"    {post['created_at_utc']}  {post['url'] or post['remote_id']}")
            click.echo(f"      {shorten(post['text'], 90)}")
        if "rejections" in info:
            click.echo(f"  rejections: {counts_text(info['rejections'])}")
            click.echo(f"  failures: {counts_text(info['failures'])}")
        if info.get("reply_skips"):
            click.echo(f"  mentions not answered: {counts_text(info['reply_skips'])}")
        for slot in info.get("unknown", []):
            click.echo(f"  unknown: {slot['slot_key']} (may have been posted; never re-sent)")
            if slot["text"]:
                click.echo(f"      {shorten(slot['text'], 90)}")
        if info["next_run"]:
            click.echo(f"  next run: {info['next_run']} (scheduled by the running daemon)")
        elif info["next_run_if_started"]:
            why = "not scheduled" if info["state"] == "not_scheduled" else "not running"
            then = info["next_slot_if_started"]
            then = (
                f", the next slot at {then}" if then and then != info["next_run_if_started"] else ""
            )
            click.echo(f"  next run: {why}; if `bot run` started now: "
                       f"{info['next_run_if_started']}{then}")  # fmt: skip
        for failure in info.get("recent_failures", [])[:1]:
            click.echo(
                f"    last: {failure['created_at_utc']} {failure['kind']}: "
                f"{shorten(failure['error'], 80)}"
            )
    beats = report["heartbeats"]
    click.echo(
        "heartbeats: " + (", ".join(f"{k} {v}" for k, v in beats.items()) if beats else "none")
    )


# --- bot status --check -------------------------------------------------------------------


def check_heartbeat(config: Config, max_age_seconds: float) -> str:
    """One line when the daemon beat recently; a one-line error (exit 1) otherwise."""
    hint = "is `bot run` running? see its log"
    store = _open(config)
    if store is None:
        raise click.ClickException(f"no daemon heartbeat: {config.store} does not exist ({hint})")
    with store:
        daemon = daemon_state(store, datetime.now(UTC), max_age_seconds)
    beat = daemon.last_beat
    if beat is None:
        raise click.ClickException(f"no daemon heartbeat in {config.store} ({hint})")
    if daemon.state == "stopped":
        raise click.ClickException(
            f"daemon stopped: `bot run` stopped at {_iso(daemon.stopped)} ({hint})"
        )
    age = (datetime.now(UTC) - beat).total_seconds()
    when = _iso(beat)
    if daemon.state == "stale":
        raise click.ClickException(
            f"daemon heartbeat is stale: last at {when}, {age:.0f} s ago "
            f"(more than {max_age_seconds:g} s; {hint})"
        )
    return f"ok: daemon heartbeat {age:.0f} s ago ({when})"


def _open(config: Config) -> Store | None:
    """The store, or None before anything ran (status creates nothing)."""
    from bot.store import open_store

    return open_store(config.store) if store_exists(config.store) else None


def _iso(moment: datetime | None) -> str | None:
    """The store's one time format (2026-12-02T14:00:05.000Z), or None."""
    return isoformat_utc(moment) if moment is not None else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
