"""Template helpers of the backtest panel: the result's curve as chart records, figure rows."""

from __future__ import annotations

from typing import Any

from django import template

from operations.readable import percent

register = template.Library()

# (key, label, format) of the figures table, strategy beside its baselines.
FIGURE_ROWS = (
    ("total_return", "Total return", "pct"),
    ("annualised_return", "Annualised return", "pct"),
    ("annualised_volatility", "Annualised volatility", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_bars", "Max drawdown length (bars)", "int"),
    ("calmar", "Calmar", "num"),
    ("hit_rate", "Hit rate (closed trades won)", "pct"),
    ("trades", "Trades", "int"),
    ("turnover", "Turnover (units traded)", "num"),
    ("exposure", "Exposure (bars in a position)", "pct"),
    ("costs_paid", "Costs paid (sum of bar costs)", "pct"),
)


def _cell(value: Any, style: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if style == "pct":
        return percent(value) or "-"
    if style == "int":
        return f"{int(value):,}"
    return f"{value:.2f}"


@register.simple_tag
def curve_records(summary: Any) -> list[dict[str, Any]]:
    """`{% curve_records op.result_summary as points %}`: one record per drawn bar, kind
    `curve` (time, equity, buy_and_hold, rule, drawdown), for the `chart` tag."""
    curve = (summary or {}).get("curve") if isinstance(summary, dict) else None
    if not isinstance(curve, dict):
        return []
    keys = [k for k in ("equity", "buy_and_hold", "rule", "drawdown") if k in curve]
    times = curve.get("time") or []
    return [
        {"kind": "curve", "time": t, **{k: curve[k][i] for k in keys if i < len(curve[k])}}
        for i, t in enumerate(times)
    ]


@register.simple_tag
def figure_rows(summary: Any) -> list[dict[str, Any]]:
    """Rows of the figures table: label, strategy, buy-and-hold, rule baseline."""
    summary = summary if isinstance(summary, dict) else {}
    figures = summary.get("figures") or {}
    baselines = summary.get("baselines") or {}
    bh, rule = baselines.get("buy_and_hold") or {}, baselines.get("rule") or {}
    return [
        {
            "label": label,
            "strategy": _cell(figures.get(key), style),
            "buy_and_hold": _cell(bh.get(key), style),
            "rule": _cell(rule.get(key), style),
        }
        for key, label, style in FIGURE_ROWS
    ]


@register.filter
def signed_pct(value: Any) -> str:
    return percent(value) or "-"
