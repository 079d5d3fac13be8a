"""The evaluations page (start form, CSRF, login) and the evaluation panel of the operation
page: the lift chart, the aggregate with its interval and the fold table."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from evaluation import services
from operations.execution import operation_cancel
from operations.local import local_runs
from operations.models import Operation
from tests.evaluation.test_kind import wait_for_folds

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "strategy": "test_small",
    "start": "2017-01-01",
    "end": "2017-04-01",
    "folds": 3,
    "seeds": 2,
    "epochs": 2,
}


def test_the_operation_page_charts_the_lift_per_fold_and_lists_every_fold(
    logged_in, strategies_dir, stored_bars
):
    op = services.evaluation_start(body=BODY)
    assert local_runs.wait_idle(timeout=120)
    op = Operation.objects.get(pk=op.pk)
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    chart = re.search(r'id="chart-fold-lift" data-chart="([^"]+)"', html).group(1)
    config = json.loads(chart.replace("&quot;", '"'))
    assert config["x"] == "unit"
    assert config["series"][0]["key"] == "accuracy_lift"
    table = html[html.index('id="evaluation-folds"') :]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td>", table)
    assert rows == [(str(f), str(s)) for f in (1, 2, 3) for s in (3, 4)]
    first = op.result_summary["fold_results"][0]
    assert f"{first['test']['first'][:16]} to {first['test']['last'][:16]}" in table
    assert 'id="evaluation-aggregate"' in html
    interval = re.search(r'id="evaluation-interval">(.*?)</p>', html).group(1)
    assert "resamples of 3 folds" in interval
    assert "[" in interval
    # The outcome sentence and the labels of the kind's fields.
    assert "over 3 folds × 2 seeds" in html
    assert "Purge (rows before each test fold)" in html


def test_the_evaluations_page_starts_one_from_its_form_and_lists_it(
    logged_in, strategies_dir, stored_bars
):
    page = logged_in.get("/evaluations/")
    assert page.status_code == 200
    assert "<option>test_small</option>" in page.content.decode()
    answer = logged_in.post(
        "/evaluations/start/",
        {**{k: str(v) for k, v in BODY.items()}, "scheme": "rolling", "train_bars": "400"},
    )
    op = Operation.objects.get(operation_type="evaluation")
    assert answer.status_code == 302
    assert answer["Location"] == f"/operations/{op.operation_id}/"
    assert op.metadata["scheme"] == "rolling"
    assert op.metadata["seeds"] == [3, 4]
    assert local_runs.wait_idle(timeout=120)
    listed = logged_in.get("/evaluations/").content.decode()
    assert op.operation_id in listed
    assert "resamples of 3 folds" in listed


def test_a_bad_form_comes_back_with_a_message_naming_the_field(
    logged_in, strategies_dir, stored_bars
):
    answer = logged_in.post("/evaluations/start/", {**BODY, "folds": "40"}, follow=True)
    assert answer.status_code == 200
    assert "folds: folds must be between 2 and 20" in answer.content.decode()
    assert not Operation.objects.exists()


def test_the_form_needs_a_login_and_a_csrf_token(user, strategies_dir, stored_bars):
    anonymous = Client()
    assert anonymous.get("/evaluations/").status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/evaluations/start/", BODY).status_code == 403
    assert strict.get("/evaluations/start/").status_code == 405
    assert not Operation.objects.exists()


def test_a_running_evaluation_shows_its_fold_and_a_cancelled_one_its_finished_folds(
    logged_in, strategies_dir, stored_bars
):
    op = services.evaluation_start(body={**BODY, "strategy": "test_slow", "epochs": 40, "seeds": 1})
    wait_for_folds(op.operation_id, 1)
    running = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    assert re.search(r"fold [23] of 3 · seed 1 of 1", running)
    assert 'id="chart-fold-lift"' in running
    # The finished fold is a row of the live table (later ones are appended by the polls).
    live = running[running.index('id="evaluation-run-rows"') :]
    assert re.search(r"<tr><td>1</td><td>3</td><td>2017-01-\d\dT\d\d:00 to ", live)
    # A poll from cursor 0 hands the finished folds to the page's table and chart.
    poll = logged_in.get(
        f"/operations/{op.operation_id}/?cursor=0",
        headers={"HX-Request": "true", "HX-Target": "operation-live"},
    ).content.decode()
    assert 'hx-swap-oob="beforeend:#evaluation-run-rows"' in poll
    assert re.search(r"<tr><td>1</td><td>3</td>", poll)
    operation_cancel(operation_id=op.operation_id, reason="enough")
    assert local_runs.wait_idle(timeout=120)
    op = Operation.objects.get(pk=op.pk)
    assert op.status == "cancelled"
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    done = op.result_summary["units_done"]
    assert f"Cancelled after {done} of 3 runs: lift" in html
    table = html[html.index('id="evaluation-folds"') :]
    assert len(re.findall(r"<tr><td>\d+</td><td>\d+</td>", table)) == done
    assert "partial: " in html


def test_edit_and_run_opens_the_form_filled_with_the_request(logged_in, strategies_dir):
    page = logged_in.get(
        "/evaluations/?strategy=test_small&folds=4&scheme=rolling&train_bars=500&seeds=3%2C4"
    ).content.decode()
    assert "<option selected>test_small</option>" in page
    assert 'name="folds" inputmode="numeric" value="4"' in page
    assert "<option selected>rolling</option>" in page
    assert 'name="seeds" value="3,4"' in page
