"""Template filters of the runs pages."""

from __future__ import annotations

import json
import math
from typing import Any

from django import template

from operations.kinds import RunColumn

register = template.Library()


@register.filter
def get(mapping: Any, key: str) -> Any:
    """`mapping[key]`, or None (a figure a run lacks)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def figure(value: Any, column: RunColumn) -> str:
    """A run's figure as its column shows it: a share as a percentage, a count whole."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "\u2013"
    if column.percent:
        return f"{100 * value:.1f} %"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{column.places}f}"


@register.filter
def param(value: Any) -> str:
    """A parameter value as text: lists joined, structures as JSON, none as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


@register.filter
def short_id(operation_id: str, operation_type: str) -> str:
    """The id without its `op_<type>_` prefix (the kind has a column; the full id is the link's
    title)."""
    prefix = f"op_{operation_type}_"
    return operation_id[len(prefix) :] if operation_id.startswith(prefix) else operation_id
