"""Template filters shared by the pages."""

from __future__ import annotations

from typing import Any

from django import template

from operations.execution import may_cancel
from operations.models import Operation
from operations.serializers import is_stale

register = template.Library()


@register.filter
def fmt(value: Any) -> str:
    """Numbers compactly (floats to 4 significant digits), everything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@register.filter
def without(record: dict, keys: str) -> dict:
    """The record without the comma-separated `keys` (to list a metric's own values)."""
    drop = {k.strip() for k in keys.split(",")}
    return {k: v for k, v in record.items() if k not in drop}


@register.filter
def stale(op: Operation) -> bool:
    """Whether an active operation's snapshot can no longer be called live (the API's rule)."""
    return is_stale(op)


@register.filter
def cancellable_by(op: Operation, user: Any) -> bool:
    """Whether `user` may cancel `op` (the services' rule, so the page offers only what works)."""
    return may_cancel(user, op)
