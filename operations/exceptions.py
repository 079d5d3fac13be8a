"""Domain errors. Each carries its HTTP status and error code; the API maps them once."""

from __future__ import annotations

from typing import Any


class KtrdrError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(KtrdrError):
    """Bad input from outside; `details` names the fields (`{"field": ["message"]}`)."""

    status_code = 400
    code = "invalid"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        if field and not details:
            details = {field: [message]}
        super().__init__(message, details=details)
        self.field = field


class OperationNotFound(KtrdrError):
    status_code = 404
    code = "not_found"

    def __init__(self, operation_id: str) -> None:
        super().__init__(
            f"Operation {operation_id!r} does not exist", details={"operation_id": operation_id}
        )


class NotFound(KtrdrError):
    status_code = 404
    code = "not_found"


class IllegalTransition(KtrdrError):
    """A status change the state machine forbids (terminal states are final)."""

    status_code = 409
    code = "illegal_transition"

    def __init__(self, operation_id: str, current: str, target: str, why: str = "") -> None:
        message = f"Operation {operation_id} is {current}; it cannot become {target}"
        if why:
            message = f"{message}: {why}"
        super().__init__(
            message, details={"operation_id": operation_id, "status": current, "requested": target}
        )
        self.current = current
        self.target = target


class NotAllowed(KtrdrError):
    """The acting user may not do this (403): e.g. cancel another user's operation."""

    status_code = 403
    code = "permission_denied"


class Conflict(KtrdrError):
    status_code = 409
    code = "conflict"


class ServiceUnavailable(KtrdrError):
    """No capable place to run the work (no agent reachable, local execution off…)."""

    status_code = 503
    code = "unavailable"
