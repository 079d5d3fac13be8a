"""Market-data pages: list with forms, series page with its price chart over a chosen range,
form posts; the polled fragments of the list and a series page (ETag/304, stop after a load)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketdata import store, views
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from operations.models import Operation, OperationStatus
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


POLL = {"HTTP_HX_REQUEST": "true"}


def _chart_rows(html: str) -> list[list]:
    block = re.search(r'<script id="price-bars" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def test_series_page_hands_the_price_chart_its_bars_as_data(logged_in, stored):
    response = logged_in.get("/data/AAPL/1d/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="chart-price"' in html
    assert "uPlot.iife.min.js" in html
    rows = _chart_rows(html)
    # The newest bars of the series, at most CHART_BARS, as [unix seconds, open, high, low, close].
    assert len(rows) == min(len(stored), views.CHART_BARS)
    last = stored.iloc[-1]
    assert rows[-1] == [
        int(stored.index[-1].timestamp()),
        last["open"],
        last["high"],
        last["low"],
        last["close"],
    ]
    assert f"{len(stored):,}" in html


def test_the_chart_shows_only_the_chosen_range(logged_in, stored):
    response = logged_in.get("/data/AAPL/1d/", {"start": "2022-03-01", "end": "2022-04-01"})
    html = response.content.decode()
    assert response.status_code == 200
    rows = _chart_rows(html)
    expected = stored.loc["2022-03-01":"2022-03-31"]
    assert len(rows) == len(expected) > 0
    lo = pd.Timestamp("2022-03-01", tz="UTC").timestamp()
    hi = pd.Timestamp("2022-04-01", tz="UTC").timestamp()
    assert all(lo <= r[0] < hi for r in rows)
    # The form keeps the range; the table lists the newest bars of it.
    assert 'name="start" value="2022-03-01"' in html
    assert expected.index[-1].strftime("%Y-%m-%d") in html


def test_only_the_bars_of_the_range_are_read(logged_in, stored, monkeypatch):
    calls = []
    real = store._read_range

    def spy(path, lo, hi, limit=None):
        frame, total = real(path, lo, hi, limit)
        calls.append((lo, hi, limit, len(frame)))
        return frame, total

    monkeypatch.setattr(store, "_read_range", spy)
    logged_in.get("/data/AAPL/1d/", {"start": "2023-06-01T00:00:00Z", "end": "2023-07-01"})
    assert calls == [
        (
            pd.Timestamp("2023-06-01", tz="UTC").value,
            pd.Timestamp("2023-07-01", tz="UTC").value,
            views.CHART_BARS,
            len(stored.loc["2023-06-01":"2023-06-30"]),
        )
    ]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "yesterday-ish"}, "start", "not a date"),
        ({"end": "2022-13-45"}, "end", "not a date"),
        ({"start": "2022-05-01", "end": "2022-04-01"}, "end", "after start"),
        ({"start": "2022-05-01", "end": "2022-05-01"}, "end", "after start"),
        ({"start": "2" * 41}, "start", "longer than"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(logged_in, stored, params, field, words):
    response = logged_in.get("/data/AAPL/1d/", params)
    html = response.content.decode()
    assert response.status_code == 400
    error = re.search(r'<p class="flash error" id="range-error">(.*?)</p>', html, re.S).group(1)
    assert f"<strong>{field}</strong>" in error
    assert words in error
    assert 'id="chart-price"' not in html


def test_a_range_without_bars_says_so(logged_in, stored):
    response = logged_in.get("/data/AAPL/1d/", {"start": "2030-01-01"})
    assert response.status_code == 200
    assert 'id="no-bars"' in response.content.decode()


def _running_load(symbol: str, timeframe: str) -> Operation:
    return Operation.objects.create(
        operation_id=f"op_data_load_test_{symbol}_{timeframe}",
        operation_type="data_load",
        status=OperationStatus.RUNNING,
        metadata={"symbol": symbol, "timeframe": timeframe},
    )


def test_a_series_page_polls_only_while_a_load_of_it_runs(logged_in, stored):
    idle = logged_in.get("/data/AAPL/1d/").content.decode()
    live = re.search(r'<section id="series-live"[^>]*>', idle).group(0)
    assert "data-poll-url" not in live
    op = _running_load("AAPL", "1d")
    _running_load("SPY", "1d")  # another series' load does not make this page poll
    page = logged_in.get("/data/AAPL/1d/").content.decode()
    live = re.search(r'<section id="series-live"[^>]*>', page).group(0)
    assert 'data-poll-url="/data/AAPL/1d/"' in live
    assert f'id="series-load-{op.operation_id}"' in page
    assert "series-load-op_data_load_test_SPY_1d" not in page
    etag = re.search(r'data-etag="([^"]+)"', live).group(1)

    # A poll: the fragment alone, with its ETag; the same ETag back gets 304.
    poll = logged_in.get("/data/AAPL/1d/", HTTP_HX_TARGET="series-live", **POLL)
    assert poll.status_code == 200
    assert poll["ETag"] == etag.replace("&quot;", '"')
    body = poll.content.decode()
    assert body.lstrip().startswith('<section id="series-live"')
    assert 'id="chart-price"' not in body
    unchanged = logged_in.get(
        "/data/AAPL/1d/", HTTP_HX_TARGET="series-live", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL
    )
    assert unchanged.status_code == 304
    assert unchanged.content == b""

    # Bars arrive: the count and coverage grow, a new ETag.
    more = generate_bars(
        "AAPL",
        TIMEFRAMES["1d"],
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-03-01", tz="UTC"),
    )
    store.write_bars("AAPL", "1d", more, source="synthetic")
    grown = logged_in.get(
        "/data/AAPL/1d/", HTTP_HX_TARGET="series-live", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL
    )
    assert grown.status_code == 200
    assert grown["ETag"] != poll["ETag"]
    bars = re.search(r'id="series-bars">([^<]*)<', grown.content.decode()).group(1)
    assert bars == f"{len(stored) + len(more.loc['2024-01-01':]):,}"

    # The load ends: the fragment has no poll URL (the poller stops) and says so.
    Operation.objects.filter(pk=op.pk).update(status=OperationStatus.COMPLETED)
    ended = logged_in.get(
        "/data/AAPL/1d/", HTTP_HX_TARGET="series-live", HTTP_IF_NONE_MATCH=grown["ETag"], **POLL
    )
    assert ended.status_code == 200
    html = ended.content.decode()
    assert "data-poll-url" not in html
    assert 'id="series-load-ended"' in html


def test_the_series_list_is_a_polled_table_with_an_etag(logged_in, stored):
    page = logged_in.get("/data/").content.decode()
    assert re.search(r'<section class="card" id="series-table"[^>]*data-poll-url="/data/"', page)
    poll = logged_in.get("/data/", HTTP_HX_TARGET="series-table", **POLL)
    assert poll.status_code == 200
    assert poll.content.decode().lstrip().startswith('<section class="card" id="series-table"')
    assert 'id="load-form"' not in poll.content.decode()
    same = logged_in.get(
        "/data/", HTTP_HX_TARGET="series-table", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL
    )
    assert same.status_code == 304
    # A new series (a load elsewhere) changes the answer; so does a load starting.
    store.write_bars("SPY", "1d", generate_bars(
        "SPY", TIMEFRAMES["1d"], pd.Timestamp("2023-01-02", tz="UTC"),
        pd.Timestamp("2023-02-01", tz="UTC")), source="synthetic")  # fmt: skip
    changed = logged_in.get(
        "/data/", HTTP_HX_TARGET="series-table", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL
    )
    assert changed.status_code == 200
    assert "SPY 1d" in changed.content.decode()
    op = _running_load("SPY", "1d")
    loading = logged_in.get(
        "/data/", HTTP_HX_TARGET="series-table", HTTP_IF_NONE_MATCH=changed["ETag"], **POLL
    )
    assert loading.status_code == 200
    assert op.operation_id in loading.content.decode()


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
    # The page came from the form's POST URL; its table still polls the list.
    assert re.search(r'id="series-table"[^>]*data-poll-url="/data/"', html)


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
