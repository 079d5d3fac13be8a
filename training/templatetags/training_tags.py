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
