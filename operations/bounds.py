"""Numbers from outside (API bodies, forms, stored metadata), checked and bounded: a clear
`InvalidInput` naming the field, never a `TypeError` or an unbounded value."""

from __future__ import annotations

import math
from typing import Any

from operations.exceptions import InvalidInput


def bounded_int(value: Any, field: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (a bool or a fractional float is refused)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"{field} must be a whole number", field=field)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a whole number (got {value!r})", field=field) from None
    if not lo <= number <= hi:
        raise InvalidInput(f"{field} must be between {lo} and {hi}", field=field)
    return number


def bounded_float(value: Any, field: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A finite number in [lo, hi] ((lo, hi] with `lo_open`)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a number (got {value!r})", field=field) from None
    if not math.isfinite(number) or number < lo or number > hi or (lo_open and number == lo):
        bound = f"above {lo:g}" if lo_open else f"at least {lo:g}"
        raise InvalidInput(f"{field} must be {bound} and at most {hi:g}", field=field)
    return number
