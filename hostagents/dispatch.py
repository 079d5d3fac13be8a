"""Starting work on an agent (backend side) and what happens when its results arrive.

`start_remote` creates the backend operation first and uses its id as the idempotency key of the
agent start, so a retried or duplicated POST never starts the work twice. Clients only ever see
the backend id; the mapping to the agent's id is stored on the row (`location`) and logged.

Apps that need to act on fetched results (register a trained model, merge fetched bars) register
a completion hook per operation type; it runs after the artifacts were verified and before the
backend operation is marked completed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from hostagents.client import (
    AgentError,
    AgentRejected,
    FetchedArtifact,
    client_for,
)
from hostagents.models import Agent
from operations import services
from operations.exceptions import Conflict, InvalidInput, ServiceUnavailable
from operations.models import Executor, Operation, OperationStatus

logger = logging.getLogger(__name__)

CompletionHook = Callable[[Operation, dict[str, Any], list[FetchedArtifact]], dict[str, Any] | None]
_completion_hooks: dict[str, CompletionHook] = {}


def register_completion_hook(operation_type: str, hook: CompletionHook) -> None:
    """`hook(operation, result_summary, fetched_artifacts) -> result_summary | None`, called on
    the backend when a remote operation of that type completed and its artifacts are verified.
    Raising fails the backend operation with the hook's message."""
    _completion_hooks[operation_type] = hook


def completion_hook(operation_type: str) -> CompletionHook | None:
    return _completion_hooks.get(operation_type)


def start_remote(
    *,
    operation_type: str,
    agent: Agent,
    payload: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    user: Any = None,
    strategy_name: str = "",
    input_series: Iterable[str] = (),
) -> Operation:
    """Create the backend operation and start the work on `agent`; returns at once (202 path).

    Raises `InvalidInput` (400) when the agent rejects the payload and `ServiceUnavailable` (503)
    when it cannot be reached; in both cases the backend operation is marked failed with why.
    """
    op = services.operation_create(
        operation_type=operation_type,
        metadata=metadata or {},
        executor=Executor.AGENT,
        agent=agent.name,
        created_by=user,
        strategy_name=strategy_name,
        input_series=input_series,
    )
    client = client_for(agent)
    try:
        remote = client.start(operation_type, payload, idempotency_key=op.operation_id)
    except AgentError as exc:
        services.operation_fail(
            operation_id=op.operation_id,
            error_message=f"agent {agent.name} did not accept the start: {exc.message}",
        )
        if isinstance(exc, AgentRejected) and exc.status == 400:
            raise InvalidInput(exc.message, details=exc.details) from None
        if isinstance(exc, AgentRejected) and exc.status == 409:
            raise Conflict(exc.message, details=exc.details) from None
        raise ServiceUnavailable(
            f"Agent {agent.name} could not start the {operation_type}: {exc.message}",
            details={"agent": agent.name},
        ) from None
    return attach_remote(op, agent=agent, remote=remote)


def attach_remote(op: Operation, *, agent: Agent, remote: dict[str, Any]) -> Operation:
    remote_id = remote["operation_id"]
    op = services.operation_attach_remote(
        operation_id=op.operation_id, agent=agent.name, remote_operation_id=remote_id
    )
    logger.info(
        "operation %s → agent %s operation %s (%s)",
        op.operation_id,
        agent.name,
        remote_id,
        agent.base_url,
    )
    if op.status == OperationStatus.PENDING and remote["status"] != OperationStatus.PENDING:
        op = services.operation_start(operation_id=op.operation_id)
    return op
