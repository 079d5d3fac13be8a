"""Training and data loads on agents: the glue between those apps and the agent machinery.

Backend side (called by `training.services.training_start` / `marketdata.services.data_load_start`
when `hostagents.selection.choose_execution` placed the work on an agent):

* `training_dispatch` — the resolved strategy and its input bars travel with the start (bars as
  zstd-compressed Parquet, content-addressed by sha256; the agent is asked which hashes it lacks
  and only those are sent).
* `data_load_dispatch` — the validated load parameters.

Agent side (`agent_work` resolves these lazily): the same workers as local execution —
`training.runner.run_training` with a bar loader over the sent blobs, and
`marketdata.loader.run_data_load` — wrapped so their files become artifacts (`model.pt`,
`bars.parquet`).

Completion hooks (registered in `HostagentsConfig.ready`): on the backend, a fetched and verified
`model.pt` is moved into MODELS_DIR and registered as a TrainedModel; fetched `bars.parquet` is
merged into the backend's store (never overwriting, `store.write_bars` merges).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hostagents.agent_work import PreparedWork, with_artifacts
from hostagents.blobs import BlobError, blob_has, blob_put_b64, blob_read
from hostagents.client import AgentError, FetchedArtifact, client_for
from hostagents.dispatch import register_completion_hook, start_remote
from hostagents.models import Agent
from operations.exceptions import Conflict, InvalidInput, NotFound
from operations.local import WorkContext
from operations.models import Operation

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "model.pt"
BARS_ARTIFACT = "bars.parquet"
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# What of a training operation's metadata the agent needs to run it (the rest is backend-side).
TRAINING_RUN_KEYS = ("strategy", "strategy_config", "symbols", "timeframes", "start", "end", "seed")
DATA_LOAD_KEYS = ("symbol", "timeframe", "start", "end", "mode", "source")


# --- bars as bytes ------------------------------------------------------------------------------
def frame_to_bytes(frame: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer, compression="zstd")
    return buffer.getvalue()


def bytes_to_frame(data: bytes) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()


# --- backend side: starting work on an agent ----------------------------------------------------
def pack_training_inputs(
    symbols: Iterable[str], timeframes: Iterable[str], start: Any, end: Any
) -> list[dict[str, Any]]:
    """The stored bars a run will read, exactly as the local loader would read them."""
    from marketdata.store import SeriesNotFound, read_bars

    inputs = []
    for symbol in symbols:
        for timeframe in timeframes:
            try:
                frame = read_bars(symbol, timeframe, start=start, end=end)
            except SeriesNotFound:
                continue  # the executor resamples a missing higher timeframe, here and there
            data = frame_to_bytes(frame)
            inputs.append(
                {
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "rows": len(frame),
                    "data": data,
                }
            )
    return inputs


def training_dispatch(
    *,
    agent: Agent,
    metadata: dict[str, Any],
    user: Any = None,
    strategy_name: str = "",
    input_series: Iterable[str] = (),
) -> Operation:
    """Start a validated training run (its operation metadata) on `agent`."""
    inputs = pack_training_inputs(
        metadata["symbols"], metadata["timeframes"], metadata.get("start"), metadata.get("end")
    )
    hashes = [i["sha256"] for i in inputs]
    try:
        missing = set(client_for(agent).blobs_missing(hashes)) if hashes else set()
    except AgentError as exc:
        logger.info("blob check on %s failed (%s); sending all inputs", agent.name, exc)
        missing = set(hashes)
    payload = {
        "metadata": {k: metadata.get(k) for k in TRAINING_RUN_KEYS},
        "inputs": [
            {
                "symbol": i["symbol"],
                "timeframe": i["timeframe"],
                "sha256": i["sha256"],
                "rows": i["rows"],
                **(
                    {"data": base64.b64encode(i["data"]).decode()} if i["sha256"] in missing else {}
                ),
            }
            for i in inputs
        ],
    }
    sent = sum(len(i["data"]) for i in inputs if i["sha256"] in missing)
    meta = {
        **metadata,
        "inputs_sent_bytes": sent,
        "inputs_cached_on_agent": len(hashes) - len(missing),
    }
    return start_remote(
        operation_type="training",
        agent=agent,
        payload=payload,
        metadata=meta,
        user=user,
        strategy_name=strategy_name,
        input_series=input_series,
    )


def data_load_dispatch(*, agent: Agent, metadata: dict[str, Any], user: Any = None) -> Operation:
    """Start a validated data load (its operation metadata) on `agent` (an `ib` agent)."""
    return start_remote(
        operation_type="data_load",
        agent=agent,
        payload={k: metadata.get(k) for k in DATA_LOAD_KEYS},
        metadata=metadata,
        user=user,
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
    )


# --- agent side: the same workers, other place --------------------------------------------------
def _training_inputs(raw: Any) -> dict[tuple[str, str], str]:
    if not isinstance(raw, list):
        raise InvalidInput("inputs must be a list", field="inputs")
    index: dict[tuple[str, str], str] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidInput("each input must be an object", field="inputs")
        symbol, timeframe, sha = item.get("symbol"), item.get("timeframe"), item.get("sha256")
        if not (isinstance(symbol, str) and isinstance(timeframe, str) and isinstance(sha, str)):
            raise InvalidInput("inputs need symbol, timeframe and sha256", field="inputs")
        if not SHA_RE.match(sha):
            raise InvalidInput(f"input {symbol} {timeframe}: bad sha256", field="inputs")
        if item.get("data") is not None:
            try:
                blob_put_b64(sha, str(item["data"]))
            except BlobError as exc:
                raise InvalidInput(f"input {symbol} {timeframe}: {exc}", field="inputs") from None
        index[(symbol, timeframe)] = sha
    missing = sorted({sha for sha in index.values() if not blob_has(sha)})
    if missing:
        # The backend checked before sending; the cache lost them since. It resends with data.
        raise Conflict(
            f"{len(missing)} input blobs are not in this agent's cache; send them with data",
            details={"missing": missing},
        )
    return index


def prepare_training_on_agent(payload: dict[str, Any]) -> PreparedWork:
    from training.bridge import TrainingProgressBridge
    from training.errors import StrategyError
    from training.runner import run_training
    from training.strategy import validate_strategy

    meta = payload.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("strategy_config"), dict):
        raise InvalidInput("metadata.strategy_config is required", field="metadata")
    try:
        # Re-validated here: an agent trusts nothing it is sent, not even from its backend.
        config = validate_strategy(meta["strategy_config"])
    except StrategyError as exc:
        raise InvalidInput(f"invalid strategy: {exc}", field="metadata") from None
    symbols, timeframes = meta.get("symbols"), meta.get("timeframes")
    for field, value in (("symbols", symbols), ("timeframes", timeframes)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"metadata.{field} must be a non-empty list", field=field)
    index = _training_inputs(payload.get("inputs", []))

    def load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> Any:
        sha = index.get((symbol, timeframe))
        if sha is None:
            raise NotFound(f"no bars were sent for {symbol} {timeframe}")
        return bytes_to_frame(blob_read(sha))

    def work(ctx: WorkContext) -> dict[str, Any]:
        folder = Path(ctx.metadata["artifacts_dir"])
        result = run_training(ctx, load_bars=load_bars, models_dir=folder / "_models")
        model = result.get("model") or {}
        if model.get("artifact_path"):
            # The executor's own layout stays (the agent's model row points at it); a link at
            # the top of the folder makes it the operation's artifact without copying it.
            target = folder / MODEL_ARTIFACT
            try:
                os.link(model["artifact_path"], target)
            except OSError:
                shutil.copy2(model["artifact_path"], target)
            result["model"] = {**model, "artifact_name": MODEL_ARTIFACT}
        return result

    run_meta = {
        **{k: meta.get(k) for k in TRAINING_RUN_KEYS},
        "strategy_config": config,
        "inputs": [{"symbol": s, "timeframe": t, "sha256": h} for (s, t), h in index.items()],
    }
    return PreparedWork(
        work=with_artifacts(work),
        bridge=TrainingProgressBridge(),
        metadata=run_meta,
        strategy_name=config["name"],
        input_series=[f"{s}:{t}" for s in symbols for t in timeframes],
    )


def prepare_data_load_on_agent(payload: dict[str, Any]) -> PreparedWork:
    from marketdata.loader import run_data_load
    from marketdata.progress import DataLoadingProgressBridge
    from marketdata.services import validate_load_params

    metadata = validate_load_params(
        symbol=payload.get("symbol"),
        timeframe=payload.get("timeframe"),
        start=payload.get("start"),
        end=payload.get("end"),
        mode=payload.get("mode", "tail"),
        source=payload.get("source", "synthetic"),
        execution_mode="local",
    )

    def work(ctx: WorkContext) -> dict[str, Any]:
        from marketdata.store import SeriesNotFound, read_bars

        result = run_data_load(ctx)
        try:
            frame = read_bars(metadata["symbol"], metadata["timeframe"])
        except SeriesNotFound:
            return result
        # The agent's whole series for this symbol/timeframe goes back; the backend merges it.
        path = Path(ctx.metadata["artifacts_dir"]) / BARS_ARTIFACT
        path.write_bytes(frame_to_bytes(frame))
        return {**result, "bars_artifact": BARS_ARTIFACT}

    bridge = DataLoadingProgressBridge.for_load(metadata)
    return PreparedWork(
        work=with_artifacts(work),
        bridge=bridge,
        metadata=metadata,
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
    )


# --- backend side: completion hooks -------------------------------------------------------------
def _training_completed(
    op: Operation, summary: dict[str, Any], fetched: list[FetchedArtifact]
) -> dict[str, Any]:
    from hostagents.artifacts import artifact_record
    from operations.conf import ktrdr_setting
    from training.services import trained_model_register

    model = next((f for f in fetched if f.name == MODEL_ARTIFACT), None)
    if model is None:
        return summary
    base_tf = ((op.metadata or {}).get("timeframes") or ["model"])[0]
    strategy = (op.metadata or {}).get("strategy") or op.strategy_name or "strategy"
    dest = Path(ktrdr_setting("MODELS_DIR")) / strategy / base_tf / f"{op.operation_id}.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if model.path != dest:
        os.replace(model.path, dest)  # same filesystem in the default layout: atomic
        artifact_record(
            operation_id=op.operation_id,
            name=model.name,
            path=dest,
            size=model.size,
            sha256=model.sha256,
        )
    registered = trained_model_register(
        artifact_path=dest,
        sha256=model.sha256,
        operation_id=op.operation_id,
        result=summary,
        user=op.created_by,
    )
    summary["model"] = {
        **(summary.get("model") or {}),
        "artifact_path": str(dest),
        "sha256": model.sha256,
        "size_bytes": model.size,
        "id": registered.pk,
        "version": registered.version,
        "label": str(registered),
    }
    return summary


def _data_load_completed(
    op: Operation, summary: dict[str, Any], fetched: list[FetchedArtifact]
) -> dict[str, Any]:
    from marketdata import store

    bars = next((f for f in fetched if f.name == BARS_ARTIFACT), None)
    if bars is None:
        return summary
    frame = bytes_to_frame(bars.path.read_bytes())
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


def register_hooks() -> None:
    register_completion_hook("training", _training_completed)
    register_completion_hook("data_load", _data_load_completed)
