"""Every write of the training app: starting a training run, registering a trained model.

`training_start` validates everything a caller sent (errors name the field), resolves the
strategy and submits the run as a `training` operation (`training.kinds`); the operations core
decides where it runs. `trained_model_register` turns an artifact file — from a
local run or fetched from an agent — into a versioned `TrainedModel` row after checking it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from operations.exceptions import InvalidInput, NotFound
from operations.execution import operation_submit
from operations.models import Operation
from operations.placement import parse_execution_mode
from operations.services import operation_set_produced_model
from training import selectors
from training.artifacts import load_artifact, sha256_file, weights_sha256
from training.errors import StrategyError
from training.models import TrainedModel
from training.strategy import SYMBOL_RE, TIMEFRAME_MINUTES, config_hash, parse_strategy

logger = logging.getLogger(__name__)

OPERATION_TYPE = "training"
AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SYMBOLS = 20


# --- input checks -----------------------------------------------------------------------------
def _as_list(value: Any, field: str) -> list[str] | None:
    """A list, or a comma-separated string (forms, the command line); None/empty → None."""
    if value is None or value in ("", []):
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of strings", field=field)
    return list(value)


def _symbols(value: Any, default: list[str]) -> list[str]:
    symbols = _as_list(value, "symbols") or default
    symbols = [s.upper() for s in symbols]
    if len(symbols) > MAX_SYMBOLS:
        raise InvalidInput(f"at most {MAX_SYMBOLS} symbols per run", field="symbols")
    for s in symbols:
        if not SYMBOL_RE.match(s):
            raise InvalidInput(f"{s!r} is not a valid symbol", field="symbols")
    if len(set(symbols)) != len(symbols):
        raise InvalidInput("a symbol is listed twice", field="symbols")
    return symbols


def _timeframes(value: Any, default: list[str]) -> list[str]:
    timeframes = _as_list(value, "timeframes") or default
    for tf in timeframes:
        if tf not in TIMEFRAME_MINUTES:
            raise InvalidInput(
                f"unknown timeframe {tf!r}; use one of {', '.join(TIMEFRAME_MINUTES)}",
                field="timeframes",
            )
    if len(set(timeframes)) != len(timeframes):
        raise InvalidInput("a timeframe is listed twice", field="timeframes")
    return sorted(timeframes, key=TIMEFRAME_MINUTES.get)


def _date(value: Any, field: str) -> str | None:
    """An ISO date/time → canonical UTC ISO string (comparable as text); empty → None."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{field} must be an ISO date or time like 2017-01-01 (got {value!r})", field=field
            ) from None
    else:
        raise InvalidInput(f"{field} must be an ISO date", field=field)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).isoformat()


def training_start(
    *,
    strategy: str,
    symbols: Any = None,
    timeframes: Any = None,
    start: Any = None,
    end: Any = None,
    user: Any = None,
    execution_mode: str | None = "auto",
    agent: str | None = None,
    require_gpu: bool = False,
    seed: int | None = None,
    detach: bool = False,
) -> Operation:
    """Validate a training request and start it where it should run (a training agent, GPU
    ones first, or here); returns the new (pending) operation. `detach` refuses work that would
    run in this process (see `operations.execution.operation_submit`)."""
    try:
        found = selectors.strategy_get(strategy)
    except NotFound as exc:
        # In a request body an unknown strategy is bad input (400), not a missing resource.
        raise InvalidInput(exc.message, field="strategy") from None
    if found.config is None:
        assert found.error is not None
        raise InvalidInput(
            f"strategy {strategy!r} is invalid: {found.error}",
            details={"strategy": [str(found.error)], **found.error.as_details()},
        )
    config = found.config
    data = config["training_data"]
    symbols_ = _symbols(symbols, data["symbols"])
    timeframes_ = _timeframes(timeframes, data["timeframes"])
    start_ = _date(start if start not in (None, "") else data["history"]["start"], "start")
    end_ = _date(end if end not in (None, "") else data["history"]["end"], "end")
    if start_ and end_ and start_ >= end_:
        raise InvalidInput("end must be after start", field="end")
    mode = parse_execution_mode(execution_mode)
    agent_ = (agent or "").strip()
    if agent_ and not AGENT_NAME_RE.match(agent_):
        raise InvalidInput(f"{agent_!r} is not a valid agent name", field="agent")
    if not isinstance(require_gpu, bool):
        raise InvalidInput("require_gpu must be true or false", field="require_gpu")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31
    ):
        raise InvalidInput("seed must be an integer between 0 and 2^31-1", field="seed")
    metadata = {
        "strategy": config["name"],
        "config_hash": config_hash(config),
        "symbols": symbols_,
        "timeframes": timeframes_,
        "base_timeframe": timeframes_[0],
        "start": start_,
        "end": end_,
        "seed": seed if seed is not None else config["model"]["training"]["seed"],
        "execution_mode": mode,
        "agent": agent_,
        "require_gpu": require_gpu,
        # The whole resolved strategy travels with the run (an agent needs no strategy files).
        "strategy_config": config,
    }
    return operation_submit(
        operation_type=OPERATION_TYPE,
        metadata=metadata,
        execution_mode=mode,
        agent=agent_ or None,
        require_gpu=require_gpu,
        user=user,
        strategy_name=config["name"],
        input_series=[f"{s}:{tf}" for s in symbols_ for tf in timeframes_],
        detach=detach,
    )


