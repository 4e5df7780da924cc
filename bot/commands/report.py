"""`bot report`: one self-contained HTML page, a section per persona, for people who would
rather look than read.

    bot report                      report.html in the working folder
    bot report -o /srv/www/bot.html -p 'poet-*' -n 20

Each section: the state and next runs (as `bot status` computes them), the recent posts
with their links, the rejected candidates with their reasons, the training and validation
loss curves (an inline SVG drawn from the card's history; the card's loss.png as a data URI
when the card has no history), and `bot eval`'s figures when they were recorded (eval.json
in the model folder: `bot new` writes it, `bot eval --record` too). No scripts, no external
files, no network: it opens from a mail attachment. Reads only, like `bot status`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bot.commands.app import App, persona_option
from bot.commands.figures import EVAL_FILE
from bot.config import Config, PersonaSettings
from bot.engine.card import LOSS_PLOT_FILE

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
.muted{color:#666} table{border-collapse:collapse;width:100%;margin:.5rem 0}
td,th{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6} .reason{font-family:monospace;color:#a33;white-space:nowrap}
.post{white-space:pre-wrap} .state{font-weight:bold} .grid{display:flex;gap:2rem;flex-wrap:wrap}
svg{background:#fcfcfc;border:1px solid #eee}
"""


@click.command(name="report", short_help="Write one self-contained HTML page of every persona.")
@persona_option
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("report.html"), show_default=True, help="The HTML file to write.")  # fmt: skip
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="Recent posts and rejected candidates per persona.")  # fmt: skip
def report(personas: tuple[str, ...], out: Path, limit: int) -> None:
    """Write an HTML page: posts, rejections, loss curve, quality, next runs.

    \b
    Examples:
      bot report                      # report.html
      bot report -o status.html -p nietzsche -n 20
    """
    from bot.commands.status import select_personas

    config = App.current().config(check_models=False)
    chosen = select_personas(config, personas)
    page = render_report(config, chosen, limit)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    click.echo(f"wrote {out} ({len(chosen)} persona{'s' if len(chosen) != 1 else ''}, "
               f"{len(page.encode()) // 1024} KiB)")  # fmt: skip


def render_report(
    config: Config, personas: Sequence[PersonaSettings], limit: int, now: datetime | None = None
) -> str:
    from bot.commands.status import status_report
    from bot.store import read_only

    now = now or datetime.now(UTC)
    status = status_report(config, personas, limit, now=now)
    nothing: dict[str, list[tuple[str, str, str]]] = {}
    rejected = read_only(
        config.store,
        lambda store: {p.name: store.recent_rejections(p.name, limit) for p in personas},
        nothing,
    )
    daemon = status["daemon"]
    beat = daemon["last_beat_utc"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Revenant report</title><style>{CSS}</style></head><body>",
        "<h1>Revenant report</h1>",
        (
            f"<p class='muted'>Generated {_e(status['generated_at_utc'])} from {_e(config.path)}; "
            f"store {_e(status['store'])}; daemon: <b>{_e(daemon['state'])}</b>"
            f"{f' (last heartbeat {_e(beat)})' if beat else ''}</p>"
        ),
    ]
    if personas:
        links = " · ".join(f"<a href='#p-{_e(p.name)}'>{_e(p.name)}</a>" for p in personas)
        parts.append(f"<nav>{links}</nav>")
    for persona in personas:
        info = status["personas"][persona.name]
        parts.append(_section(persona, info, rejected.get(persona.name, []), now))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(
    persona: PersonaSettings, info: dict[str, Any], rejected: list[tuple[str, str, str]],
    now: datetime,
) -> str:  # fmt: skip
    name = persona.name
    out = [f"<section id='p-{_e(name)}'><h2>{_e(name)}</h2>"]
    out.append(
        f"<p><span class='state'>{_e(info['state'])}</span> {_e(info['state_detail'])} · "
        f"publisher {_e(info['publisher'])} · {info['post_count']} posts · "
        f"{info['failure_count']} failures · model {_e(persona.model)}</p>"
    )
    out.append("<h3>Next runs</h3>" + _next_runs(persona, info, now))
    out.append("<h3>Recent posts</h3>")
    posts = info.get("posts", [])
    if posts:
        rows = "".join(
            f"<tr><td>{_e(p['created_at_utc'])}</td><td class='post'>{_e(p['text'])}</td>"
            f"<td>{_link(p['url'])}</td></tr>"
            for p in posts
        )
        out.append(f"<table><tr><th>when (UTC)</th><th>post</th><th>link</th></tr>{rows}</table>")
    else:
        out.append("<p class='muted'>No posts yet.</p>")
    out.append("<h3>Rejected candidates</h3>")
    counts = info.get("rejections") or {}
    if counts:
        tally = ", ".join(f"<span class='reason'>{_e(r)}</span> {n}" for r, n in counts.items())
        out.append(f"<p>All time: {tally}</p>")
    if rejected:
        rows = "".join(
            f"<tr><td class='reason'>{_e(reason)}</td><td class='post'>{_e(text)}</td>"
            f"<td>{_e(at)}</td></tr>"
            for text, reason, at in rejected
        )
        out.append(f"<table><tr><th>reason</th><th>candidate</th><th>when (UTC)</th></tr>"
                   f"{rows}</table>")  # fmt: skip
    else:
        out.append("<p class='muted'>No rejected candidates recorded.</p>")
    out.append("<div class='grid'><div><h3>Loss curve</h3>" + _loss(persona.model) + "</div>")
    out.append("<div><h3>Quality</h3>" + _quality(persona.model) + "</div></div></section>")
    return "\n".join(out)


