"""Template filters shared by the pages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils.html import format_html, format_html_join, json_script
from django.utils.safestring import SafeString, mark_safe

from operations import readable, selectors
from operations.execution import may_cancel
from operations.models import Operation
from operations.serializers import is_stale

register = template.Library()

# Records a page draws at most at first (its polls append what comes after).
MAX_HISTORY = 5000


@register.filter
def fmt(value: Any) -> str:
    """Numbers compactly (floats to 4 significant digits), everything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@register.filter
def fixed(value: Any, places: int = 1) -> str:
    """A number with `places` decimals ("" for none): `floatformat` for the live fragments,
    without its locale and Decimal machinery (it cost more than the rest of a fragment)."""
    try:
        return f"{float(value):.{int(places)}f}"
    except (TypeError, ValueError):
        return ""


@register.simple_tag
def when(value: dt.datetime | None, relative: bool = False) -> SafeString | str:
    """A moment as `<time>`: UTC in the page (and on hover), the viewer's own zone once
    static/ktrdr/live.js has read it; `relative=True` shows "3 minutes ago", kept current."""
    if value is None:
        return ""
    utc = value.astimezone(dt.UTC)
    label = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html(
        '<time datetime="{}" title="{}" data-{}>{}</time>',
        utc.isoformat().replace("+00:00", "Z"),
        label,
        "relative" if relative else "local",
        naturaltime(value) if relative else label,
    )


@register.filter
def percent(value: Any, places: int = 1) -> str:
    """A ratio (0.953) as a percentage ("95.3 %"); "" for none."""
    try:
        return f"{100 * float(value):.{int(places)}f} %"
    except (TypeError, ValueError):
        return ""


@register.filter
def duration(value: Any) -> str:
    """Seconds, humanely: "31.2 s", "1 min 12 s", "2 h 5 min" ("" for none)."""
    return readable.humane_duration(value)


@register.simple_tag
def fields(mapping: Any, op: Operation | None = None, hide: str = "") -> SafeString:
    """`{% fields op.metadata op=op hide="placement" %}`: any JSON mapping as labelled fields
    (dates as dates, durations and sizes in units, lists joined, nested mappings nested), with
    the labels and hidden keys of `op`'s kind."""
    hidden = frozenset(k.strip() for k in hide.split(",") if k.strip())
    if op is None:
        return readable.fields_html(mapping, hidden=hidden)
    return readable.kind_fields(op, mapping, hide=hidden)


@register.simple_tag
def placement(op: Operation) -> SafeString:
    """Where `op` runs or ran, as a sentence (its metadata's `placement`)."""
    return readable.placement_html((op.metadata or {}).get("placement"))


@register.filter
def outcome(op: Operation) -> str:
    """A finished operation's outcome ("Completed in 31.2 s: model v3 saved"); "" while active."""
    return readable.operation_outcome(op)


@register.filter
def stale(op: Operation) -> bool:
    """Whether an active operation's snapshot can no longer be called live (the API's rule)."""
    return is_stale(op)


@register.filter
def cancellable_by(op: Operation, user: Any) -> bool:
    """Whether `user` may cancel `op` (the services' rule, so the page offers only what works)."""
    return may_cancel(user, op)


@register.simple_tag
def metric_history(op: Operation, *, before: int, last: int, kind: str | None = None) -> list:
    """`{% metric_history op before=cursor last=50 kind="epoch" as records %}`: the last records
    before the page's cursor (what the page draws; polls append the rest)."""
    return selectors.operation_recent_metrics(
        operation=op, before=int(before), last=min(int(last), MAX_HISTORY), kind=kind or None
    )


_RECORD_FIELDS = frozenset({"seq", "kind", "recorded_at"})


@register.simple_tag
def metric_rows(records: list[dict]) -> SafeString:
    """Table rows of metric records: #, kind, time, and the record's own values (`fmt`)."""
    return format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
        (
            (
                r.get("seq"),
                r.get("kind"),
                str(r.get("recorded_at") or "")[11:19],
                " ".join(f"{k}={fmt(v)}" for k, v in r.items() if k not in _RECORD_FIELDS),
            )
            for r in records
        ),
    )


