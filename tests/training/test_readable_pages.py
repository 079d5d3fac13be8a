"""Training as a researcher reads it: one format per figure (accuracy as a percentage with one
decimal on the models list, the model page and the operation page), the outcome of a finished
run, parameters as fields, and an ETA only once an epoch has been measured."""

from __future__ import annotations

import re
import time

import pytest

from operations import selectors
from operations.local import local_runs
from tests.fakes.workers import wait_until
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


def _start(client, strategy: str) -> str:
    resp = client.post(
        f"/training/strategies/{strategy}/train/", {"symbols": "EURUSD", "timeframes": "1h"}
    )
    assert resp.status_code == 302
    return resp["Location"]


def test_accuracy_reads_the_same_on_the_models_list_the_model_page_and_the_operation(
    logged_in, strategies_dir, models_dir, store_bars
):
    op_url = _start(logged_in, "test_small")
    assert local_runs.wait_idle(timeout=60)
    model = TrainedModel.objects.get()
    shown = f"{100 * model.test_accuracy:.1f} %"

    models_page = logged_in.get("/training/models/").content.decode()
    row = models_page.split(f'id="model-{model.pk}"', 1)[1].split("</tr>", 1)[0]
    assert f"<td>{shown}</td>" in row
    detail = logged_in.get(f"/training/models/{model.pk}/").content.decode()
    assert f"<td>{shown}</td>" in detail
    op_page = logged_in.get(op_url).content.decode()
    assert f"<td>{shown}</td>" in op_page
    # The finished run says what it achieved, not its last phase message.
    outcome = re.search(r'id="operation-outcome">([^<]*)<', op_page).group(1)
    assert re.fullmatch(
        rf"Completed in [\d.]+ s: model {re.escape(str(model))} saved · test accuracy {shown} "
        rf"\(majority class [\d.]+ %, lift [+-][\d.]+ pp\)( · \d+ warnings?)?",
        outcome.replace("&#x27;", "'"),
    )
    assert "saving model" not in op_page.split('id="operation-live"', 1)[1].split("</section>")[0]
    # Parameters as labelled fields: no dict dump, no resolved strategy.
    assert "{'" not in op_page
    assert "<dt>Symbols</dt><dd>EURUSD</dd>" in op_page
    assert "<dt>Random seed</dt>" in op_page
    assert "strategy_config" not in op_page
    assert "this backend (local execution" in op_page
    # The API keeps the raw number.
    api = logged_in.get(f"/api/v1/operations/{op_url.rstrip('/').split('/')[-1]}/").json()
    assert api["result_summary"]["metrics"]["test"]["accuracy"] == pytest.approx(
        model.test_accuracy
    )


def test_an_eta_shows_once_an_epoch_is_measured_and_a_cancel_says_where_it_stopped(
    logged_in, strategies_dir, models_dir, store_bars
):
    op_url = _start(logged_in, "test_slow")
    operation_id = op_url.rstrip("/").split("/")[-1]

    def progress():
        return selectors.operation_get(operation_id=operation_id, force_refresh=True).progress

    # Before the first epoch finished no ETA is offered, whatever the phase.
    while not (p := progress()).get("context", {}).get("last_epoch"):
        if p.get("eta_seconds") is not None:
            assert p["context"].get("last_epoch")
        assert selectors.operation_get(operation_id=operation_id).is_active
        time.sleep(0.02)
    assert wait_until(lambda: progress().get("eta_seconds") is not None, timeout=30)
    page = logged_in.get(op_url).content.decode()
    live = page.split('id="operation-live"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'class="eta">ETA (\d+(\.\d)? s|\d+ min \d+ s|\d+ h \d+ min)<', live)
    assert "last_epoch" not in live
    assert "'kind'" not in live

    assert logged_in.post(f"{op_url}cancel/").status_code == 302
    assert local_runs.wait_idle(timeout=60)
    op = selectors.operation_get(operation_id=operation_id, force_refresh=True)
    assert op.status == "cancelled"
    done = op.result_summary["epochs_completed"]
    live = logged_in.get(op_url).content.decode().split('id="operation-live"', 1)[1]
    # A cancel writes the checkpoint of the last finished epoch, and the outcome says so.
    assert op.result_summary["checkpoint"]["epoch"] == done
    said = f"Cancelled after epoch {done} of 400 (no model saved; resumable from epoch {done})"
    assert f'id="operation-outcome">{said}<' in live
    assert "ETA" not in live.split("</section>", 1)[0]
