"""Training API: start runs (202), live metrics through the operations API, models and download."""

from __future__ import annotations

import hashlib
import io
import time

import pytest
import torch

from operations.local import local_runs
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


def start(api, **body):
    return api.post("/api/v1/training/runs/", {"strategy": "test_small", **body}, format="json")


def finish(api, operation_id: str, timeout: float = 60.0) -> dict:
    assert local_runs.wait_idle(timeout=timeout)
    resp = api.get(f"/api/v1/operations/{operation_id}/?force_refresh=true")
    assert resp.status_code == 200
    return resp.json()


def test_start_answers_202_with_the_operation(api, strategies_dir, models_dir, store_bars):
    resp = start(api, symbols=["EURUSD"], timeframes=["1h"], start="2017-01-01", end="2017-07-01")
    assert resp.status_code == 202
    body = resp.json()
    assert body["operation_type"] == "training"
    assert body["status"] in {"pending", "running"}
    meta = body["metadata"]
    assert meta["strategy"] == "test_small"
    assert meta["execution_mode"] == "auto"
    assert meta["placement"]["place"] == "local"
    assert meta["strategy_config"]["name"] == "test_small"
    done = finish(api, body["operation_id"])
    assert done["status"] == "completed", done["error_message"]
    result = done["result_summary"]
    assert result["model"]["version"] == 1
    assert 0 < result["metrics"]["test"]["accuracy"] < 0.99


def test_epoch_metrics_are_readable_with_the_cursor_while_the_run_goes_on(
    api, strategies_dir, models_dir, store_bars, fast_ttl
):
    op_id = api.post("/api/v1/training/runs/", {"strategy": "test_slow"}, format="json").json()[
        "operation_id"
    ]
    records, cursor, deadline = [], 0, time.monotonic() + 60
    while len(records) < 3 and time.monotonic() < deadline:
        time.sleep(fast_ttl)
        page = api.get(f"/api/v1/operations/{op_id}/metrics/?cursor={cursor}").json()
        assert all(r["seq"] >= cursor for r in page["metrics"])
        records += page["metrics"]
        cursor = page["new_cursor"]
    op = api.get(f"/api/v1/operations/{op_id}/").json()
    assert op["status"] == "running"
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    assert {
        "seq",
        "kind",
        "recorded_at",
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "duration_seconds",
    } <= set(records[0])
    assert op["progress"]["phase"] == "training"
    assert "batch" in op["progress"]["message"]
    assert op["progress"]["context"]["epochs_total"] == 400
    assert op["progress"]["eta_seconds"] is not None
    # Nothing new past the cursor right away returns an empty page and the same cursor.
    again = api.get(f"/api/v1/operations/{op_id}/metrics/?cursor=100000").json()
    assert again == {"metrics": [], "new_cursor": 100000}

    cancel = api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "enough"}, format="json")
    assert cancel.status_code == 202
    done = finish(api, op_id)
    assert done["status"] == "cancelled"
    assert done["result_summary"]["stopped_at"].startswith("epoch ")
    assert done["result_summary"]["model_saved"] is False
    assert len(done["result_summary"]["history"]) >= 3
    assert TrainedModel.objects.count() == 0
    assert not list(models_dir.rglob("*.pt"))
    # The history stays readable after the end.
    kept = api.get(f"/api/v1/operations/{op_id}/metrics/?cursor=0").json()["metrics"]
    assert len(kept) >= len(records)


def test_models_are_listed_detailed_and_downloaded_with_their_sha256(
    api, strategies_dir, models_dir, store_bars
):
    op_id = start(api).json()["operation_id"]
    assert finish(api, op_id)["status"] == "completed"
    listing = api.get("/api/v1/training/models/").json()
    assert listing["total"] == 1
    model = listing["models"][0]
    assert model["strategy_name"] == "test_small"
    assert model["operation_id"] == op_id
    assert model["version"] == 1
    assert api.get(f"/api/v1/training/models/{model['id']}/").json()["sha256"] == model["sha256"]
    resp = api.get(f"/api/v1/training/models/{model['id']}/download")
    assert resp.status_code == 200
    payload = b"".join(resp.streaming_content)
    assert resp["X-Content-SHA256"] == model["sha256"] == hashlib.sha256(payload).hexdigest()
    assert int(resp["Content-Length"]) == len(payload) == model["size_bytes"]
    bundle = torch.load(io.BytesIO(payload), weights_only=True)
    assert bundle["feature_spec"]["names"] == model["feature_names"]


