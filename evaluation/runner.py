"""One walk-forward evaluation, here or on an agent: features once → per fold × seed a model
trained on the fold's training rows and scored on its test rows → the aggregate.

Everything comes from `ctx.metadata` (the checked request and the resolved strategy). The
training pipeline is `training.executor.TrainingExecutor`'s, unchanged: `build_features` for
the whole series (indicators only look back, and the warm-up is dropped once), then per fold
`training.dataset.dataset_for_ranges` (each range labelled on its own closes), `fit`
(normalisation from the fold's training rows only) and `split_probabilities` on its test rows,
scored by `training.evaluation.split_report`. No fold model is saved: the figures are the
product (`docs/research.md` *Evaluation*).

Cancel: acknowledged at the next batch of the running fold (the executor's check) or between
folds; the run ends `cancelled` with the finished folds and their aggregate. A failing fold
fails the run, naming the fold, with the finished ones kept in the result. `prior_folds`
(finished folds carried from an earlier attempt, `evaluation.kinds.resume_metadata`) are not
run again.

No Django models; torch is imported by the executor.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.aggregate import FIGURES, aggregate
from evaluation.bridge import EvaluationProgressBridge
from evaluation.folds import Fold, plan_folds
from operations.cancellation import OperationCancelled
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput
from operations.local import WorkContext
from training import evaluation as training_evaluation
from training.bridge import TrainingProgressBridge
from training.dataset import dataset_for_ranges
from training.executor import LoadBars, TrainingExecutor
from training.labels import NUM_CLASSES
from training.strategy import validate_strategy

logger = logging.getLogger("evaluation.runner")


class EvaluationError(RuntimeError):
    """A fold that could not be trained or scored; the message names it and why."""


def with_epochs(config: dict[str, Any], epochs: int | None) -> dict[str, Any]:
    """The strategy with its epochs overridden (validated again)."""
    if epochs is None:
        return config
    changed = copy.deepcopy(config)
    changed["model"]["training"]["epochs"] = int(epochs)
    return validate_strategy(changed)


def unit_key(record: dict[str, Any]) -> tuple[int, int]:
    return int(record["fold"]), int(record["seed"])


def _range(index: pd.DatetimeIndex, lo: int, hi: int) -> dict[str, Any]:
    return {"first": index[lo].isoformat(), "last": index[hi - 1].isoformat(), "rows": hi - lo}


def _bounds(index: pd.DatetimeIndex, lo: int, hi: int) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    return index[lo], (index[hi] if hi < len(index) else None)


def summary_of(
    meta: dict[str, Any],
    plan: list[Fold],
    records: list[dict[str, Any]],
    data: dict[str, Any],
    *,
    partial: bool,
) -> dict[str, Any]:
    """The result: the plan, every finished fold × seed, and their aggregate."""
    boot = meta["bootstrap"]
    ordered = sorted(records, key=unit_key)
    total = len(plan) * len(meta["seeds"])
    out = {
        "strategy": meta["strategy"],
        "symbol": meta["symbol"],
        "timeframe": meta["timeframe"],
        "scheme": meta["scheme"],
        "purge_bars": meta["purge_bars"],
        "embargo_bars": meta["embargo_bars"],
        "seeds": meta["seeds"],
        "data": data,
        "plan": [f.as_dict() for f in plan],
        "fold_results": ordered,
        "units_done": len(ordered),
        "units_total": total,
        "partial": partial,
        "aggregate": aggregate(
            ordered, resamples=boot["resamples"], confidence=boot["confidence"], seed=boot["seed"]
        )
        if ordered
        else None,
        "models_saved": False,
    }
    if partial:
        out["warnings"] = [
            f"partial: {len(ordered)} of {total} fold × seed runs finished; the aggregate covers "
            "those only"
        ]
    return out


def carried_folds(
    prior: Any, plan: list[Fold], seeds: list[int], index: pd.DatetimeIndex
) -> dict[tuple[int, int], dict[str, Any]]:
    """`prior_folds` checked against this run's plan: a carried fold × seed must be one of the
    plan's, with the same test range, and carry every figure."""
    if prior in (None, []):
        return {}
    if not isinstance(prior, list) or len(prior) > len(plan) * len(seeds):
        raise InvalidInput(
            f"prior_folds must be a list of at most {len(plan) * len(seeds)} fold results",
            field="prior_folds",
        )
    by_number = {f.number: f for f in plan}
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for record in prior:
        if not isinstance(record, dict):
            raise InvalidInput("prior_folds: each item must be an object", field="prior_folds")
        fold, seed = record.get("fold"), record.get("seed")
        if not isinstance(fold, int) or fold not in by_number or seed not in seeds:
            raise InvalidInput(
                f"prior_folds: fold {fold!r} seed {seed!r} is not in this plan",
                field="prior_folds",
            )
        test = by_number[fold].test
        if record.get("test") != _range(index, *test):
            raise InvalidInput(
                f"prior_folds: fold {fold}'s test range differs from this plan's",
                field="prior_folds",
            )
        for key in FIGURES:
            value = record.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"prior_folds: fold {fold} lacks {key}", field="prior_folds")
        for key in ("train", "validation"):
            span = record.get(key)
            if not isinstance(span, dict) or not all(
                isinstance(span.get(end), str) for end in ("first", "last")
            ):
                raise InvalidInput(
                    f"prior_folds: fold {fold} lacks its {key} range", field="prior_folds"
                )
        out[(fold, int(seed))] = record
    return out


