"""Template filters of the runs pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get(mapping: Any, key: str) -> Any:
    """`mapping[key]`, or None (a figure a run lacks)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
