"""Every read of the evaluation app: evaluation operations, newest first."""

from __future__ import annotations

from evaluation.kinds import OPERATION_TYPE
from operations.models import Operation

EVALUATION_LIST_LIMIT = 50


def evaluation_list(*, limit: int = EVALUATION_LIST_LIMIT) -> list[Operation]:
    """The latest evaluations (database rows, newest first)."""
    return list(
        Operation.objects.filter(operation_type=OPERATION_TYPE).order_by("-created_at")[:limit]
    )
