"""Server-rendered inline SVG charts of a training run's epoch metrics (no JavaScript)."""

from __future__ import annotations

import math
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

WIDTH, HEIGHT = 560, 200
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 26


def _values(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    out = []
    for r in records:
        value = r.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append((int(r.get("epoch") or 0), float(value)))
    return out


def line_chart(
    records: list[dict[str, Any]], series: list[tuple[str, str, str]], title: str
) -> SafeString:
    """An SVG with one polyline per (key, label, css class); axes scaled to the data."""
    lines = [(label, css, _values(records, key)) for key, label, css in series]
    points = [p for _, _, pts in lines for p in pts]
    if not points:
        return SafeString("")
    epochs = [e for e, _ in points]
    values = [v for _, v in points]
    e_lo, e_hi = min(epochs), max(epochs)
    v_lo, v_hi = min(values), max(values)
    if v_hi - v_lo < 1e-12:
        v_lo, v_hi = v_lo - 0.5, v_hi + 0.5
    span_e = max(e_hi - e_lo, 1)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def xy(epoch: int, value: float) -> str:
        x = PAD_L + plot_w * (epoch - e_lo) / span_e
        y = PAD_T + plot_h * (1.0 - (value - v_lo) / (v_hi - v_lo))
        return f"{x:.1f},{y:.1f}"

    polylines = format_html_join(
        "",
        '<polyline class="{}" points="{}"><title>{}</title></polyline>',
        ((css, " ".join(xy(e, v) for e, v in pts), label) for label, css, pts in lines if pts),
    )
    legend = format_html_join(
        "",
        '<text x="{}" y="{}" class="legend {}">{}</text>',
        ((PAD_L + 8 + 110 * i, PAD_T + 10, css, label) for i, (label, css, _) in enumerate(lines)),
    )
    bottom = HEIGHT - PAD_B
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">'
        "<title>{title}</title>"
        '<line class="axis" x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>'
        '<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<text x="4" y="{t2}">{vhi}</text><text x="4" y="{b}">{vlo}</text>'
        '<text x="{l}" y="{h2}">epoch {elo}</text><text x="{r2}" y="{h2}">{ehi}</text>'
        "{polylines}{legend}</svg>",
        w=WIDTH,
        h=HEIGHT,
        title=title,
        l=PAD_L,
        t=PAD_T,
        t2=PAD_T + 4,
        b=bottom,
        r=WIDTH - PAD_R,
        r2=WIDTH - PAD_R - 16,
        h2=HEIGHT - 6,
        vhi=f"{v_hi:.3g}",
        vlo=f"{v_lo:.3g}",
        elo=e_lo,
        ehi=e_hi,
        polylines=polylines,
        legend=legend,
    )


@register.simple_tag
def loss_chart(records: list[dict[str, Any]]) -> SafeString:
    return line_chart(
        records, [("train_loss", "train loss", "s1"), ("val_loss", "validation loss", "s2")], "Loss"
    )


@register.simple_tag
def accuracy_chart(records: list[dict[str, Any]]) -> SafeString:
    return line_chart(
        records,
        [("train_accuracy", "train accuracy", "s3"), ("val_accuracy", "validation accuracy", "s4")],
        "Accuracy",
    )


@register.filter
def epoch_records(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in metrics or [] if m.get("kind") == "epoch"]


@register.filter
def pct(value: Any) -> str:
    return f"{100.0 * value:.1f} %" if isinstance(value, (int, float)) else "-"
