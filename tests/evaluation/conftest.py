"""Fixtures for the evaluation tests: the small strategy on real EURUSD bars (tests/training),
a run helper with a real bridge and token, and bars in a temporary market-data store."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import pytest

from evaluation.bridge import EvaluationProgressBridge
from evaluation.kinds import checked_metadata
from evaluation.runner import run_evaluation
from marketdata.store import write_bars
from operations.cancellation import CancellationToken
from operations.local import WorkContext
from tests.training.conftest import SMALL_STRATEGY, eurusd, make_loader, strategies_dir  # noqa: F401
from training.strategy import validate_strategy

# Three months of hourly bars: about 1,350 rows after the small strategy's warm-up.
RANGE = {"start": "2017-01-01", "end": "2017-04-01"}


def small_metadata(raw: dict | None = None, **request: Any) -> dict[str, Any]:
    config = validate_strategy(copy.deepcopy(raw or SMALL_STRATEGY))
    body = {**RANGE, "folds": 3, "seeds": 1, "epochs": 2, **request}
    return checked_metadata({**body, "strategy_config": config})


def run(
    meta: dict[str, Any],
    loader,
    *,
    bridge: EvaluationProgressBridge | None = None,
    token: CancellationToken | None = None,
) -> tuple[dict[str, Any], EvaluationProgressBridge]:
    bridge = bridge or EvaluationProgressBridge()
    ctx = WorkContext(
        operation_id="op_evaluation_test",
        metadata=meta,
        bridge=bridge,
        token=token or CancellationToken(),
    )
    return run_evaluation(ctx, load_bars=loader), bridge


@pytest.fixture
def data_dir(settings, tmp_path):
    path = tmp_path / "data"
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": path, "OPERATIONS_CACHE_TTL": 0.0}
    return path


@pytest.fixture
def stored_bars(data_dir, eurusd) -> pd.DataFrame:  # noqa: F811
    frame = eurusd[(eurusd.index >= "2017-01-01") & (eurusd.index < "2017-07-01")]
    write_bars("EURUSD", "1h", frame, source="csv")
    return frame