def run_evaluation(ctx: WorkContext, *, load_bars: LoadBars | None = None) -> dict[str, Any]:
    """`load_bars`: this process's store, or (on an agent) the bars sent with the start."""
    meta = ctx.metadata
    bridge = ctx.bridge
    if not isinstance(bridge, EvaluationProgressBridge):
        raise TypeError("an evaluation runs against an EvaluationProgressBridge")
    config = with_epochs(meta["strategy_config"], meta.get("epochs"))
    symbol, seeds = meta["symbol"], list(meta["seeds"])
    common: dict[str, Any] = {
        "config": config,
        "symbols": [symbol],
        "timeframes": meta["timeframes"],
        "start": meta.get("start"),
        "end": meta.get("end"),
        # Never written (save=False): fold models are not kept.
        "models_dir": Path(tempfile.gettempdir()),
        "load_bars": load_bars,
        "token": ctx.token,
        "log": logging.getLogger("training.executor"),
        "save": False,
        "device": meta.get("device") or ktrdr_setting("TRAINING_DEVICE", "auto"),
    }
    setup = TrainingProgressBridge()
    bridge.start_setup(setup, total=meta["folds"] * len(seeds))
    features = TrainingExecutor(**common, bridge=setup, run_id=f"{ctx.operation_id}_features")
    per_symbol, warmups = features.build_features()
    frame, close = per_symbol[symbol]
    index = frame.index
    rows = len(frame)
    test_bars = meta.get("test_bars")
    if test_bars is None and meta.get("test_fraction") is not None:
        test_bars = round(float(meta["test_fraction"]) * rows)
    plan = plan_folds(
        rows,
        folds=meta["folds"],
        scheme=meta["scheme"],
        test_bars=test_bars,
        train_bars=meta.get("train_bars"),
        purge_bars=meta["purge_bars"],
        embargo_bars=meta["embargo_bars"],
    )
    data = {
        "rows": rows,
        "warmup_rows": warmups[symbol],
        "first": index[0].isoformat(),
        "last": index[-1].isoformat(),
        "device": features.device_label,
    }
    carried = carried_folds(meta.get("prior_folds"), plan, seeds, index)
    records = list(carried.values())
    units = [(fold, s_i, seed) for fold in plan for s_i, seed in enumerate(seeds, start=1)]
    total = len(units)
    started: float | None = None
    ran = 0
    for done, (fold, s_i, seed) in enumerate(units):
        if (fold.number, seed) in carried:
            # Charted and listed as this run's own, marked: the curve of a resumed run is whole.
            chart = _chart_fields(carried[(fold.number, seed)])
            bridge.append_metric("fold", {"unit": done + 1, **chart, "carried": True})
            continue
        label = f"fold {fold.number} of {len(plan)} · seed {s_i} of {len(seeds)}"
        if ctx.token.is_cancelled:
            raise OperationCancelled(label, summary_of(meta, plan, records, data, partial=True))
        if started is None:
            started = bridge.now()
        inner = TrainingProgressBridge()
        bridge.start_unit(inner, done=done, total=total, label=label, started=started, ran=ran)
        ctx.logger.info("%s: %s", ctx.operation_id, label)
        try:
            record = _run_unit(
                common,
                fold=fold,
                seed=seed,
                inner=inner,
                series=(frame, close),
                symbol=symbol,
                label=label,
            )
        except OperationCancelled as exc:
            partial = summary_of(meta, plan, records, data, partial=True)
            raise OperationCancelled(f"{label}, {exc.stop_point}", partial) from None
        except Exception as exc:
            bridge.final_result = summary_of(meta, plan, records, data, partial=True)
            raise EvaluationError(f"{label} failed: {exc}") from exc
        records.append(record)
        bridge.append_metric("fold", {"unit": done + 1, **_chart_fields(record)})
        ran += 1
    bridge.end_units(f"{total} fold × seed runs done; aggregating")
    return summary_of(meta, plan, records, data, partial=False)


def _chart_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A `fold` metric record: the figures and the ranges (the page's live table and chart)."""
    return {
        **{k: record[k] for k in ("fold", "seed", *FIGURES)},
        "train_first": record["train"]["first"],
        "train_last": record["validation"]["last"],
        "test_first": record["test"]["first"],
        "test_last": record["test"]["last"],
    }


def _run_unit(
    common: dict[str, Any],
    *,
    fold: Fold,
    seed: int,
    inner: TrainingProgressBridge,
    series: tuple[pd.DataFrame, pd.Series],
    symbol: str,
    label: str,
) -> dict[str, Any]:
    frame, _close = series
    index = frame.index
    ranges = {
        "train": _bounds(index, *fold.train),
        "validation": _bounds(index, *fold.validation),
        "test": _bounds(index, *fold.test),
    }
    dataset = dataset_for_ranges(common["config"], {symbol: series}, ranges)
    executor = TrainingExecutor(**common, seed=seed, bridge=inner, run_id=label)
    prepared, info = executor.fit(dataset)
    truth, probs, predicted = executor.split_probabilities(prepared, "test")
    train_counts = np.bincount(dataset.splits["train"].y, minlength=NUM_CLASSES)
    report = training_evaluation.split_report(truth, probs, train_counts, predicted)
    return {
        "fold": fold.number,
        "seed": seed,
        "train": _range(index, *fold.train),
        "validation": _range(index, *fold.validation),
        "test": _range(index, *fold.test),
        **{k: report[k] for k in (*FIGURES, "samples", "majority_class")},
        "class_balance": report["class_balance"],
        "predicted_balance": report["predicted_balance"],
        "train_samples": len(dataset.splits["train"]),
        "epochs_run": info["epochs_run"],
        "best_epoch": info["best_epoch"],
    }
