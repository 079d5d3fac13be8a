"""How an operation's figures read on the pages: durations, sizes, dates, labelled fields, where
it ran and how it ended — never a Python repr.

The template tags of `operations.templatetags.ktrdr` wrap these; the views use
`operation_outcome` for their ETags too. Kinds label their own keys and say what a finished run
achieved through the kinds registry (`OperationKind.field_labels`, `hidden_fields`,
`describe_outcome`); everything else is formatted from the value and the key's suffix
(`*_seconds` a duration, `*_bytes` a size, `*_at` a moment, `*accuracy` a percentage).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from operations.kinds import kind_find
from operations.models import Operation, OperationStatus

# How much of a value the pages show: deeper or longer parts are summarised, not dumped.
MAX_DEPTH = 3
MAX_ITEMS = 20
MAX_TEXT = 300
# Keys of a metric record that say what it is, not what it measured.
RECORD_KEYS = frozenset({"kind", "recorded_at", "seq"})


def humane_duration(seconds: Any) -> str:
    """ "0.4 s", "31.2 s", "1 min 12 s", "2 h 5 min", "3 d 4 h"; "" for no number."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value) or value < 0:
        return ""
    if value < 60:
        return f"{value:.1f} s" if value < 59.95 else "1 min 0 s"
    whole = round(value)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def percent(ratio: Any) -> str:
    """A ratio (0.337) as every page shows it: a percentage with one decimal ("33.7 %");
    "" for no number."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        return ""
    return f"{100.0 * ratio:.1f} %"


def _moment(value: Any) -> str:
    """An ISO date or datetime string, or a Unix time, as a date (midnight) or date and time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            when = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return ""
    else:
        try:
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return ""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    if (when.hour, when.minute, when.second, when.microsecond) == (0, 0, 0, 0):
        return when.strftime("%Y-%m-%d")
    zone = " UTC" if when.tzinfo is not None else ""
    return when.strftime("%Y-%m-%d %H:%M:%S") + zone


def _looks_like_moment(text: str) -> bool:
    # "2024-01-02", "2024-01-02T03:04:05+00:00": a date first, nothing else.
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit()


def scalar(key: str, value: Any) -> str:
    """One plain value as text: by the key's suffix first, then by its type."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = isinstance(value, (int, float))
    if number and key.endswith("_seconds"):
        return humane_duration(value) or "—"
    if number and key.endswith("_bytes"):
        return str(filesizeformat(value))
    if number and key.endswith("accuracy"):
        return percent(value) or "—"
    if number and key.endswith("_at"):
        return _moment(value) or str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if math.isfinite(value) else "—"
    text = str(value)
    if _looks_like_moment(text) and (moment := _moment(text)):
        return moment
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def label(key: str, labels: Mapping[str, str] | None = None) -> str:
    """A key as a label: the kind's own, else "bars_so_far" → "Bars so far"."""
    if labels and key in labels:
        return labels[key]
    words = str(key).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else "—"


def _list(key: str, items: list, labels: Mapping[str, str] | None, depth: int) -> SafeString:
    shown, more = items[:MAX_ITEMS], len(items) - MAX_ITEMS
    tail = format_html(" … and {} more", more) if more > 0 else ""
    if not shown:
        return format_html("{}", "none")
    if all(not isinstance(v, (dict, list)) for v in shown):
        return format_html("{}{}", ", ".join(scalar(key, v) for v in shown), tail)
    return format_html(
        '<ol class="fields">{}</ol>{}',
        format_html_join(
            "", "<li>{}</li>", ((value_html(key, v, labels, depth + 1),) for v in shown)
        ),
        tail,
    )


def value_html(
    key: str, value: Any, labels: Mapping[str, str] | None = None, depth: int = 0
) -> SafeString:
    """Any JSON value, readable: nested mappings as nested labelled fields, lists joined."""
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return format_html("{} fields", len(value))
        return fields_html(value, labels, depth=depth + 1)
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return format_html("{} items", len(value))
        return _list(key, list(value), labels, depth)
    return format_html("{}", scalar(key, value))


