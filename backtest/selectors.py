"""Every read of the backtest app: backtest operations and the trades of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backtest.kinds import OPERATION_TYPE
from operations import selectors as operation_selectors
from operations.exceptions import InvalidInput, NotFound
from operations.models import Operation, OperationMetric

MAX_TRADES_PAGE = 500
BACKTEST_LIST_LIMIT = 50


def backtest_get(*, operation_id: str) -> Operation:
    """The backtest operation (through the operations read path); NotFound for another kind."""
    op = operation_selectors.operation_get(operation_id=operation_id)
    if op.operation_type != OPERATION_TYPE:
        raise NotFound(
            f"operation {operation_id} is a {op.operation_type}, not a backtest",
            details={"operation_id": operation_id},
        )
    return op


@dataclass(frozen=True)
class TradesPage:
    operation_id: str
    status: str
    trades: list[dict[str, Any]]
    total: int
    kept: int
    offset: int
    limit: int


def _bounded(value: Any, field: str, lo: int, hi: int, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a whole number", field=field) from None
    if not lo <= number <= hi:
        raise InvalidInput(f"{field} must be between {lo} and {hi}", field=field)
    return number


def backtest_trades(*, operation_id: str, offset: Any = None, limit: Any = None) -> TradesPage:
    """A page of its trades, oldest first: every trade is a `trade` metric record (up to
    `backtest.runner.MAX_TRADE_RECORDS`), written when the run ends or is cancelled; `total`
    counts the trades its result found, `kept` the records stored. Empty before that."""
    op = backtest_get(operation_id=operation_id)
    offset = _bounded(offset, "offset", 0, 10_000_000, 0)
    limit = _bounded(limit, "limit", 1, MAX_TRADES_PAGE, 100)
    summary = op.result_summary if isinstance(op.result_summary, dict) else {}
    records = OperationMetric.objects.filter(operation_id=op.pk, kind="trade")
    kept = records.count()
    rows = records.order_by("seq").values_list("payload", flat=True)[offset : offset + limit]
    return TradesPage(
        operation_id=op.operation_id,
        status=op.status,
        trades=[{k: v for k, v in row.items() if k != "trade"} for row in rows],
        total=int(summary.get("trades_total") or kept),
        kept=kept,
        offset=offset,
        limit=limit,
    )


def backtest_list(*, limit: int = BACKTEST_LIST_LIMIT) -> list[Operation]:
    """The latest backtests (database rows, newest first)."""
    return list(
        Operation.objects.filter(operation_type=OPERATION_TYPE).order_by("-created_at")[:limit]
    )
