"""The registry of operation kinds: what each kind of long-running work is and how it runs.

An app that brings a kind of work (training, data loads, the built-in countdown, a test app's
toy kind) registers one `OperationKind` in its `AppConfig.ready()`; everything else — where it
runs, how its inputs travel to an agent, how it is prepared there, how its remote results come
back — is read from that record by the operations core and by the execution places
(`docs/architecture.md` §3). No other module keeps a table of operation types.

Plain data and callables; no Django models are touched here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput

if TYPE_CHECKING:
    from operations.local import Work
    from operations.models import Operation

KIND_NAME_MAX = 40
# Where a run on an agent keeps what a resume of it needs (a training's checkpoint): this folder
# of its artifacts folder (`WorkContext.artifacts_dir`). It holds no artifact of a completed run;
# the agent serves its files after the run ended, however it ended — killed included — and the
# backend fetches them when the resume is asked for (`docs/architecture.md` §15).
RESUME_FOLDER = "resume"


@dataclass(frozen=True)
class RemoteInput:
    """Bytes a run reads that travel with it to an agent, content-addressed by sha256.

    The agent is asked which hashes it lacks and only those are sent; `key` is how the kind
    finds the input again on the agent (`"EURUSD:1h"`).
    """

    key: str
    data: bytes
    rows: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class RemotePayload:
    """What a start on an agent carries: JSON parameters and content-addressed inputs."""

    params: dict[str, Any]
    inputs: list[RemoteInput] = field(default_factory=list)
    # Added to the backend operation's metadata (e.g. how many input bytes were sent).
    metadata: dict[str, Any] = field(default_factory=dict)


class Inputs(Mapping[str, bytes]):
    """The inputs of a run prepared on an agent, by key (read lazily from the agent's cache)."""

    def __init__(self, hashes: dict[str, str], read: Callable[[str], bytes]) -> None:
        self._hashes = dict(hashes)
        self._read = read

    def __getitem__(self, key: str) -> bytes:
        return self._read(self._hashes[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def sha256(self, key: str) -> str:
        return self._hashes[key]


@dataclass
class Launch:
    """A kind's work made ready to run: the worker, its bridge and its (JSON) metadata."""

    work: Work
    bridge: ProgressBridge
    metadata: dict[str, Any]
    strategy_name: str = ""
    input_series: list[str] = field(default_factory=list)


@dataclass
class Rerun:
    """How a finished operation's stored inputs become a new start (`OperationKind.rerun`, and
    `OperationKind.resume` for one that goes on from where it stopped): the validated metadata
    and where to run it, as `operation_submit` takes them."""

    metadata: dict[str, Any]
    execution_mode: str | None = "auto"
    agent: str | None = None
    require_gpu: bool = False
    strategy_name: str = ""
    input_series: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunColumn:
    """A figure a kind's runs are compared by (the runs table, `docs/architecture.md` §3):
    stored per operation when it ends (`RunFigure`), so sorting by it stays an index read."""

    key: str
    label: str
    percent: bool = False
    # Shown when no `columns` are chosen.
    default: bool = True
    # Decimals shown for a figure that is neither a share nor whole.
    places: int = 4


@dataclass(frozen=True)
class RunCurve:
    """A curve of a kind's metric records, overlaid run against run on the comparison page."""

    key: str
    label: str
    metric_kind: str
    x: str
    percent: bool = False


@dataclass(frozen=True)
class FetchedArtifact:
    """A file a remote run left, fetched to this process and verified against its sha256."""

    name: str
    path: Path
    size: int
    sha256: str


def _no_capability(_metadata: dict[str, Any]) -> str | None:
    return None


def _always_possible(_metadata: dict[str, Any], _require_gpu: bool) -> str:
    return ""


def _never_local_first(_metadata: dict[str, Any]) -> bool:
    return False


def _params_are_metadata(metadata: dict[str, Any]) -> RemotePayload:
    return RemotePayload(params=dict(metadata))


@dataclass(frozen=True)
class OperationKind:
    """One kind of operation.

    * `prepare(metadata, inputs)` — how it runs: validates the JSON metadata (again on an agent:
      an agent trusts nothing it is sent) and returns the `Launch`. `inputs` is None where the
      run reads this process's own stores, and the sent inputs on an agent.
    * `capability(metadata)` — the agent capability the work needs (`"training"`, `"ib"`), or
      None when any agent can run it.
    * `local_unavailable(metadata, require_gpu)` — why this process cannot run it ("" if it can).
    * `stays_local(metadata)` — in `auto` mode, run here without asking agents (work that sits
      next to this process's own data).
    * `prefers_gpu` — GPU agents first when choosing one.
    * `remote_payload(metadata)` — how its inputs travel to an agent.
    * `remote_completed(operation, result_summary, artifacts)` — on the backend, after a remote
      run completed and its artifacts were fetched and verified; returns the summary to record.
      Raising fails the operation with the message.
    * `field_labels` / `hidden_fields` — how the pages label the keys of its metadata, context
      and result (others are labelled from the key), and which keys they leave out.
    * `describe_outcome(operation)` — what a finished run achieved, in a few words ("model v3
      saved", "at epoch 4 of 10"); the pages put it after "Completed in 31.2 s: " or
      "Cancelled " (`operations.outcome`). "" says nothing more.
    * `rerun(metadata)` — how a finished operation's stored metadata becomes a new start with the
      same inputs (`Rerun`), validated again; None: this kind cannot be re-run.
    * `resume(operation)` — how a failed or cancelled operation goes on from where it stopped: a
      `Rerun` whose metadata tells the work where to start (training: the checkpoint, by file
      and sha256; a backtest: the bar reached). It raises `Conflict` when there is nothing to
      resume from, `InvalidInput` when what there is fails its check (a corrupted checkpoint);
      `metadata["resume_metrics_seq"]` = N asks for the operation's metric records 0…N-1 to be
      copied into the new one (its work then emits from seq N). None: this kind cannot resume
      (`operations.execution.operation_resume`, `docs/architecture.md` §15).
    * `run_columns`, `run_figures(result_summary)`, `run_curves`, `run_params(metadata)` — a kind
      whose operations are runs to compare (the runs table and comparison page): the figures its
      columns show (computed once, when the operation ends), the metric curves to overlay and
      the parameters to set side by side.
    * `edit_url(metadata)` — the kind's start form pre-filled with those inputs ("Edit and run"),
      or None where the kind has no form.
    """

    name: str
    prepare: Callable[[dict[str, Any], Inputs | None], Launch]
    capability: Callable[[dict[str, Any]], str | None] = _no_capability
    local_unavailable: Callable[[dict[str, Any], bool], str] = _always_possible
    stays_local: Callable[[dict[str, Any]], bool] = _never_local_first
    prefers_gpu: bool = False
    remote_payload: Callable[[dict[str, Any]], RemotePayload] = _params_are_metadata
    remote_completed: (
        Callable[[Operation, dict[str, Any], list[FetchedArtifact]], dict[str, Any]] | None
    ) = None
    rerun: Callable[[dict[str, Any]], Rerun] | None = None
    resume: Callable[[Operation], Rerun] | None = None
    edit_url: Callable[[dict[str, Any]], str | None] | None = None
    run_columns: tuple[RunColumn, ...] = ()
    run_figures: Callable[[dict[str, Any]], dict[str, float]] | None = None
    run_curves: tuple[RunCurve, ...] = ()
    run_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    description: str = ""
    field_labels: Mapping[str, str] = field(default_factory=dict)
    hidden_fields: frozenset[str] = frozenset()
    describe_outcome: Callable[[Operation], str] | None = None


_kinds: dict[str, OperationKind] = {}


def register_kind(kind: OperationKind) -> OperationKind:
    """Add a kind (from an `AppConfig.ready()`); registering the same name twice is refused."""
    if not kind.name or len(kind.name) > KIND_NAME_MAX or not kind.name.isidentifier():
        raise ValueError(f"operation kind name {kind.name!r} must be a short identifier")
    existing = _kinds.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"operation kind {kind.name!r} is already registered")
    _kinds[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests that register a throwaway one)."""
    _kinds.pop(name, None)


def kind_get(name: str) -> OperationKind:
    """The registered kind, or `InvalidInput` naming `operation_type`."""
    kind = _kinds.get(name)
    if kind is None:
        known = ", ".join(sorted(_kinds)) or "none"
        raise InvalidInput(
            f"unknown operation type {name!r}; this process runs: {known}", field="operation_type"
        )
    return kind


def kind_names() -> list[str]:
    return sorted(_kinds)


def run_kinds() -> list[OperationKind]:
    """The kinds whose operations are runs (they declare `run_columns`), by name."""
    return [_kinds[name] for name in sorted(_kinds) if _kinds[name].run_columns]


def kind_find(name: str) -> OperationKind | None:
    """The registered kind, or None (pages showing operations of a kind no longer installed)."""
    return _kinds.get(name)
