"""The registry of execution places: where an operation's work runs, seen from this process.

A place answers two questions for the operations it holds: "what is the live state?"
(`refresh`, called by the read path when a snapshot is older than the TTL) and "stop it"
(`cancel`, called by `operations.execution.operation_cancel` once the request is recorded on the
row). There is one cancel path and one read path; only the places differ
(`docs/architecture.md` §4 to §6).

Local work has three places, told apart by the row's `owner`:

* `THIS_PROCESS` — a run of this process: its bridge is pulled, its token is set.
* `OTHER_PROCESS` — a run owned by another live process on this host (the web server, or a
  management command beside it). Its bridge cannot be read from here; its owner persists its
  snapshot at least once per TTL and reads cancel requests from the row at those refreshes, so
  this place serves the row as it is (its `freshness` says how old) and a cancel needs nothing
  more than the row.
* `GONE` — its owner is no longer running: the operation is ended as interrupted.

Other places (a host agent) are registered by the app that provides them, in its
`AppConfig.ready()`, as `register_place(executor, place)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from operations import services
from operations.instance import current_instance_id, owner_is_alive
from operations.local import local_runs
from operations.models import Executor, Operation, OperationStatus
from operations.oplog import log_event

if TYPE_CHECKING:
    from collections.abc import Iterable

    from operations.kinds import OperationKind

logger = logging.getLogger(__name__)


class ExecutionPlace(Protocol):
    name: str
    # True when `refresh` reads the work's own live state (a bridge, an agent); False when it
    # can only serve what the owner last stored, so the read path must not stamp it as fresh.
    pulls: bool

    def refresh(self, operation: Operation) -> Operation:
        """Pull the live state of a non-terminal operation, persist it, return the row."""

    def cancel(self, operation: Operation, reason: str) -> None:
        """Hand a recorded cancel request to the work (never raises for an unreachable place)."""


@dataclass(frozen=True)
class Candidate:
    """A target of a remote place (an agent) and why it can't take a piece of work ("" = can)."""

    target: Any
    name: str
    why_not: str
    has_gpu: bool = False


class RemotePlace(ExecutionPlace, Protocol):
    """A place that can also start work (a host agent)."""

    def candidates(
        self, *, kind: OperationKind, metadata: dict[str, Any], named: str | None, require_gpu: bool
    ) -> list[Candidate]:
        """The targets to consider, in preference order; `named` asks for one by name."""

    def start(
        self,
        *,
        kind: OperationKind,
        target: Any,
        metadata: dict[str, Any],
        user: Any,
        strategy_name: str,
        input_series: Iterable[str],
    ) -> Operation:
        """Create the operation and start it on `target`; returns at once."""


class OutcomeNotSaved(RuntimeError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"the outcome of {operation_id} is kept in memory and not saved yet")


class ThisProcess:
    name = "this process"
    pulls = True

    def refresh(self, operation: Operation) -> Operation:
        run = local_runs.get(operation.operation_id)
        if run is None:
            return GONE.refresh(operation)
        if run.finished:
            # The work is done but saving its outcome failed earlier: this refresh retries.
            if not local_runs.finish_pending(operation.operation_id):
                raise OutcomeNotSaved(operation.operation_id)
            return Operation.objects.get(pk=operation.pk)
        if operation.status == OperationStatus.CANCELLING:
            # Asked from another process (a command, another server process): the request is
            # on the row, and this refresh is where the owner learns of it.
            local_runs.cancel(operation.operation_id, operation.cancel_reason)
        pull = services.pull_from_bridge(run.bridge, operation.remote_metrics_cursor)
        return services.operation_record_pull(operation_id=operation.operation_id, pull=pull)

    def cancel(self, operation: Operation, reason: str) -> None:
        local_runs.cancel(operation.operation_id, reason)


class OtherProcess:
    name = "another process on this host"
    pulls = False

    def refresh(self, operation: Operation) -> Operation:
        return operation

    def cancel(self, operation: Operation, reason: str) -> None:
        # Nothing to send: the owner reads the request from the row at its next refresh.
        log_event(
            logger,
            logging.INFO,
            operation.operation_id,
            "cancel_left_on_row",
            "for its owner %s",
            operation.owner,
        )


class Gone:
    name = "a process that is gone"
    pulls = True

    def refresh(self, operation: Operation) -> Operation:
        # Never leave work "running" forever whose worker can no longer finish it.
        return services.operation_mark_interrupted(
            operation_id=operation.operation_id,
            reason=(
                f"its process ({operation.owner or 'unknown'}) is gone; the work was not finished"
            ),
        )

    def cancel(self, operation: Operation, reason: str) -> None:
        return None


THIS_PROCESS = ThisProcess()
OTHER_PROCESS = OtherProcess()
GONE = Gone()

_remote: dict[str, RemotePlace] = {}


def register_place(executor: str, place: RemotePlace) -> None:
    """Add a remote place for operations whose `executor` is `executor` (e.g. "agent")."""
    if executor == Executor.LOCAL:
        raise ValueError("local places are built in")
    _remote[executor] = place


def remote_places() -> dict[str, RemotePlace]:
    return dict(_remote)


def local_place_for(operation: Operation) -> ExecutionPlace:
    if local_runs.get(operation.operation_id) is not None and operation.owner in (
        "",
        current_instance_id(),
    ):
        return THIS_PROCESS
    if owner_is_alive(operation.owner):
        return OTHER_PROCESS
    return GONE


def place_for(operation: Operation) -> ExecutionPlace | None:
    """The place that holds `operation` (None: an executor no app registered here)."""
    if operation.executor == Executor.LOCAL:
        return local_place_for(operation)
    return _remote.get(operation.executor)
