"""Baselines, warnings and weights_sha256 where figures are shown: the operation page, the models
list, the model page, the API and the `train` command — through a real run each."""

from __future__ import annotations

import copy
import io
import re

import pytest
import yaml
from django.core.management import call_command

from operations.local import local_runs
from tests.training.conftest import SMALL_STRATEGY
from training.artifacts import load_artifact, weights_sha256
from training.models import TrainedModel
from training.selectors import trained_model_file

pytestmark = pytest.mark.django_db(transaction=True)


def test_pages_and_api_show_baselines_lifts_warnings_and_the_weights_digest(
    logged_in, api, strategies_dir, models_dir, store_bars
):
    resp = logged_in.post(
        "/training/strategies/test_small/train/", {"symbols": "EURUSD", "timeframes": "1h"}
    )
    op_url = resp["Location"]
    assert local_runs.wait_idle(timeout=60)
    model = TrainedModel.objects.get()
    test = model.metrics["test"]

    # The model row: its weights digest is that of the file's state dict.
    bundle = load_artifact(trained_model_file(model))
    assert model.weights_sha256 == weights_sha256(bundle["state_dict"])
    assert len(model.weights_sha256) == 64

    # API: the model's metrics carry every split's baselines; warnings are a list of dicts.
    body = api.get(f"/api/v1/training/models/{model.pk}/").json()
    assert body["weights_sha256"] == model.weights_sha256
    assert isinstance(body["warnings"], list)
    for split in ("train", "validation", "test"):
        figures = body["metrics"][split]
        for key in ("majority_rate", "prior_log_loss", "accuracy_lift", "log_loss_lift"):
            assert isinstance(figures[key], float)
        assert figures["loss_class_weighted"] is True
        assert set(body["metrics"]["reports"][split]["per_class"]) == {"BUY", "HOLD", "SELL"}
    op_id = op_url.rstrip("/").rsplit("/", 1)[1]
    op = api.get(f"/api/v1/operations/{op_id}/").json()
    summary = op.get("result_summary") or op.get("result") or {}
    assert summary["metrics"]["test"]["majority_rate"] == test["majority_rate"]
    assert summary["warnings"] == body["warnings"]

    # Pages: the baselines table on the operation and model pages, columns in the list.
    majority = f"{100 * test['majority_rate']:.1f} %"
    lift = f"{100 * test['accuracy_lift']:+.1f} pp"
    for page in (logged_in.get(op_url), logged_in.get(f"/training/models/{model.pk}/")):
        html = page.content.decode()
        row = html.split('id="baseline-test"', 1)[1].split("</tr>", 1)[0]
        assert f"<td>{majority} ({test['majority_class']})</td>" in row
        assert f"<td>{lift}</td>" in row
        assert f"<td>{test['log_loss']:.4f}</td>" in row
        assert f"<td>{test['prior_log_loss']:.4f}</td>" in row
        assert "class-weighted loss" in html
        assert "log-loss (unweighted)" in html
        assert 'id="classes-validation"' in html
        assert 'id="classes-train"' in html
    detail = logged_in.get(f"/training/models/{model.pk}/").content.decode()
    assert model.weights_sha256 in detail
    listing = logged_in.get("/training/models/").content.decode()
    row = listing.split(f'id="model-{model.pk}"', 1)[1].split("</tr>", 1)[0]
    assert f"<td>{majority}</td>" in row
    assert f"<td>{lift}</td>" in row
    assert f"<td>{test['log_loss']:.4f}</td>" in row
    assert (
        "<th>Test log-loss</th><th>Log-loss lift</th><th>Test loss (class-weighted)</th>" in listing
    )


def test_a_degenerate_run_shows_its_warnings_on_the_pages_and_in_the_api(
    logged_in, api, settings, strategies_dir, models_dir, store_bars
):
    # A zigzag of 1.2 % on six months of EURUSD: few BUY/SELL rows per split.
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["name"] = "test_sparse"
    raw["labels"] = {"type": "zigzag", "threshold": 0.012}
    (strategies_dir / "test_sparse.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    settings.KTRDR = {**settings.KTRDR, "TRAINING_MIN_CLASS_SAMPLES": 1000}
    resp = logged_in.post("/training/strategies/test_sparse/train/", {})
    assert local_runs.wait_idle(timeout=60)
    model = TrainedModel.objects.get()
    codes = {w["code"] for w in model.warnings}
    assert "few_samples" in codes
    body = api.get(f"/api/v1/training/models/{model.pk}/").json()
    assert {w["code"] for w in body["warnings"]} == codes
    assert all(set(w) == {"code", "message", "detail"} for w in body["warnings"])
    for page in (logged_in.get(resp["Location"]), logged_in.get(f"/training/models/{model.pk}/")):
        html = page.content.decode()
        assert 'id="training-warnings"' in html
        assert 'data-code="few_samples"' in html
    outcome = re.search(
        r'id="operation-outcome">([^<]*)<', logged_in.get(resp["Location"]).content.decode()
    )
    assert re.search(r"\d+ warnings?", outcome.group(1))


def test_the_train_command_prints_every_split_against_its_baselines(
    strategies_dir, models_dir, store_bars
):
    out = io.StringIO()
    call_command("train", "test_small", stdout=out)
    text = out.getvalue()
    model = TrainedModel.objects.get()
    assert "majority" in text
    assert "prior" in text
    assert "class-weighted loss" in text
    for split in ("train", "validation", "test"):
        figures = model.metrics[split]
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{split:<11}"))
        assert f"{figures['majority_rate']:.2%}" in line
        assert f"{figures['prior_log_loss']:.4f}" in line
        assert f"{figures['log_loss_lift']:+.4f}" in line
    assert "test confusion (rows true, columns predicted):" in text
