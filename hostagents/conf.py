"""Knobs of the host-agent machinery, with their defaults in one place.

Read through `agent_setting(name)`: the key in `settings.KTRDR` (which parses the environment
variable `KTRDR_<NAME>` at start-up; tests override it there), else the default below.
The shared knobs (`AGENTS`, `AGENT_TOKEN`, `TRAINING_DEFAULT_MODE`, `ROLE`) stay in
`operations.conf`.
"""

from __future__ import annotations

from typing import Any

from operations.conf import ktrdr_setting

VERSION = "0.1.0"

DEFAULTS: dict[str, Any] = {
    # Backend → agent HTTP: connect timeout; the overall deadline of one JSON exchange (connect,
    # headers and whole body; also the longest a transfer may stall); retries after a quick
    # failure (never after a timeout) and their backoff.
    "AGENT_CONNECT_TIMEOUT": 2.0,
    "AGENT_READ_TIMEOUT": 10.0,
    # Deadline of the operation GET of a refresh (readers wait at most this on a hung agent).
    "AGENT_REFRESH_TIMEOUT": 1.0,
    "AGENT_RETRIES": 2,
    "AGENT_RETRY_BACKOFF": 0.05,
    # PEM certificates an HTTPS agent is verified against (empty: the system's trust store).
    "AGENT_CA_BUNDLE": "",
    # Largest JSON answer read from an agent (bytes); a bigger one is refused unread.
    "AGENT_MAX_ANSWER_BYTES": 8 * 1024**2,
    # After a timeout the agent is not contacted for BASE seconds, doubling per timeout in a row
    # up to MAX (after a call nothing answered at all, e.g. connection refused: BASE seconds):
    # readers get the last snapshot at once instead of waiting on a hung or stopped agent.
    "AGENT_BACKOFF_BASE": 1.0,
    "AGENT_BACKOFF_MAX": 30.0,
    # Slowest transfer accepted for blobs and artifacts (bytes/s): their deadline is the read
    # timeout plus size / rate.
    "AGENT_MIN_TRANSFER_RATE": 1024**2,
    # How long a pulled health snapshot is served before the next look pulls again.
    "AGENT_HEALTH_TTL": 5.0,
    # Largest artifact the backend accepts from an agent (bytes).
    "AGENT_MAX_ARTIFACT_BYTES": 2 * 1024**3,
    # Checksum failures of one artifact before the operation is failed instead of re-fetched.
    "AGENT_MAX_ARTIFACT_ATTEMPTS": 5,
    # Agent process only: its name and roles, set by `manage.py run_agent`.
    "AGENT_NAME": "",
    "AGENT_ROLES": "",
}


def agent_setting(name: str) -> Any:
    """The knob from `settings.KTRDR` (parsed from `KTRDR_<NAME>` there), else the default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown host-agent setting {name!r}")
    return ktrdr_setting(name, DEFAULTS[name])


def agent_roles() -> frozenset[str]:
    """The roles this agent process serves (`training`, `ib`); empty on the backend."""
    raw = str(agent_setting("AGENT_ROLES") or "")
    return frozenset(r.strip() for r in raw.split(",") if r.strip())


def is_agent() -> bool:
    return ktrdr_setting("ROLE") == "agent"
