"""Template filters of the training pages (the charts are operations' `chart` tag)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal ("-" for none)."""
    return f"{100.0 * value:.1f} %" if isinstance(value, (int, float)) else "-"
