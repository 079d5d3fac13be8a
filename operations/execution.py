"""Where an operation's live state comes from, by executor.

`local`: the bridge of a run in this process. `agent`: a host agent, reached through the
`hostagents` app, which registers its source here at start-up (so the operations core does not
import the agents layer). Each source turns "refresh this operation" into service calls.
"""

from __future__ import annotations

import logging
from typing import Protocol

from operations import services
from operations.instance import current_instance_id, owner_is_alive
from operations.local import local_runs
from operations.models import Executor, Operation

logger = logging.getLogger(__name__)


class OperationSource(Protocol):
    def refresh(self, operation: Operation) -> Operation:
        """Pull the live state of a non-terminal operation, persist it, return the row."""

    def forward_cancel(self, operation: Operation, reason: str) -> None:
        """Pass a cancel request on to wherever the work runs."""


class LocalSource:
    def refresh(self, operation: Operation) -> Operation:
        run = local_runs.get(operation.operation_id)
        if run is None and owner_is_alive(operation.owner):
            # Run by another live process here (a management command beside the server): its
            # own readers persist its progress; this process can only show the stored snapshot.
            return operation
        if run is None or (operation.owner and operation.owner != current_instance_id()):
            # The worker that owned this operation is not in this process: it was started by
            # another instance (restart) or its thread is gone. Never leave it running forever.
            return services.operation_mark_interrupted(
                operation_id=operation.operation_id,
                reason=(
                    f"its process ({operation.owner or 'unknown'}) is gone; "
                    "the work was not finished"
                ),
            )
        pull = services.pull_from_bridge(run.bridge, operation.remote_metrics_cursor)
        return services.operation_record_pull(operation_id=operation.operation_id, pull=pull)

    def forward_cancel(self, operation: Operation, reason: str) -> None:
        local_runs.cancel(operation.operation_id, reason)


_sources: dict[str, OperationSource] = {Executor.LOCAL: LocalSource()}


def register_source(executor: str, source: OperationSource) -> None:
    _sources[executor] = source


def source_for(operation: Operation) -> OperationSource | None:
    return _sources.get(operation.executor)


def forward_cancel(operation_id: str, reason: str) -> None:
    """Called after a cancel request commits, for operations that do not run here."""
    op = Operation.objects.filter(operation_id=operation_id).first()
    if op is None:
        return
    source = source_for(op)
    if source is None:
        logger.warning("no source for executor %s of %s", op.executor, operation_id)
        return
    try:
        source.forward_cancel(op, reason)
    except Exception:
        # The cancel is recorded; the next read forwards nothing more, but the agent's own
        # refresh will show the run still going and the user can cancel again.
        logger.exception("forwarding cancel of %s failed", operation_id)
