"""Execution-mode selection: where a piece of work runs, and why (`docs/architecture.md` §7).

`choose_place(kind, metadata, execution_mode, agent=None, require_gpu=False)` returns a
`Placement` (`place` "local" or the remote executor's name, the target, a human `reason`, and
what was `tried`), or raises `ServiceUnavailable` (503) naming every target tried and why it could
not take the work.

* `local`: here, if this process can (local execution on, and whatever the kind needs here —
  an IB connection for IB loads, a GPU when `require_gpu`), else 503.
* `auto` (default `KTRDR_TRAINING_DEFAULT_MODE`): a capable remote target (GPU ones first for
  kinds that prefer a GPU) — unless the kind keeps this work local in `auto` — else local.
* `agent`: the named target, or any capable one; else local, unless local cannot take it either.

The caller stores `placement.as_metadata()` on the operation, so the choice and its reason stay
visible. The remote places (registered by the agents app) say which targets exist and which of
them can take the work; the rule that combines them lives here, once, for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operations import places
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, ServiceUnavailable
from operations.kinds import OperationKind
from operations.models import Executor

EXECUTION_MODES = ("auto", "local", "agent")


@dataclass(frozen=True)
class Placement:
    place: str
    target: Any
    reason: str
    tried: list[str] = field(default_factory=list)
    mode: str = "auto"

    @property
    def is_remote(self) -> bool:
        return self.place != Executor.LOCAL

    @property
    def target_name(self) -> str:
        return str(getattr(self.target, "name", "") or "")

    def as_metadata(self) -> dict[str, Any]:
        return {
            "place": self.place,
            "agent": self.target_name,
            "execution_mode": self.mode,
            "reason": self.reason,
            "tried": list(self.tried),
        }


def parse_execution_mode(value: Any) -> str:
    mode = value if value not in (None, "") else ktrdr_setting("TRAINING_DEFAULT_MODE")
    mode = str(mode or "auto").strip().lower()
    if mode not in EXECUTION_MODES:
        raise InvalidInput(
            f"execution_mode must be one of {', '.join(EXECUTION_MODES)}", field="execution_mode"
        )
    return mode


def local_unavailable(kind: OperationKind, metadata: dict[str, Any], require_gpu: bool) -> str:
    """Why this process cannot run the work ("" when it can)."""
    if not ktrdr_setting("LOCAL_EXECUTION"):
        return "local execution is switched off (KTRDR_LOCAL_EXECUTION=0)"
    return kind.local_unavailable(metadata, require_gpu)


def choose_place(
    kind: OperationKind,
    metadata: dict[str, Any],
    execution_mode: str | None = None,
    agent: str | None = None,
    require_gpu: bool = False,
) -> Placement:
    mode = parse_execution_mode(execution_mode)
    what = kind.name.replace("_", " ")
    local_why = local_unavailable(kind, metadata, require_gpu)

    if mode == "local":
        if not local_why:
            return Placement(Executor.LOCAL, None, "execution_mode=local", mode=mode)
        raise ServiceUnavailable(
            f"Cannot run this {what} locally: {local_why}",
            details={"execution_mode": mode, "local": local_why},
        )

    considered = 0
    tried: list[str] = []
    if agent or not (mode == "auto" and kind.stays_local(metadata)):
        for executor, place in places.remote_places().items():
            candidates = place.candidates(
                kind=kind, metadata=metadata, named=agent or None, require_gpu=require_gpu
            )
            if kind.prefers_gpu:
                # Stable: the place's own order is kept among equals.
                candidates = sorted(candidates, key=lambda c: not c.has_gpu)
            considered += len(candidates)
            for candidate in candidates:
                if candidate.why_not:
                    tried.append(f"{candidate.name}: {candidate.why_not}")
                    continue
                need = kind.capability(metadata)
                extra = " with a GPU" if candidate.has_gpu else ""
                role = f" has the {need} role{extra}" if need else f" is reachable{extra}"
                return Placement(
                    executor,
                    candidate.target,
                    f"{mode}: agent {candidate.name}{role}",
                    tried=tried,
                    mode=mode,
                )

    summary = "; ".join(tried) if tried else "no agents registered"
    if not local_why:
        reason = (
            f"{mode}: running locally ({summary})"
            if considered or mode == "agent"
            else f"{mode}: running locally"
        )
        return Placement(Executor.LOCAL, None, reason, tried=tried, mode=mode)
    raise ServiceUnavailable(
        f"No place can run this {what}{' with a GPU' if require_gpu else ''}: agents tried: "
        f"{summary}; local: {local_why}",
        details={"execution_mode": mode, "tried": tried, "local": local_why},
    )
