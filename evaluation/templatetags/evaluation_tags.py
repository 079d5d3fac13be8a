"""Template helpers of the evaluation panel: the fold table, the aggregate and its interval."""

from __future__ import annotations

from typing import Any

from django import template

from operations.readable import percent

register = template.Library()

# (key, label, style) of the aggregate table.
AGGREGATE_ROWS = (
    ("accuracy", "Accuracy", "pct"),
    ("majority_rate", "Majority rate", "pct"),
    ("accuracy_lift", "Accuracy lift", "pt"),
    ("log_loss", "Log-loss", "num"),
    ("prior_log_loss", "Prior log-loss", "num"),
    ("log_loss_lift", "Log-loss lift", "num"),
    ("macro_f1", "Macro F1", "num"),
)


def _cell(value: Any, style: str) -> str:
    """A figure as the panel shows it; negative numbers with a minus sign, not a hyphen."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if style == "pct":
        return percent(value) or "-"
    if style == "pt":
        return f"{100.0 * value:+.1f} pt".replace("-", "\u2212")
    if style == "pt_spread":  # a standard deviation: no sign
        return f"{100.0 * value:.1f} pt"
    return f"{value:.4f}".replace("-", "\u2212")


def _span(part: Any) -> str:
    if not isinstance(part, dict):
        return "-"
    first, last = str(part.get("first", ""))[:16], str(part.get("last", ""))[:16]
    return f"{first} to {last} ({part.get('rows')})"


@register.filter
def lift_points(value: Any) -> str:
    """A lift in percentage points, signed: "+0.8 pt", a minus sign for a fall."""
    return _cell(value, "pt")


@register.simple_tag
def fold_rows(summary: Any) -> list[dict[str, str]]:
    """One row per fold × seed: fold, seed, training and test range, the figures."""
    summary = summary if isinstance(summary, dict) else {}
    rows = []
    for r in summary.get("fold_results") or []:
        if not isinstance(r, dict):
            continue
        train = {
            "first": (r.get("train") or {}).get("first"),
            "last": (r.get("validation") or {}).get("last"),
            "rows": ((r.get("train") or {}).get("rows") or 0)
            + ((r.get("validation") or {}).get("rows") or 0),
        }
        rows.append(
            {
                "fold": r.get("fold"),
                "seed": r.get("seed"),
                "train": _span(train),
                "test": _span(r.get("test")),
                "accuracy": _cell(r.get("accuracy"), "pct"),
                "majority": _cell(r.get("majority_rate"), "pct"),
                "lift": _cell(r.get("accuracy_lift"), "pt"),
                "log_loss": _cell(r.get("log_loss"), "num"),
                "prior_log_loss": _cell(r.get("prior_log_loss"), "num"),
                "log_loss_lift": _cell(r.get("log_loss_lift"), "num"),
            }
        )
    return rows


@register.simple_tag
def aggregate_rows(summary: Any) -> list[dict[str, str]]:
    """The aggregate: per figure mean, median, std, min and max over every fold × seed."""
    summary = summary if isinstance(summary, dict) else {}
    figures = (summary.get("aggregate") or {}).get("figures") or {}
    return [
        {
            "label": label,
            **{s: _cell((figures.get(key) or {}).get(s), _spread(style, s)) for s in _STATS},
        }
        for key, label, style in AGGREGATE_ROWS
    ]


_STATS = ("mean", "median", "std", "min", "max")


def _spread(style: str, stat: str) -> str:
    return "pt_spread" if style == "pt" and stat == "std" else style


@register.simple_tag
def lift_interval(summary: Any, key: str = "accuracy_lift") -> str:
    """ "+0.8 pt [-1.2, +2.9] (95 %, 2000 resamples of 5 folds)"; "" without one."""
    summary = summary if isinstance(summary, dict) else {}
    agg = summary.get("aggregate") or {}
    ci = (agg.get("ci") or {}).get(key) or {}
    if not isinstance(ci.get("mean"), (int, float)):
        return ""
    style = "pt" if key == "accuracy_lift" else "num"
    boot = agg.get("bootstrap") or {}
    low, high = _cell(ci.get("low"), style), _cell(ci.get("high"), style)
    return (
        f"{_cell(ci['mean'], style)} [{low}, {high}]"
        f" ({percent(boot.get('confidence')) or '-'}, {boot.get('resamples')} resamples of "
        f"{ci.get('folds')} folds)"
    )