# --- models -----------------------------------------------------------------------------------
def _stored_path(path: Path) -> str:
    """Relative to MODELS_DIR when the file lies under it."""
    root = selectors.models_dir().resolve()
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(root))
    except ValueError:
        return str(resolved)


def trained_model_register(
    *,
    artifact_path: Path | str,
    sha256: str | None = None,
    operation_id: str = "",
    result: dict[str, Any] | None = None,
    user: Any = None,
) -> TrainedModel:
    """Record a model artifact as the next version of its strategy and base timeframe.

    The file is checked first: its sha256 (against `sha256` when given — an agent's download is
    verified here) and that it loads with `weights_only=True` as a model bundle. `result` is the
    executor's result summary (metrics, data summary); without it the file's own metadata is used.
    """
    path = Path(artifact_path)
    if not path.is_file():
        raise InvalidInput(f"model file {path} does not exist", field="artifact_path")
    actual = sha256_file(path)
    if sha256 is not None and actual != sha256:
        raise InvalidInput(
            f"model file {path.name} does not match its sha256 ({actual} != {sha256})",
            field="sha256",
        )
    try:
        bundle = load_artifact(path)
    except Exception as exc:
        raise InvalidInput(
            f"{path.name} is not a loadable model: {exc}", field="artifact_path"
        ) from exc
    config, spec, meta = bundle["config"], bundle["feature_spec"], bundle.get("metadata", {})
    result = result or {}
    metrics = {
        **(result.get("metrics") or meta.get("metrics") or {}),
        "per_class": result.get("per_class"),
        "confusion_matrix": result.get("confusion_matrix"),
        "class_balance": result.get("class_balance"),
        "reports": result.get("reports"),
        "feature_drift": result.get("feature_drift"),
        "warnings": result.get("warnings") or meta.get("warnings") or [],
        "best_epoch": (result.get("training") or {}).get("best_epoch", meta.get("best_epoch")),
    }
    metadata = {
        "data": result.get("data"),
        "training": {k: v for k, v in (result.get("training") or {}).items() if k != "history"},
        "seed": meta.get("seed"),
        "run_id": meta.get("run_id"),
        "parameters": (result.get("model") or {}).get("parameters"),
    }
    timeframe = spec["base_timeframe"]
    if operation_id:
        existing = TrainedModel.objects.filter(operation_id=operation_id).first()
        if existing is not None:
            return _same_model(existing, actual)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                last = TrainedModel.objects.filter(
                    strategy_name=config["name"], timeframe=timeframe
                ).aggregate(v=Max("version"))["v"]
                model = TrainedModel.objects.create(
                    strategy_name=config["name"],
                    config_hash=meta.get("config_hash") or config_hash(config),
                    timeframe=timeframe,
                    timeframes=spec["timeframes"],
                    symbols=spec["symbols"],
                    version=(last or 0) + 1,
                    metrics=metrics,
                    feature_names=spec["names"],
                    metadata=metadata,
                    artifact_path=_stored_path(path),
                    size_bytes=path.stat().st_size,
                    sha256=actual,
                    weights_sha256=weights_sha256(bundle["state_dict"]),
                    operation_id=operation_id,
                    created_by=user if getattr(user, "is_authenticated", False) else None,
                )
                if operation_id:
                    operation_set_produced_model(operation_id=operation_id, model_label=str(model))
        except IntegrityError:
            raced = (
                TrainedModel.objects.filter(operation_id=operation_id).first()
                if operation_id
                else None
            )
            if raced is not None:
                # Another process registered this operation's model first: that one stands.
                return _same_model(raced, actual)
            # Two registrations raced for the same version number: take the next one.
            continue
        logger.info("registered model %s (%s)", model, model.artifact_path)
        return model
    raise InvalidInput("could not assign a model version (too many concurrent registrations)")


def _same_model(model: TrainedModel, sha256: str) -> TrainedModel:
    if model.sha256 != sha256:
        raise InvalidInput(
            f"operation {model.operation_id} already produced model {model} with another file "
            f"(sha256 {model.sha256[:12]}…, not {sha256[:12]}…)",
            field="operation_id",
        )
    return model


def strategy_validate_text(text: Any) -> dict[str, Any]:
    """Validate strategy YAML sent by a client; InvalidInput details are keyed by schema path."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("yaml must be the strategy text", field="yaml")
    try:
        return parse_strategy(text)
    except StrategyError as exc:
        raise InvalidInput(f"invalid strategy: {exc}", details=exc.as_details()) from None