@register.simple_tag
def log_history(op: Operation, *, before: int, last: int) -> list:
    """`{% log_history op before=log_cursor last=100 as lines %}`: the last log lines before the
    page's log cursor (polls append the lines after it)."""
    return selectors.operation_recent_logs(
        operation=op, before=int(before), last=min(int(last), MAX_HISTORY)
    )


@register.simple_tag
def log_rows(lines: list[dict]) -> SafeString:
    """Table rows of log lines: #, time (UTC), level, where, message (escaped)."""
    return format_html_join(
        "",
        '<tr class="log-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code class="wrap">{}'
        "</code></td></tr>",
        (
            (
                str(line.get("level") or "").lower(),
                line.get("seq"),
                str(line.get("logged_at") or "")[11:23],
                line.get("level"),
                line.get("source") or "here",
                line.get("message"),
            )
            for line in lines
        ),
    )


@register.filter
def of_kind(records: list[dict] | None, kind: str) -> list[dict]:
    return [r for r in records or () if r.get("kind") == kind]


def _series(spec: str) -> list[dict[str, str]]:
    out = []
    for item in spec.split(","):
        key, _, label = item.partition(":")
        out.append({"key": key.strip(), "label": (label or key).strip()})
    return out


# The log-scale toggle of a chart (live.js shows it once the chart is drawn).
LOG_TOGGLE = mark_safe(
    ' <button type="button" class="link chart-log" aria-pressed="false" hidden>log scale</button>'
)


def _best(spec: str) -> dict[str, str] | None:
    """ "key:min|max:label" (the series whose lowest or highest point is marked)."""
    if not spec:
        return None
    key, mode, label = [*spec.split(":", 2), "", ""][:3]
    if mode not in ("min", "max"):
        raise template.TemplateSyntaxError(f"chart best={spec!r}: the mode is min or max")
    return {"key": key.strip(), "mode": mode, "label": (label or key).strip()}


@register.simple_tag
def chart(
    name: str,
    title: str,
    records: list[dict],
    *,
    x: str,
    series: str,
    kind: str,
    percent=False,
    time=False,
    y: str = "",
    best: str = "",
    log=False,
    xlabel: str = "",
) -> SafeString:
    """An interactive line chart (uPlot, drawn by static/ktrdr/live.js) of `records` of `kind`:
    `series` is "key:label,key:label"; later polls append points (`chart_append`); `time`: `x`
    is a Unix time in seconds, shown as a clock time; `y`: the value axis's label (its unit);
    `best` ("key:min|max:label") marks and names the series' lowest or highest point; `log`
    offers a log-scale toggle; `xlabel` names the x axis where the key `x` does not say it
    well. Drag zooms in, a double-click resets (the figure's hint says so).
    Without JavaScript the figure says where the numbers are."""
    spec = _series(series)
    keys = {x, *(s["key"] for s in spec)}
    points = [{k: r.get(k) for k in keys} for r in records if r.get("kind", kind) == kind]
    config = {
        "x": x,
        "kind": kind,
        "series": spec,
        "percent": bool(percent),
        "time": bool(time),
        "y": y,
        "xlabel": xlabel,
        "best": _best(best),
    }
    return format_html(
        '<figure class="chart" id="chart-{}" data-chart="{}"><figcaption>{} '
        '<span class="chart-best"></span>{}</figcaption>'
        '<div class="chart-plot" role="img" aria-label="{} by {}"></div>{}'
        '<p class="chart-hint muted">Drag across to zoom in, double-click to see it all.</p>'
        '<noscript><p class="muted">The table below lists every figure.</p></noscript></figure>',
        name,
        json.dumps(config),
        title,
        LOG_TOGGLE if log else "",
        title,
        xlabel or x,
        json_script(points),
    )


@register.simple_tag
def chart_append(records: list[dict]) -> SafeString:
    """New records for the page's charts (live.js hands each to the charts of its kind)."""
    return format_html("<div hidden data-chart-append>{}</div>", json_script(list(records)))
