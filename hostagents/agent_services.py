"""Writes on an agent: starting remote work idempotently.

The backend sends its own operation id as `Idempotency-Key`. The first start with a key launches
the work and records key → agent operation id in the same transaction; any later start with that
key (a retry after a lost answer) gets the existing operation back — one run, never two.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from hostagents.agent_work import receive_inputs, with_artifacts
from hostagents.conf import agent_roles
from hostagents.models import AgentStart
from operations import selectors
from operations.exceptions import Conflict, InvalidInput, ServiceUnavailable
from operations.execution import operation_launch
from operations.kinds import kind_get
from operations.local import local_runs
from operations.models import Operation
from operations.oplog import log_event

logger = logging.getLogger(__name__)


def _existing(key: str, operation_type: str) -> Operation | None:
    start = AgentStart.objects.filter(idempotency_key=key).first()
    if start is None:
        return None
    if start.operation_type != operation_type:
        raise Conflict(
            f"Idempotency-Key {key} already started a {start.operation_type} operation",
            details={"idempotency_key": key, "operation_id": start.operation_id},
        )
    return selectors.operation_get(operation_id=start.operation_id)


def agent_start(
    *,
    operation_type: Any,
    params: Any,
    inputs: Any = None,
    idempotency_key: str = "",
    user: Any = None,
) -> tuple[Operation, bool]:
    """Start work of a registered kind here; returns (operation, created). A known key returns
    its operation."""
    if not isinstance(operation_type, str):
        raise InvalidInput(
            "operation_type must be the name of an operation kind", field="operation_type"
        )
    kind = kind_get(operation_type)
    if not isinstance(params, dict):
        raise InvalidInput("params must be a JSON object", field="params")
    if len(idempotency_key) > 128:
        raise InvalidInput("Idempotency-Key is longer than 128 characters", field="idempotency_key")
    if idempotency_key:
        existing = _existing(idempotency_key, operation_type)
        if existing is not None:
            log_event(
                logger,
                logging.INFO,
                existing.operation_id,
                "start_repeated",
                "key %s",
                idempotency_key,
            )
            return existing, False
    role = kind.capability(params)
    if role and role not in agent_roles():
        raise ServiceUnavailable(
            f"this agent does not have the {role!r} role (it has: "
            f"{', '.join(sorted(agent_roles())) or 'none'})"
        )
    received = receive_inputs(inputs)
    launch = kind.prepare(params, received)
    launch.work = with_artifacts(launch.work)
    launched: Operation | None = None
    try:
        # The key check is repeated inside the transaction: with SQLite's IMMEDIATE transactions
        # a concurrent twin waits here and then sees the first one's key; elsewhere the unique
        # constraint turns the race into an IntegrityError handled below.
        with transaction.atomic():
            if (
                idempotency_key
                and AgentStart.objects.filter(idempotency_key=idempotency_key).exists()
            ):
                raise IntegrityError("idempotency key taken concurrently")
            launched = operation_launch(
                operation_type=kind.name,
                launch=launch,
                user=user,
                extra_metadata={
                    "idempotency_key": idempotency_key,
                    "inputs": [{"key": k, "sha256": received.sha256(k)} for k in received],
                },
            )
            if idempotency_key:
                AgentStart.objects.create(
                    idempotency_key=idempotency_key,
                    operation_id=launched.operation_id,
                    operation_type=operation_type,
                )
    except IntegrityError:
        if launched is not None:
            local_runs.discard(launched.operation_id)  # its row rolled back; never started
        existing = _existing(idempotency_key, operation_type)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        if launched is not None:
            local_runs.discard(launched.operation_id)
        raise
    log_event(
        logger,
        logging.INFO,
        launched.operation_id,
        "accepted",
        "for the backend's %s",
        idempotency_key or "-",
    )
    return launched, True


def agent_start_lookup(*, idempotency_key: str) -> Operation | None:
    start = AgentStart.objects.filter(idempotency_key=idempotency_key).first()
    if start is None:
        return None
    return selectors.operation_get(operation_id=start.operation_id)
