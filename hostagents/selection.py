"""Execution-mode selection (ARCHITECTURE §6): where a piece of work runs, and why.

`choose_execution(kind, execution_mode, agent=None, require_gpu=False)` returns a `Placement`
(`place` "local" or "agent", the `Agent`, a human `reason`, and what was `tried`), or raises
`ServiceUnavailable` (503) naming every agent tried and why it could not take the work.

* `local`: here, if this process can (local execution on, IB configured for IB loads, a GPU when
  `require_gpu`), else 503.
* `auto` (default `KTRDR_TRAINING_DEFAULT_MODE`): a healthy agent with the needed capability —
  GPU agents first for training — else local.
* `agent`: the named agent, or any capable one; else local, unless local cannot take it either.
* IB loads need an IB connection: an `ib` agent, or this backend when `KTRDR_IB_HOST` is set.

Health comes from the registry's TTL-cached pull (a look, not a loop). The caller stores
`placement.as_metadata()` on the operation, so the choice and its reason stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hostagents import selectors
from hostagents.models import Agent
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound, ServiceUnavailable

EXECUTION_MODES = ("auto", "local", "agent")
# kind → the agent capability it needs (None: any agent can run it).
KIND_CAPABILITY: dict[str, str | None] = {
    "training": "training",
    "ib": "ib",
    "data": None,
    "countdown": None,
}


@dataclass(frozen=True)
class Placement:
    place: str
    agent: Agent | None
    reason: str
    tried: list[str] = field(default_factory=list)
    mode: str = "auto"

    @property
    def is_remote(self) -> bool:
        return self.place == "agent"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "place": self.place,
            "agent": self.agent.name if self.agent else "",
            "execution_mode": self.mode,
            "reason": self.reason,
            "tried": list(self.tried),
        }


def _local_possible(kind: str, require_gpu: bool) -> tuple[bool, str]:
    if not ktrdr_setting("LOCAL_EXECUTION"):
        return False, "local execution is switched off (KTRDR_LOCAL_EXECUTION=0)"
    if kind == "ib" and not ktrdr_setting("IB_HOST"):
        return False, "this backend has no IB connection (KTRDR_IB_HOST is not set)"
    if require_gpu:
        from hostagents.health import gpu_info

        if not gpu_info()["available"]:
            return False, "this backend has no GPU"
    return True, ""


def _why_not(agent: Agent, need: str | None, require_gpu: bool) -> str:
    """Empty when the agent can take the work, else the reason it cannot."""
    if not agent.enabled:
        return "disabled"
    if not agent.reachable:
        return f"unreachable ({(agent.last_error or 'never answered')[:200]})"
    if need and not agent.has_capability(need):
        return f"no {need} role (has: {', '.join(agent.capabilities) or 'nothing'})"
    if require_gpu and not agent.has_capability("gpu"):
        return "no GPU"
    return ""


def choose_execution(
    kind: str,
    execution_mode: str | None = None,
    agent: str | None = None,
    require_gpu: bool = False,
) -> Placement:
    if kind not in KIND_CAPABILITY:
        raise ValueError(f"unknown work kind {kind!r}; one of {', '.join(KIND_CAPABILITY)}")
    mode = (execution_mode or str(ktrdr_setting("TRAINING_DEFAULT_MODE")) or "auto").lower()
    if mode not in EXECUTION_MODES:
        raise InvalidInput(
            f"execution_mode must be one of {', '.join(EXECUTION_MODES)}", field="execution_mode"
        )
    need = KIND_CAPABILITY[kind]
    local_ok, local_why = _local_possible(kind, require_gpu)

    if mode == "local":
        if local_ok:
            return Placement("local", None, "execution_mode=local", mode=mode)
        raise ServiceUnavailable(
            f"Cannot run {kind} locally: {local_why}",
            details={"execution_mode": mode, "local": local_why},
        )

    if agent:
        try:
            candidates = [selectors.agent_get(name=agent)]
        except NotFound:
            raise InvalidInput(f"agent {agent!r} is not registered", field="agent") from None
    elif kind == "data" and mode == "auto":
        candidates = []  # file/synthetic loads run next to the data store unless asked otherwise
    else:
        candidates = selectors.agent_list(enabled_only=True)
    if kind == "training":
        # GPU agents first: a GPU run is what an agent is for.
        candidates.sort(key=lambda a: (not a.has_capability("gpu"), a.name))

    tried: list[str] = []
    for candidate in candidates:
        why = _why_not(candidate, need, require_gpu)
        if why:
            tried.append(f"{candidate.name}: {why}")
            continue
        extra = " with a GPU" if candidate.has_capability("gpu") else ""
        role = f" has the {need} role{extra}" if need else f" is reachable{extra}"
        return Placement(
            "agent", candidate, f"{mode}: agent {candidate.name}{role}", tried=tried, mode=mode
        )

    summary = "; ".join(tried) if tried else "no agents registered"
    if local_ok:
        reason = (
            f"{mode}: running locally ({summary})"
            if candidates or mode == "agent"
            else f"{mode}: running locally"
        )
        return Placement("local", None, reason, tried=tried, mode=mode)
    raise ServiceUnavailable(
        f"No place can run this {kind}{' with a GPU' if require_gpu else ''}: agents tried: "
        f"{summary}; local: {local_why}",
        details={"execution_mode": mode, "tried": tried, "local": local_why},
    )
