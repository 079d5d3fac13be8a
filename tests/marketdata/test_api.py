"""The data API: loads (202 + operation), series, capped bars, CSV upload; bad input → 400."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from marketdata import store
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.marketdata.conftest import EURUSD_CSV, wait_terminal
from tests.shared_data import require_shared

LOADS = "/api/v1/data/loads/"


@pytest.fixture
def eurusd_stored(data_dir, db):
    frame = generate_bars(
        "EURUSD",
        TIMEFRAMES["1h"],
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-04-01", tz="UTC"),
    )
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    return frame


@pytest.mark.django_db(transaction=True)
def test_post_load_answers_202_with_the_operation_and_the_load_completes(api, data_dir):
    response = api.post(
        LOADS,
        {
            "symbol": "eurusd",
            "timeframe": "1h",
            "start": "2024-01-01",
            "end": "2024-02-01",
            "mode": "full",
            "source": "synthetic",
        },
        format="json",
    )
    assert response.status_code == 202
    body = response.json()
    assert body["operation_type"] == "data_load"
    assert body["metadata"]["symbol"] == "EURUSD"
    assert body["metadata"]["placement"]["place"] == "local"
    op = wait_terminal(body["operation_id"])
    assert op.status == "completed"
    assert op.result_summary["bars_received"] == len(store.read_bars("EURUSD", "1h"))


def _future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"symbol": "EUR$USD"}, "symbol", "not a valid symbol"),
        ({"symbol": "ZZZZ"}, "symbol", "unknown symbol"),
        ({"symbol": "EURXYZ"}, "symbol", "not a known currency"),
        ({"timeframe": "7m"}, "timeframe", "unsupported timeframe"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "end", "not after start"),
        ({"start": _future(10), "end": _future(20)}, "start", "in the future"),
        ({"end": _future(30)}, "end", "in the future"),
        ({"start": "2001-01-01", "end": "2002-01-01"}, "end", "before the first data"),
        ({"start": "yesterday-ish"}, "start", "not a date"),
        ({"mode": "everything"}, "mode", "not one of"),
        ({"source": "bloomberg"}, "source", "not one of"),
        ({"source": "csv"}, "source", "imported"),
        ({"timeframe": "1m", "start": "2010-01-01", "end": "2024-01-01"}, "start", "IB requests"),
    ],
)
def test_bad_load_input_is_a_400_naming_the_field(api, data_dir, payload, field, text):
    body = {"symbol": "EURUSD", "timeframe": "1h", "start": "2024-01-01", "end": "2024-02-01",
            **payload}  # fmt: skip
    response = api.post(LOADS, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["details"], error
    assert text in error["message"]


def test_missing_fields_are_a_400_naming_them(api, data_dir):
    response = api.post(LOADS, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"symbol", "timeframe"}


def test_ib_load_without_an_ib_connection_is_a_503_saying_why(api, settings, data_dir):
    settings.KTRDR = {**settings.KTRDR, "IB_HOST": ""}
    response = api.post(LOADS, {"symbol": "AAPL", "timeframe": "1d", "source": "ib"}, format="json")
    assert response.status_code == 503
    assert "KTRDR_IB_HOST" in response.json()["error"]["message"]  # says what to configure


def test_api_needs_authentication(client, data_dir, db):
    assert client.get("/api/v1/data/series/").status_code in {401, 403}


def test_series_list_shows_coverage(api, eurusd_stored):
    body = api.get("/api/v1/data/series/").json()
    assert body["total"] == 1
    row = body["series"][0]
    assert (row["symbol"], row["timeframe"], row["row_count"]) == (
        "EURUSD",
        "1h",
        len(eurusd_stored),
    )
    assert row["first_timestamp"].startswith("2024-01-01")
    assert "unexpected_gaps" in row["gap_summary"]


def test_bars_in_range_come_back_in_order(api, eurusd_stored):
    body = api.get(
        "/api/v1/data/series/EURUSD/1h/", {"start": "2024-02-01", "end": "2024-02-02"}
    ).json()
    assert body["count"] == 24
    assert body["truncated"] is False
    assert body["bars"][0]["timestamp"] == "2024-02-01T00:00:00+00:00"
    first = eurusd_stored.loc["2024-02-01 00:00"]
    assert body["bars"][0]["close"] == first["close"]


def test_bars_are_capped_to_the_latest_and_page_backwards(api, eurusd_stored):
    body = api.get("/api/v1/data/series/EURUSD/1h/", {"limit": 100}).json()
    assert body["count"] == 100
    assert body["truncated"] is True
    assert body["total_in_range"] == len(eurusd_stored)
    assert body["bars"][-1]["timestamp"] == eurusd_stored.index[-1].isoformat()
    older = api.get(
        "/api/v1/data/series/EURUSD/1h/", {"limit": 100, "end": body["next_end"]}
    ).json()
    assert older["bars"][-1]["timestamp"] < body["bars"][0]["timestamp"]
    assert len({b["timestamp"] for b in older["bars"] + body["bars"]}) == 200


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/api/v1/data/series/EURUSD/1h/?limit=10001", 400, "limit"),
        ("/api/v1/data/series/EURUSD/1h/?start=nope", 400, "start"),
        ("/api/v1/data/series/EURUSD/1h/?start=2024-02-02&end=2024-02-01", 400, "end"),
        ("/api/v1/data/series/EURUSD/9h/", 400, "timeframe"),
        ("/api/v1/data/series/GBPUSD/1h/", 404, None),
    ],
)
def test_bad_bar_queries_are_clear_errors(api, eurusd_stored, url, status, field):
    response = api.get(url)
    assert response.status_code == status
    if field:
        assert field in response.json()["error"]["details"]


def _upload(api, content: bytes, symbol: str = "EURUSD", timeframe: str = "1h"):
    handle = io.BytesIO(content)
    handle.name = "bars.csv"
    return api.post(
        "/api/v1/data/imports/",
        {"file": handle, "symbol": symbol, "timeframe": timeframe},
        format="multipart",
    )


@pytest.mark.django_db
def test_csv_upload_of_the_real_eurusd_file_imports_cleanly(api, data_dir):
    require_shared(EURUSD_CSV)
    response = _upload(api, EURUSD_CSV.read_bytes())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["total"] == body["bars_written"] == 74_439
    assert body["series"]["first_timestamp"].startswith("2007-01-01T21:00:00")


@pytest.mark.django_db
def test_bad_csv_upload_is_a_400_saying_what_and_where_and_writes_nothing(api, data_dir):
    csv = (
        b"timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
        b"2024-01-02T11:00:00Z,1.5,1.4,1,1.2\n"
    )
    response = _upload(api, csv)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "file" in error["details"]
    assert "line 3" in error["message"]
    assert "high is below" in error["message"]
    assert not store.series_path("EURUSD", "1h").exists()