def _next_runs(persona: PersonaSettings, info: dict[str, Any], now: datetime) -> str:
    from bot.daemon.scheduler import next_run_times

    if not persona.enabled:
        return "<p class='muted'>Disabled in the config.</p>"
    if info.get("next_run"):
        head = f"<p>Scheduled by the running daemon: <b>{_e(info['next_run'])}</b></p>"
    else:
        head = (f"<p>Not scheduled (<code>bot run</code> is not running it); if started now, "
                f"first at <b>{_e(info.get('next_run_if_started') or 'no time')}</b></p>")  # fmt: skip
    times = next_run_times(persona.schedule, now, 3, first_run=False)
    shown = ", ".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in times)
    return (
        head + f"<p class='muted'>Schedule: {_e(persona.schedule.describe())}; then {_e(shown)}</p>"
    )


def _loss(model_dir: Path) -> str:
    try:
        card = json.loads((model_dir / "card.json").read_text(encoding="utf-8"))
        history = card.get("metrics", {}).get("history") or []
    except (OSError, ValueError):
        history = []
    if history:
        return loss_svg(history)
    png = model_dir / LOSS_PLOT_FILE
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return f"<img alt='loss curve' width='480' src='data:image/png;base64,{data}'>"
    return "<p class='muted'>No training history in the card.</p>"


def loss_svg(history: list[dict[str, Any]], width: int = 480, height: int = 260) -> str:
    """Train and validation loss (nats/char) per epoch as an inline SVG line chart."""
    left, right, top, bottom = 52, 12, 26, 36
    series = {"train": [float(h["loss"]) for h in history],
              "validation": [float(h["val_loss"]) for h in history]}  # fmt: skip
    epochs = [int(h["epoch"]) for h in history]
    lo = min(min(v) for v in series.values())
    hi = max(max(v) for v in series.values())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = min(epochs), max(epochs)
    span = max(x1 - x0, 1)

    def x(e: int) -> float:
        return left + (e - x0) / span * (width - left - right)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    out = [(f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            "role='img' aria-label='loss curve'>")]  # fmt: skip
    for i in range(5):  # horizontal grid with labels
        v = lo + (hi - lo) * i / 4
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                   f"stroke='#e5e5e5'/><text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' "
                   f"text-anchor='end'>{v:.2f}</text>")  # fmt: skip
    for e in sorted({x0, x1, *epochs[:: max(1, len(epochs) // 6)]}):
        out.append(f"<text x='{x(e):.1f}' y='{height - bottom + 16}' font-size='11' "
                   f"text-anchor='middle'>{e}</text>")  # fmt: skip
    out.append(f"<text x='{(left + width) / 2:.0f}' y='{height - 4}' font-size='12' "
               "text-anchor='middle'>epoch</text>")  # fmt: skip
    out.append("<text x='8' y='14' font-size='12'>nats/char</text>")
    colours = {"train": "#1f77b4", "validation": "#d62728"}
    for i, (label, values) in enumerate(series.items()):
        points = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in zip(epochs, values, strict=True))
        out.append(f"<polyline fill='none' stroke='{colours[label]}' stroke-width='2' "
                   f"points='{points}'/>")  # fmt: skip
        out += [
            f"<circle cx='{x(e):.1f}' cy='{y(v):.1f}' r='2.5' fill='{colours[label]}'/>"
            for e, v in zip(epochs, values, strict=True)
        ]  # a single epoch shows too
        out.append(f"<text x='{width - right - 90}' y='{top + 14 + 16 * i}' font-size='12' "
                   f"fill='{colours[label]}'>{label} {values[-1]:.3f}</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def _quality(model_dir: Path) -> str:
    path = model_dir / EVAL_FILE
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ("<p class='muted'>Not measured yet: <code>bot eval --record</code> (or "
                "<code>bot new</code>) records it.</p>")  # fmt: skip
    from bot.commands.figures import format_figures, quality_figures

    try:
        lines = format_figures(quality_figures(result))
    except (KeyError, TypeError, ValueError):
        return f"<p class='muted'>{_e(path)} is not a `bot eval` result.</p>"
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return (
        f"<ul>{items}</ul><p class='muted'>{result['posts']} posts measured ({_e(path.name)})</p>"
    )


def _link(url: str | None) -> str:
    if not url:
        return ""
    if url.startswith(("http://", "https://")):
        return f"<a href='{_e(url)}'>link</a>"
    return _e(url)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
