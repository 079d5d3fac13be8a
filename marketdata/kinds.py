"""The `data_load` operation kind: how a load runs here or on an IB agent, and how its bars come
back (`docs/architecture.md` §3).

Registered in `MarketdataConfig.ready()`. The worker is `DataLoader` (`run_data_load`)
everywhere. IB loads need a place with an IB connection — an agent with the `ib` capability, or
this process when `KTRDR_IB_HOST` is set; synthetic loads stay next to this process's store
unless an agent is asked for. A start on an agent carries what the backend's store already holds
of the series (`stored_ranges`, `planner.coverage_runs`), so the agent plans against the
backend's coverage, not its own store; it leaves only the bars it fetched in that run as the
artifact `bars.parquet`, and the backend merges them into its own store (merging never
overwrites stored bars with a partial range). So a load resumes by construction: its `resume`
hook starts the same load, which plans against what is stored and fetches only what is missing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from marketdata import store
from marketdata.loader import LOAD_ON_CONFLICT, OPERATION_TYPE, DataLoader
from marketdata.planner import coverage_runs, index_from_runs
from marketdata.progress import DataLoadingProgressBridge
from marketdata.services import validate_load_params
from marketdata.timeframes import get_timeframe
from operations.conf import ktrdr_setting
from operations.exceptions import Conflict, InvalidInput
from operations.kinds import FetchedArtifact, Inputs, Launch, OperationKind, RemotePayload, Rerun
from operations.local import WorkContext
from operations.models import Operation

BARS_ARTIFACT = "bars.parquet"
# What of a load's metadata travels to an agent (the rest is the backend's record).
RUN_KEYS = ("symbol", "timeframe", "start", "end", "mode", "source")


def _is_ib(metadata: dict[str, Any]) -> bool:
    return str(metadata.get("source", "")).lower() == "ib"


def _prepare(metadata: dict[str, Any], _inputs: Inputs | None) -> Launch:
    checked = validate_load_params(
        symbol=metadata.get("symbol"),
        timeframe=metadata.get("timeframe"),
        start=metadata.get("start"),
        end=metadata.get("end"),
        mode=metadata.get("mode", "tail"),
        source=metadata.get("source", "synthetic"),
        execution_mode="local",
    )
    checked = {**metadata, **{k: v for k, v in checked.items() if k != "execution_mode"}}
    if "stored_ranges" in metadata:
        try:
            index_from_runs(metadata["stored_ranges"], get_timeframe(checked["timeframe"]))
        except ValueError as exc:
            raise InvalidInput(str(exc), field="stored_ranges") from None
    series = f"{checked['symbol']}:{checked['timeframe']}"

    def work(ctx: WorkContext) -> dict[str, Any]:
        load = DataLoader(ctx)
        result = load.run()
        if ctx.artifacts_dir is None:
            return result
        fetched = load.fetched_index()
        if len(fetched) == 0:
            return {**result, "bars_artifact": None}
        # Only what this run fetched goes back (the backend has the rest); read from the store
        # it was merge-saved into, so it is exactly what was validated and stored here.
        frame = store.read_bars(checked["symbol"], checked["timeframe"])
        frame = frame[frame.index.isin(fetched)]
        (ctx.artifacts_dir / BARS_ARTIFACT).write_bytes(store.frame_to_bytes(frame))
        return {**result, "bars_artifact": BARS_ARTIFACT}

    work.__name__ = "run_data_load"
    return Launch(
        work=work,
        bridge=DataLoadingProgressBridge.for_load(checked),
        metadata=checked,
        input_series=[series],
    )


def _remote_completed(
    op: Operation, summary: dict[str, Any], fetched: list[FetchedArtifact]
) -> dict[str, Any]:
    bars = next((f for f in fetched if f.name == BARS_ARTIFACT), None)
    if bars is None:
        summary["merged_into_backend"] = {
            "bars_received": 0,
            "bars_added": 0,
            "bars_replaced": 0,
            "bars_unchanged": 0,
            "warnings": [],
        }
        return summary
    frame = store.bytes_to_frame(bars.path.read_bytes())
    meta = op.metadata or {}
    written = store.write_bars(
        meta.get("symbol") or summary["symbol"],
        meta.get("timeframe") or summary["timeframe"],
        frame,
        source=str(summary.get("source") or meta.get("source") or "ib"),
        contract=summary.get("contract") if isinstance(summary.get("contract"), dict) else None,
        on_conflict=LOAD_ON_CONFLICT,
    )
    summary["merged_into_backend"] = {
        "bars_received": written.bars_written,
        "bars_added": written.bars_added,
        "bars_replaced": written.bars_replaced,
        "bars_unchanged": written.bars_unchanged,
        "series_bars": written.total,
        "warnings": list(written.warnings),
    }
    if written.warnings:
        # The agent's own warnings are about its store; these are about this one.
        earlier = summary.get("warnings") if isinstance(summary.get("warnings"), list) else []
        summary["warnings"] = [*earlier, *written.warnings]
    return summary


def _remote_payload(metadata: dict[str, Any]) -> RemotePayload:
    """The load's parameters and what this store already holds of the series, so the agent
    fetches only what is missing here (its own store may be empty or stale)."""
    params = {k: metadata.get(k) for k in RUN_KEYS}
    timeframe = get_timeframe(str(metadata.get("timeframe")))
    index = store.read_index(str(metadata.get("symbol")), timeframe.name)
    params["stored_ranges"] = coverage_runs(index, timeframe)
    return RemotePayload(params=params, metadata={"planned_against_bars": len(index)})


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "?"


def _describe_outcome(op: Operation) -> str:
    """ "1,536 bars received, 1,536 new; series now 88,385 bars" — the series as this store
    holds it after the merge, for a load an agent ran (its own store is not this one)."""
    summary = op.result_summary or {}
    merged = summary.get("merged_into_backend")
    merged = merged if isinstance(merged, dict) else None
    if op.status == "completed":
        if summary.get("bars_in_range") is not None and not summary.get("segments_total"):
            return (
                f"nothing to fetch; {_count(summary['bars_in_range'])} of "
                f"{_count(summary.get('bars_expected_in_range'))} expected bars stored in range"
            )
        counts = merged or summary
        received = "fetched by the agent" if merged else "received"
        said = (
            f"{_count(counts.get('bars_received'))} bars {received}, "
            f"{_count(counts.get('bars_added'))} new"
        )
        if counts.get("series_bars") is not None:
            said += f"; series now {_count(counts['series_bars'])} bars"
        if summary.get("outcome") == "completed with gaps":
            failed = summary.get("segments_failed") or []
            said = (
                f"with gaps ({len(failed)} segment{'' if len(failed) == 1 else 's'} failed); {said}"
            )
        return said
    if op.status == "cancelled":
        done = summary.get("segments_total")
        total = ((op.progress or {}).get("context") or {}).get("segments_total")
        if not isinstance(done, int) or not isinstance(total, int) or not total:
            return ""
        return f"after segment {done} of {total} ({_count(summary.get('bars_saved'))} bars saved)"
    return ""


def _local_unavailable(metadata: dict[str, Any], _require_gpu: bool) -> str:
    if _is_ib(metadata) and not ktrdr_setting("IB_HOST"):
        return (
            "this backend has no IB connection (KTRDR_IB_HOST is not set; set KTRDR_IB_HOST/"
            "KTRDR_IB_PORT, e.g. for the simulator: manage.py ib_gateway_sim --port 4002, or add "
            "an `ib` host agent)"
        )
    return ""


def _rerun(metadata: dict[str, Any]) -> Rerun:
    """The same symbol, timeframe, range, mode and source, placed as it was asked."""
    checked = validate_load_params(
        symbol=metadata.get("symbol"),
        timeframe=metadata.get("timeframe"),
        start=metadata.get("start"),
        end=metadata.get("end"),
        mode=metadata.get("mode", "tail"),
        source=metadata.get("source", "synthetic"),
        execution_mode=metadata.get("execution_mode", "auto"),
    )
    return Rerun(
        metadata=checked,
        execution_mode=checked["execution_mode"],
        input_series=[f"{checked['symbol']}:{checked['timeframe']}"],
    )


def _resume(op: Operation) -> Rerun:
    """The same load again, fetching only what is missing: loads merge into the store and never
    overwrite it with a partial range, so a failed or cancelled load kept every bar it fetched,
    and the resume plans against them — in `full` mode over the same range, whatever mode the
    first load had (after a partial `backfill` the store already starts at the range's start, so
    a backfill would see nothing left to do; `full` fetches exactly the holes left in the range).
    Its segment records are its own (none copied: it plans anew)."""
    metadata = dict(op.metadata or {})
    if metadata.get("mode") == "local":
        raise Conflict(
            f"{op.operation_id} is a local-mode load, which fetches nothing: nothing to resume",
            details={"operation_id": op.operation_id},
        )
    plan = _rerun({**metadata, "mode": "full"})
    plan.metadata = {**plan.metadata, "resumed_mode": metadata.get("mode", "tail")}
    return plan


def _edit_url(metadata: dict[str, Any]) -> str:
    """The load form of the data page, pre-filled."""
    query = {
        "symbol": metadata.get("symbol") or "",
        "timeframe": metadata.get("timeframe") or "",
        "start": str(metadata.get("start") or "")[:10],
        "end": str(metadata.get("end") or "")[:10],
        "mode": metadata.get("mode") or "",
        "source": metadata.get("source") or "",
    }
    url = reverse("marketdata:series-list")
    return f"{url}?{urlencode({k: v for k, v in query.items() if v})}#load-form"


DATA_LOAD = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda metadata: "ib" if _is_ib(metadata) else None,
    local_unavailable=_local_unavailable,
    # Synthetic bars are generated next to the store they go into.
    stays_local=lambda metadata: not _is_ib(metadata),
    remote_payload=_remote_payload,
    remote_completed=_remote_completed,
    rerun=_rerun,
    resume=_resume,
    edit_url=_edit_url,
    description="load bars into the store (IB, synthetic)",
    field_labels={
        "planned_against_bars": "Bars stored here when planned",
        "bars_so_far": "Bars so far",
        "segments_total": "Segments",
        "merged_into_backend": "Merged into this store",
        "series_bars": "Series bars",
        "pacing": "IB pacing budget",
        "pacing_wait_until": "Waiting for IB pacing until",
        "sec_type": "Security type",
        "ib_symbol": "IB symbol",
        "con_id": "IB contract id",
        "what_to_show": "IB data type",
    },
    # The coverage an agent plans against: runs of stored bars, for the agent, not for people.
    hidden_fields=frozenset({"stored_ranges"}),
    describe_outcome=_describe_outcome,
)
