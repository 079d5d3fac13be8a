"""The errors of talking to a host agent, translated once by `AgentClient` (and by the contract
parsers for answers off the API contract)."""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Something went wrong talking to an agent; `str()` says which agent and what."""

    def __init__(self, agent: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"agent {agent}: {message}")
        self.agent = agent
        self.message = message
        self.status = status


class AgentUnreachable(AgentError):
    """No usable answer: connection refused, timeout, broken transfer, a 5xx, or not contacted
    at all because the agent timed out recently (the client backs off).

    `delivered` is False only when the request certainly never reached the agent (refused
    connection, connect timeout, backing off); otherwise the agent may have acted on it — a start
    whose answer was lost is then adopted by its idempotency key (`docs/architecture.md` §6).
    `code` is set when a 5xx carried the API's error envelope: the agent itself refused (it lacks
    a role, say), which is an answer, not a lost one.
    """

    def __init__(
        self,
        agent: str,
        message: str,
        *,
        status: int | None = None,
        delivered: bool = True,
        code: str = "",
    ) -> None:
        super().__init__(agent, message, status=status)
        self.delivered = delivered
        self.code = code


class AgentNotFound(AgentError):
    """The agent answered 404: it does not know the operation or artifact (`details` of its
    error envelope name which), or the route (an agent older than the request)."""

    def __init__(
        self,
        agent: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(agent, message, status=status)
        self.details = details or {}


class AgentAuthError(AgentError):
    """The agent rejected our token (401/403): KTRDR_AGENT_TOKEN differs between the two."""


class AgentRejected(AgentError):
    """The agent refused the request (4xx other than 401/403/404)."""

    def __init__(
        self,
        agent: str,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(agent, message, status=status)
        self.code = code
        self.details = details or {}


class AgentProtocolError(AgentError):
    """The agent answered, but not in the API contract (bad JSON or wrong shape)."""


class ArtifactIntegrityError(AgentError):
    """An artifact arrived with the wrong size or checksum; nothing was stored."""
