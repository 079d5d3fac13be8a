"""Training pages: login, strategies, the start form, models, the operation panel; admin."""

from __future__ import annotations

import json
import re

import pytest

from operations.local import local_runs
from operations.models import OperationMetric
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path",
    ["/training/", "/training/strategies/test_small/", "/training/models/", "/training/models/1/"],
)
def test_pages_require_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp["Location"].startswith("/login/")


def test_strategy_list_shows_valid_and_invalid_strategies(logged_in, strategies_dir):
    page = logged_in.get("/training/").content.decode()
    assert 'id="strategy-test_small"' in page
    assert "invalid" in page
    assert "indicators.rsi_14.period" in page


def test_strategy_detail_has_a_csrf_protected_start_form(logged_in, strategies_dir):
    page = logged_in.get("/training/strategies/test_small/").content.decode()
    assert "csrfmiddlewaretoken" in page
    assert 'action="/training/strategies/test_small/train/"' in page
    assert logged_in.get("/training/strategies/nope/").status_code == 404
    assert logged_in.get("/training/strategies/..%2Fx/").status_code == 404


def test_the_start_form_launches_a_run_and_the_panel_shows_epochs_and_curves(
    logged_in, strategies_dir, models_dir, store_bars
):
    resp = logged_in.post(
        "/training/strategies/test_small/train/", {"symbols": "EURUSD", "timeframes": "1h"}
    )
    assert resp.status_code == 302
    op_url = resp["Location"]
    assert op_url.startswith("/operations/op_training_")
    assert local_runs.wait_idle(timeout=60)
    page = logged_in.get(op_url).content.decode()
    assert 'id="training-panel"' in page
    assert 'id="epoch-table"' in page
    # Two interactive charts, each with the points of every epoch the run had.
    assert page.count('<figure class="chart"') == 2
    data = re.search(
        r'id="chart-loss".*?<script type="application/json">(.*?)</script>', page, re.S
    )
    points = json.loads(data.group(1))
    epochs = OperationMetric.objects.filter(kind="epoch").count()
    assert epochs >= 1
    assert len(points) == epochs
    assert all(isinstance(p["train_loss"], float) for p in points)
    model = TrainedModel.objects.get()
    assert f"/training/models/{model.pk}/" in page

    models_page = logged_in.get("/training/models/").content.decode()
    assert f'id="model-{model.pk}"' in models_page
    detail = logged_in.get(f"/training/models/{model.pk}/").content.decode()
    assert 'id="download"' in detail
    assert model.sha256 in detail
    assert "Confusion matrix" in detail


def test_a_bad_form_comes_back_with_a_message_naming_the_field(logged_in, strategies_dir):
    resp = logged_in.post(
        "/training/strategies/test_small/train/", {"timeframes": "7h"}, follow=True
    )
    assert resp.status_code == 200
    assert "timeframes: unknown timeframe" in resp.content.decode()


def test_admin_lists_models(client, django_user_model, strategies_dir, models_dir, store_bars):
    from training import services

    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw-12345678")
    client.force_login(admin)
    services.training_start(strategy="test_small")
    assert local_runs.wait_idle(timeout=60)
    page = client.get("/admin/training/trainedmodel/")
    assert page.status_code == 200
    assert "test_small" in page.content.decode()
    assert client.get("/admin/training/trainedmodel/add/").status_code == 403


def test_start_form_suggests_dates_where_bars_are_stored(
    client, django_user_model, settings, tmp_path
):
    from marketdata.services import seed_demo_data

    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path}
    seed_demo_data()
    user = django_user_model.objects.create_user("dates", password="pw-dates-1")
    client.force_login(user)
    html = client.get("/training/strategies/rsi_macd_zigzag/").content.decode()
    # The shipped history (2016-2017) is not in the demo data: the form offers stored dates.
    assert 'value="2016-01-01"' not in html
    assert "is not stored; stored 1h bars cover" in html


def _model(version: int) -> TrainedModel:
    return TrainedModel.objects.create(
        strategy_name="test_small",
        config_hash="0" * 64,
        timeframe="1h",
        timeframes=["1h"],
        symbols=["EURUSD"],
        version=version,
        artifact_path=f"test_small/1h/v{version}.pt",
        size_bytes=1024,
        sha256="a" * 64,
    )


def test_the_models_list_is_polled_and_a_new_model_appears(logged_in, models_dir):
    first = _model(1)
    page = logged_in.get("/training/models/?strategy=test_small").content.decode()
    live = re.search(r'<div id="models-live"[^>]*>', page).group(0)
    assert 'data-poll-url="/training/models/?strategy=test_small"' in live
    poll_headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "models-live"}

    poll = logged_in.get("/training/models/", {"strategy": "test_small"}, **poll_headers)
    body = poll.content.decode()
    assert poll.status_code == 200
    assert body.lstrip().startswith('<div id="models-live"')
    assert "<h1>" not in body
    assert f'id="model-{first.pk}"' in body
    same = logged_in.get(
        "/training/models/",
        {"strategy": "test_small"},
        HTTP_IF_NONE_MATCH=poll["ETag"],
        **poll_headers,
    )
    assert same.status_code == 304

    second = _model(2)
    grown = logged_in.get(
        "/training/models/",
        {"strategy": "test_small"},
        HTTP_IF_NONE_MATCH=poll["ETag"],
        **poll_headers,
    )
    assert grown.status_code == 200
    assert f'id="model-{second.pk}"' in grown.content.decode()
    assert "2 models of test_small" in grown.content.decode()
