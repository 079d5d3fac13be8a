"""The `data_load` operation kind: how a load runs here or on an IB agent, and how its bars come
back (`docs/architecture.md` §3).

Registered in `MarketdataConfig.ready()`. The worker is `run_data_load` everywhere. IB loads need
a place with an IB connection — an agent with the `ib` capability, or this process when
`KTRDR_IB_HOST` is set; synthetic loads stay next to this process's store unless an agent is
asked for. On an agent the whole stored series of the symbol and timeframe is left as the
artifact `bars.parquet`, and the backend merges it into its own store (merging never
overwrites stored bars with a partial range).
"""

from __future__ import annotations

from typing import Any

from marketdata import store
from marketdata.loader import OPERATION_TYPE, run_data_load
from marketdata.progress import DataLoadingProgressBridge
from marketdata.services import validate_load_params
from operations.conf import ktrdr_setting
from operations.kinds import FetchedArtifact, Inputs, Launch, OperationKind, RemotePayload
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
    series = f"{checked['symbol']}:{checked['timeframe']}"

    def work(ctx: WorkContext) -> dict[str, Any]:
        result = run_data_load(ctx)
        if ctx.artifacts_dir is None:
            return result
        try:
            frame = store.read_bars(checked["symbol"], checked["timeframe"])
        except store.SeriesNotFound:
            return result
        # This process's whole series for the symbol/timeframe goes back; the backend merges it.
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
        return summary
    frame = store.bytes_to_frame(bars.path.read_bytes())
    meta = op.metadata or {}
    written = store.write_bars(
        meta.get("symbol") or summary["symbol"],
        meta.get("timeframe") or summary["timeframe"],
        frame,
        source=str(summary.get("source") or meta.get("source") or "ib"),
        contract=summary.get("contract") if isinstance(summary.get("contract"), dict) else None,
    )
    summary["merged_into_backend"] = {
        "bars_received": written.bars_written,
        "bars_added": written.bars_added,
        "series_bars": written.total,
    }
    return summary


def _local_unavailable(metadata: dict[str, Any], _require_gpu: bool) -> str:
    if _is_ib(metadata) and not ktrdr_setting("IB_HOST"):
        return (
            "this backend has no IB connection (KTRDR_IB_HOST is not set; set KTRDR_IB_HOST/"
            "KTRDR_IB_PORT, e.g. for the simulator: manage.py ib_gateway_sim --port 4002, or add "
            "an `ib` host agent)"
        )
    return ""


DATA_LOAD = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda metadata: "ib" if _is_ib(metadata) else None,
    local_unavailable=_local_unavailable,
    # Synthetic bars are generated next to the store they go into.
    stays_local=lambda metadata: not _is_ib(metadata),
    remote_payload=lambda metadata: RemotePayload(params={k: metadata.get(k) for k in RUN_KEYS}),
    remote_completed=_remote_completed,
    description="load bars into the store (IB, synthetic)",
)
