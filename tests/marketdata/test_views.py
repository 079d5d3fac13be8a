"""Market-data pages: list with forms, series page with the SVG chart, form posts."""

from __future__ import annotations

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketdata import store
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.marketdata.conftest import wait_terminal

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def stored(data_dir):
    frame = generate_bars(
        "AAPL",
        TIMEFRAMES["1d"],
        pd.Timestamp("2020-01-01", tz="UTC"),
        pd.Timestamp("2024-01-01", tz="UTC"),
    )
    store.write_bars("AAPL", "1d", frame, source="synthetic")
    return frame


def test_pages_need_login(client, data_dir):
    response = client.get("/data/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_series_list_shows_series_and_both_forms(logged_in, stored):
    response = logged_in.get("/data/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "AAPL 1d" in html
    assert 'id="load-form"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "csrfmiddlewaretoken" in html


def test_series_page_draws_an_inline_svg_price_chart(logged_in, stored):
    response = logged_in.get("/data/AAPL/1d/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html
    assert "<polyline" in html
    assert f"{len(stored):,}" in html


def test_unknown_series_page_is_404(logged_in, data_dir):
    assert logged_in.get("/data/MSFT/1d/").status_code == 404
    assert logged_in.get("/data/MSFT/9x/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_load_form_starts_an_operation_and_redirects_to_it(logged_in, data_dir):
    response = logged_in.post(
        "/data/loads/",
        {
            "symbol": "SPY",
            "timeframe": "1d",
            "start": "2023-01-01",
            "end": "2023-06-01",
            "mode": "tail",
            "source": "synthetic",
        },
    )
    assert response.status_code == 302
    operation_id = response["Location"].rstrip("/").split("/")[-1]
    assert wait_terminal(operation_id).status == "completed"
    page = logged_in.get(response["Location"]).content.decode()
    assert 'id="data-load-panel"' in page
    assert 'id="data-load-segments"' in page


def test_load_form_with_bad_input_shows_the_error_and_keeps_the_form(logged_in, data_dir):
    response = logged_in.post(
        "/data/loads/", {"symbol": "SPY", "timeframe": "2h", "source": "synthetic"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "unsupported timeframe" in html
    assert 'value="SPY"' in html


def test_csv_upload_form_imports_and_redirects_to_the_series(logged_in, data_dir):
    csv = (
        b"timestamp,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n"
        b"2024-01-03,1.5,2,1,1.2,5\n"
    )
    response = logged_in.post(
        "/data/imports/",
        {"symbol": "MSFT", "timeframe": "1d", "file": SimpleUploadedFile("m.csv", csv)},
    )
    assert response.status_code == 302
    assert response["Location"] == "/data/MSFT/1d/"
    assert len(store.read_bars("MSFT", "1d")) == 2


def test_csv_upload_form_with_a_bad_file_shows_what_and_where(logged_in, data_dir):
    csv = b"timestamp,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n2024-01-02,1,2,0.5,1.5\n"
    response = logged_in.post(
        "/data/imports/",
        {"symbol": "MSFT", "timeframe": "1d", "file": SimpleUploadedFile("m.csv", csv)},
    )
    assert response.status_code == 400
    assert "line 3: duplicate timestamp" in response.content.decode()
