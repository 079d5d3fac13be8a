"""Template filters of the training pages (the charts are operations' `chart` tag)."""

from __future__ import annotations

from typing import Any

from django import template

from operations.readable import percent

register = template.Library()


@register.filter
def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal ("-" for none): the one format of
    accuracies on every page (`operations.readable.percent`)."""
    return percent(value) or "-"


@register.filter
def points(value: Any) -> str:
    """A difference of two fractions in percentage points, signed ("+1.6 pp"; "-" for none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{100.0 * value:+.1f} pp"


@register.filter
def signed(value: Any, places: int = 4) -> str:
    """A signed number with `places` decimals ("+0.0123"; "-" for none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:+.{int(places)}f}"