def test_a_model_whose_file_is_gone_answers_404_not_500(
    api, strategies_dir, models_dir, store_bars
):
    op_id = start(api).json()["operation_id"]
    finish(api, op_id)
    model = TrainedModel.objects.get()
    for path in models_dir.rglob("*.pt"):
        path.unlink()
    resp = api.get(f"/api/v1/training/models/{model.pk}/download")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "nope"}, "strategy"),
        ({"strategy": "../../etc/passwd"}, "strategy"),
        ({"strategy": "test_small", "timeframes": ["7h"]}, "timeframes"),
        ({"strategy": "test_small", "symbols": ["eur usd"]}, "symbols"),
        ({"strategy": "test_small", "start": "yesterday"}, "start"),
        ({"strategy": "test_small", "start": "2018-01-01", "end": "2017-01-01"}, "end"),
        ({"strategy": "test_small", "execution_mode": "cloud"}, "execution_mode"),
        ({"strategy": "test_small", "seed": -1}, "seed"),
    ],
)
def test_bad_start_requests_are_400_naming_the_field(api, strategies_dir, body, field):
    resp = api.post("/api/v1/training/runs/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["error"]["details"]


def test_starting_an_invalid_strategy_is_400_with_the_schema_path(api, strategies_dir):
    resp = api.post("/api/v1/training/runs/", {"strategy": "broken"}, format="json")
    assert resp.status_code == 400
    details = resp.json()["error"]["details"]
    assert details["indicators.rsi_14.period"] == ["must be an integer ≥ 2"]


def test_require_gpu_without_a_gpu_is_503_with_the_reason(api, strategies_dir, monkeypatch):
    # "Without a GPU" on every machine, a GPU one included.
    monkeypatch.setattr(
        "hostagents.health._gpu", {"available": False, "device_name": None, "device_count": 0}
    )
    resp = api.post(
        "/api/v1/training/runs/", {"strategy": "test_small", "require_gpu": True}, format="json"
    )
    assert resp.status_code == 503
    assert "GPU" in resp.json()["error"]["message"]


def test_missing_data_fails_the_operation_saying_what_and_where(
    api, strategies_dir, models_dir, store_bars
):
    op_id = start(api, symbols=["GBPUSD"]).json()["operation_id"]
    done = finish(api, op_id)
    assert done["status"] == "failed"
    assert done["error_message"] == (
        "TrainingDataError: loading bars GBPUSD 1h: no bars stored for GBPUSD 1h"
    )


def test_too_short_a_range_fails_the_operation_with_the_reason(
    api, strategies_dir, models_dir, store_bars
):
    op_id = start(api, start="2017-03-01", end="2017-03-02").json()["operation_id"]
    done = finish(api, op_id)
    assert done["status"] == "failed"
    assert "not enough" in done["error_message"]
    assert not list(models_dir.rglob("*.pt"))


def test_strategies_are_listed_with_their_validity(api, strategies_dir):
    body = api.get("/api/v1/training/strategies/").json()
    by_name = {s["name"]: s for s in body["strategies"]}
    assert by_name["test_small"]["valid"] is True
    assert by_name["test_small"]["timeframes"] == ["1h"]
    assert by_name["broken"]["valid"] is False
    assert "indicators.rsi_14.period" in by_name["broken"]["errors"]


def test_strategy_detail_has_the_resolved_config_and_source(api, strategies_dir):
    body = api.get("/api/v1/training/strategies/test_small/").json()
    assert body["config"]["model_inputs"][0] == "rsi_zone.low"
    assert "name: test_small" in body["yaml"]
    assert api.get("/api/v1/training/strategies/nope/").status_code == 404


def test_shipped_strategies_are_served_by_default(api):
    names = {s["name"] for s in api.get("/api/v1/training/strategies/").json()["strategies"]}
    assert {"rsi_macd_zigzag", "trend_adx_forward", "multi_timeframe_momentum"} <= names


def test_validation_endpoint_returns_the_config_or_400_by_path(api, strategies_dir):
    good = (strategies_dir / "test_small.yaml").read_text()
    resp = api.post("/api/v1/training/strategies/validate/", {"yaml": good}, format="json")
    assert resp.status_code == 200
    assert resp.json()["valid"] is True
    bad = good.replace("period: 14", "period: 1", 1)
    resp = api.post("/api/v1/training/strategies/validate/", {"yaml": bad}, format="json")
    assert resp.status_code == 400
    assert resp.json()["error"]["details"] == {
        "indicators.rsi_14.period": ["must be an integer ≥ 2"]
    }
    resp = api.post("/api/v1/training/strategies/validate/", {"yaml": "a: [b\n"}, format="json")
    assert resp.status_code == 400
    assert "invalid YAML" in resp.json()["error"]["message"]


def test_the_api_requires_authentication(client):
    assert client.get("/api/v1/training/models/").status_code == 401
    assert client.post("/api/v1/training/runs/", {}).status_code == 401
