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


# What a raw transport error (urllib3's, requests', the client's own) means, for people: the
# first pattern found in the lower-cased text wins; the raw text stays available beside it.
_ERROR_SENTENCES = (
    (
        ("token rejected", "401", "403 forbidden"),
        "It rejected this backend's token: check KTRDR_AGENT_TOKEN on both sides.",
    ),
    (
        ("connection refused", "errno 111", "actively refused"),
        "Nothing answers at its address (connection refused): is the agent running on that port?",
    ),
    (
        ("not contacted",),
        "Not contacted just now: it timed out or nothing answered at its last try, so "
        "the backend waits a little before trying again.",
    ),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "failed to resolve",
            "temporary failure in name resolution",
        ),
        "Its host name could not be resolved.",
    ),
    (("no route to host", "network is unreachable"), "Its network cannot be reached."),
    (("timed out", "timeout"), "It did not answer in time."),
    (("certificate", "ssl"), "The TLS connection to it failed (certificate or protocol)."),
    (
        ("connection reset", "broke off", "remote end closed", "connection aborted"),
        "The connection broke off before it answered.",
    ),
    (
        ("not json", "unexpected answer", "off the api contract", "contract"),
        "It answered, but not as a KTRDR agent does: is the URL right, and the versions alike?",
    ),
    (("500", "502", "503", "504"), "It answered with a server error."),
)


def describe_agent_error(text: str) -> str:
    """A recorded agent error (`Agent.last_error`) as one sentence ("Nothing answers at its
    address (connection refused): is the agent running on that port?"); "" for none."""
    raw = str(text or "").strip()
    if not raw:
        return ""
    low = raw[:4000].lower()
    for needles, sentence in _ERROR_SENTENCES:
        if any(n in low for n in needles):
            return sentence
    return "It could not be reached."