def fields_html(
    mapping: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None = None,
    *,
    hidden: frozenset[str] | set[str] = frozenset(),
    depth: int = 0,
    css: str = "facts small fields",
) -> SafeString:
    """A mapping as `<dl>` of labelled fields (a metric record without its kind and stamp)."""
    if not isinstance(mapping, Mapping):
        return format_html("{}", "" if mapping is None else scalar("", mapping))
    record = "kind" in mapping and "recorded_at" in mapping
    rows = [
        (label(str(k), labels), value_html(str(k), v, labels, depth))
        for k, v in list(mapping.items())[: MAX_ITEMS * 2]
        if str(k) not in hidden and not (record and k in RECORD_KEYS)
    ]
    if not rows:
        return format_html("{}", "—")
    return format_html(
        '<dl class="{}">{}</dl>', css, format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows)
    )


def kind_fields(
    operation: Operation, mapping: Mapping[str, Any] | None, *, hide: frozenset[str] = frozenset()
) -> SafeString:
    """`fields_html` with the operation kind's labels and hidden keys (and `hide`)."""
    kind = kind_find(operation.operation_type)
    labels = kind.field_labels if kind else {}
    hidden = frozenset(kind.hidden_fields if kind else ()) | hide
    return fields_html(mapping, labels, hidden=hidden)


def placement_html(placement: Mapping[str, Any] | None) -> SafeString:
    """Where the work runs, as what follows "Runs on": "this backend (local execution, auto
    mode)", "agent <strong>gpu-1</strong> (auto mode: it has the training role with a GPU)";
    the agents tried first, with their raw reasons, folded away. One tense, running or done:
    the page's header that shows it is not polled."""
    if not isinstance(placement, Mapping):
        return format_html("{}", "")
    mode = str(placement.get("execution_mode") or "auto")
    reason = str(placement.get("reason") or "")
    agent = str(placement.get("agent") or "")
    tried = [str(t) for t in placement.get("tried") or [] if t][:MAX_ITEMS]
    if agent:
        why = reason.removeprefix(f"{mode}: agent {agent} ")
        why = f"{mode} mode: it {why}" if why != reason else (reason or f"{mode} mode")
        sentence = format_html("agent <strong>{}</strong> ({})", agent, why)
    elif mode == "local":
        sentence = format_html("{}", "this backend (local execution, asked for)")
    elif tried:
        sentence = format_html(
            "this backend (local execution, {} mode; no agent could take it)", mode
        )
    else:
        sentence = format_html("this backend (local execution, {} mode)", mode)
    if not tried:
        return sentence
    return format_html(
        '{} <details class="raw"><summary>{} agent{} tried first</summary><ul>{}</ul></details>',
        sentence,
        len(tried),
        "" if len(tried) == 1 else "s",
        format_html_join("", '<li><code class="wrap">{}</code></li>', ((t,) for t in tried)),
    )


def operation_outcome(operation: Operation) -> str:
    """A finished operation's outcome in one line ("Completed in 31.2 s: model v3 saved",
    "Failed: …", "Cancelled at epoch 4 of 10"); "" while it runs."""
    if not operation.is_terminal:
        return ""
    kind = kind_find(operation.operation_type)
    detail = ""
    if kind is not None and kind.describe_outcome is not None:
        try:
            detail = str(kind.describe_outcome(operation) or "")
        except (KeyError, TypeError, ValueError, AttributeError):
            # A summary of an older shape: the generic line still says how it ended.
            detail = ""
    status = operation.status
    if status == OperationStatus.COMPLETED:
        took = humane_duration(operation.duration_seconds)
        head = f"Completed in {took}" if took else "Completed"
        return f"{head}: {detail}" if detail else head
    if status == OperationStatus.FAILED:
        error = (operation.error_message or "").strip() or "no reason given"
        return f"Failed: {error}"
    if status == OperationStatus.CANCELLED:
        return f"Cancelled {detail}" if detail else "Cancelled"
    return str(status).capitalize()
