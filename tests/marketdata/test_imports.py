"""CSV imports from a hostile user, through the API, the upload form and `import_bars`: every bad
file is a 400 (or a CommandError) naming `file`, never a 500; big files are refused unread."""

from __future__ import annotations

import gzip
import io

import pandas as pd
import pytest
from django.core.files import utils as file_utils
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from marketdata import services, store
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.marketdata.conftest import EURUSD_CSV
from tests.shared_data import require_shared

pytestmark = pytest.mark.django_db

IMPORTS = "/api/v1/data/imports/"
HEADER = "timestamp,open,high,low,close,volume\n"
OUT_OF_RANGE = {
    "iso-1500": "2024-01-01,1,2,0.5,1.5,1\n1500-01-06,1,2,0.5,1.5,1\n",
    "iso-2263": "2024-01-01,1,2,0.5,1.5,1\n2263-01-06,1,2,0.5,1.5,1\n",
    "epoch-ms": "1704067200000,1,2,0.5,1.5,1\n99999999999999,1,2,0.5,1.5,1\n",
}


def csv_days(start: str, days: int, close: float = 1.5) -> bytes:
    rows = [HEADER]
    for day in range(days):
        rows.append(f"2024-01-{int(start) + day:02d},1,2,0.5,{close},10\n")
    return "".join(rows).encode()


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def _file(content: bytes, name: str = "bars.csv") -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def api_upload(api, content: bytes, *, symbol="MSFT", timeframe="1d", name="bars.csv", **extra):
    body = {"file": _file(content, name), "symbol": symbol, "timeframe": timeframe, **extra}
    return api.post(IMPORTS, body, format="multipart")


def form_upload(client, content: bytes, *, symbol="MSFT", timeframe="1d", **extra):
    body = {"file": _file(content), "symbol": symbol, "timeframe": timeframe, **extra}
    return client.post("/data/imports/", body)


@pytest.mark.parametrize("rows", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_api_timestamps_outside_pandas_range_are_a_400_naming_file(api, data_dir, rows):
    response = api_upload(api, (HEADER + rows).encode())
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["details"]) == ["file"]
    assert "line 3: timestamp" in error["message"]
    assert "outside the years 1900-2199" in error["message"]
    assert not store.series_path("MSFT", "1d").exists()


@pytest.mark.parametrize("rows", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_form_timestamps_outside_pandas_range_show_the_message(logged_in, data_dir, rows):
    response = form_upload(logged_in, (HEADER + rows).encode())
    assert response.status_code == 400
    assert "outside the years 1900-2199" in response.content.decode()


@pytest.mark.parametrize("rows", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_import_bars_timestamps_outside_pandas_range_are_a_command_error(data_dir, tmp_path, rows):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(CommandError, match="outside the years 1900-2199"):
        call_command("import_bars", str(path), "--symbol", "MSFT", "--timeframe", "1d")


def test_api_pre_1900_yyyymmdd_is_refused_not_read_as_1970(api, data_dir):
    response = api_upload(api, f"{HEADER}15000106,1,2,0.5,1.5,1\n15000107,1,2,0.5,1.5,1\n".encode())
    assert response.status_code == 400
    assert "'15000106' is 1500-01-06" in response.json()["error"]["message"]
    assert not store.series_path("MSFT", "1d").exists()


def test_api_negative_epochs_off_the_grid_are_refused(api, data_dir):
    content = b"time,open,high,low,close\n-7201,1,2,0.5,1.5\n-3601,1,2,0.5,1.5\n"
    response = api_upload(api, content, symbol="EURUSD", timeframe="1h")
    assert response.status_code == 400
    assert (
        "line 2: timestamp 1969-12-31T21:59:59+00:00 is off the 1h grid"
        in (response.json()["error"]["message"])
    )


def test_import_bars_reads_a_gzipped_csv(data_dir, tmp_path):
    path = tmp_path / "bars.csv.gz"
    path.write_bytes(gzip.compress(csv_days("02", 3)))
    out = io.StringIO()
    call_command("import_bars", str(path), "--symbol", "MSFT", "--timeframe", "1d", stdout=out)
    assert "3 bars read, 3 new" in out.getvalue()
    assert len(store.read_bars("MSFT", "1d")) == 3


def test_a_gzip_bomb_is_refused_past_the_upload_limit(api, settings, data_dir, tmp_path):
    settings.KTRDR = {**settings.KTRDR, "CSV_UPLOAD_MAX_BYTES": 100_000}
    bomb = gzip.compress(csv_days("02", 3) + b"\n" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    response = api_upload(api, bomb, name="bars.csv.gz")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "decompressed, the file is more than 100,000 bytes" in message
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(bomb)
    with pytest.raises(CommandError, match="more than 100,000 bytes"):
        call_command("import_bars", str(path), "--symbol", "MSFT", "--timeframe", "1d")
    assert not store.series_path("MSFT", "1d").exists()


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """Every read() of an uploaded file on the server side (Django's File proxy)."""
    seen: list[int] = []
    real = file_utils.FileProxyMixin.read

    def spy(self):
        inner = real.fget(self)

        def read(*args):
            seen.append(len(args))
            return inner(*args)

        return read

    monkeypatch.setattr(file_utils.FileProxyMixin, "read", property(spy))
    return seen


def test_form_refuses_an_upload_over_the_limit_without_reading_it(
    logged_in, settings, data_dir, reads
):
    settings.KTRDR = {**settings.KTRDR, "CSV_UPLOAD_MAX_BYTES": 1000}
    response = form_upload(logged_in, csv_days("02", 20) + b"\n" * 2000)
    assert response.status_code == 400
    assert "the limit is 1,000" in response.content.decode()
    assert reads == []
    assert not store.series_path("MSFT", "1d").exists()


def test_api_refuses_an_upload_over_the_limit_without_reading_it(api, settings, data_dir, reads):
    settings.KTRDR = {**settings.KTRDR, "CSV_UPLOAD_MAX_BYTES": 1000}
    response = api_upload(api, csv_days("02", 20) + b"\n" * 2000)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["file"]
    assert reads == []


# --- conflicts, provenance and warnings ---------------------------------------------------------
def frame_csv(frame, factor: float = 1.0) -> bytes:
    rows = [HEADER]
    for ts, bar in frame.iterrows():
        values = [float(bar[c]) * factor for c in ("open", "high", "low", "close")]
        values.append(float(bar["volume"]))
        rows.append(f"{ts.isoformat()},{','.join(repr(v) for v in values)}\n")
    return "".join(rows).encode()


@pytest.fixture
def synthetic_aapl(data_dir):
    frame = generate_bars(
        "AAPL", TIMEFRAMES["1d"], pd.Timestamp("2023-01-01", tz="UTC"),
        pd.Timestamp("2023-03-01", tz="UTC"),
    )  # fmt: skip
    store.write_bars("AAPL", "1d", frame, source="synthetic")
    return frame


def test_api_import_of_differing_bars_is_a_409_and_changes_nothing(api, synthetic_aapl):
    doubled = frame_csv(synthetic_aapl.iloc[5:10], factor=2)
    response = api_upload(api, doubled, symbol="AAPL")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    first = synthetic_aapl.index[5].isoformat()
    assert error["code"] == "conflict"
    assert error["message"].startswith(
        f"bars.csv: 5 incoming bar(s) differ from the bars stored for AAPL 1d at the same "
        f"timestamps, the first at {first}"
    )
    assert "on_conflict=keep" in error["message"]
    assert (error["details"]["conflicting_bars"], error["details"]["first_conflict"]) == (5, first)
    pd.testing.assert_frame_equal(store.read_bars("AAPL", "1d"), synthetic_aapl)
    series = api.get("/api/v1/data/series/?symbol=AAPL").json()["series"][0]
    assert (series["source"], series["sources"]) == ("synthetic", ["synthetic"])


def test_api_import_replace_and_keep_report_what_they_did(api, synthetic_aapl):
    doubled = synthetic_aapl.iloc[5:10]
    content = frame_csv(doubled, factor=2)
    kept = api_upload(api, content, symbol="AAPL", on_conflict="keep").json()
    assert {k: kept[k] for k in ("bars_added", "bars_replaced", "bars_kept", "bars_unchanged")} == {
        "bars_added": 0, "bars_replaced": 0, "bars_kept": 5, "bars_unchanged": 0,
    }  # fmt: skip
    assert kept["warnings"] == []
    response = api_upload(api, content, symbol="AAPL", on_conflict="replace")
    assert response.status_code == 201
    body = response.json()
    assert body["on_conflict"] == "replace"
    assert (body["bars_written"], body["bars_added"], body["bars_replaced"]) == (5, 0, 5)
    assert body["warnings"] == [
        "this series holds synthetic bars; 5 csv bars were merged in (0 added, 5 replaced)"
    ]
    assert store.read_bars("AAPL", "1d")["close"].iloc[5] == doubled["close"].iloc[0] * 2
    newest = body["series"]["provenance"][-1]
    assert (newest["source"], newest["bars"]) == ("csv", 5)
    assert newest["start"] == doubled.index[0].isoformat()
    assert newest["end"] == doubled.index[-1].isoformat()
    listed = api.get("/api/v1/data/series/?symbol=AAPL").json()["series"][0]
    assert [p["source"] for p in listed["provenance"]] == ["synthetic", "csv"]


def test_api_on_conflict_is_an_enum_in_the_schema_and_checked(api, user, synthetic_aapl):
    response = api_upload(api, frame_csv(synthetic_aapl.iloc[:2]), symbol="AAPL",
                          on_conflict="overwrite")  # fmt: skip
    assert response.status_code == 400
    assert "on_conflict" in response.json()["error"]["details"]
    # The schema as a script reads it: with a token (it is not a DRF view a forced login reaches).
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    schema = reader.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    body = schema["paths"]["/api/v1/data/imports/"]["post"]["requestBody"]["content"]
    prop = body["multipart/form-data"]["schema"]
    if "$ref" in prop:
        prop = schema["components"]["schemas"][prop["$ref"].rsplit("/", 1)[1]]
    field = prop["properties"]["on_conflict"]
    if "$ref" in field or "allOf" in field:
        ref = field.get("$ref") or field["allOf"][0]["$ref"]
        field = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert field["enum"] == ["reject", "keep", "replace"]


def test_a_real_file_into_the_synthetic_demo_series_warns(api, data_dir):
    require_shared(EURUSD_CSV)
    services.seed_demo_data()
    response = api_upload(api, EURUSD_CSV.read_bytes(), symbol="EURUSD", timeframe="1h")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["warnings"] == [
        f"this series holds synthetic bars; {body['bars_added']} csv bars were merged in "
        f"({body['bars_added']} added, 0 replaced)"
    ]


def test_form_conflict_is_refused_with_the_choice_and_keep_shows_the_warning(
    logged_in, synthetic_aapl
):
    page = logged_in.get("/data/").content.decode()
    assert '<select name="on_conflict" id="on-conflict">' in page
    content = frame_csv(synthetic_aapl.iloc[5:10], factor=2) + b"2023-03-01,1,2,0.5,1.5,1\n"
    response = form_upload(logged_in, content, symbol="AAPL")
    assert response.status_code == 409
    html = response.content.decode()
    assert "5 incoming bar(s) differ from the bars stored for AAPL 1d" in html
    pd.testing.assert_frame_equal(store.read_bars("AAPL", "1d"), synthetic_aapl)
    response = form_upload(logged_in, content, symbol="AAPL", on_conflict="keep")
    assert response.status_code == 302
    html = logged_in.get(response["Location"]).content.decode()
    assert "1 new, 0 replaced, 5 kept as stored, 0 unchanged" in html
    assert "Warning: this series holds synthetic bars; 1 csv bars were merged in" in html
    assert 'id="provenance"' in html
    assert "2023-03-01T00:00:00+00:00" in html


def test_import_bars_on_conflict_option(synthetic_aapl, tmp_path):
    path = tmp_path / "doubled.csv"
    path.write_bytes(frame_csv(synthetic_aapl.iloc[5:10], factor=2))
    args = ["import_bars", str(path), "--symbol", "AAPL", "--timeframe", "1d"]
    with pytest.raises(CommandError, match=r"5 incoming bar\(s\) differ"):
        call_command(*args)
    out = io.StringIO()
    call_command(*args, "--on-conflict", "replace", stdout=out)
    assert "5 bars read, 0 new, 5 replaced, 0 kept as stored, 0 unchanged" in out.getvalue()
    assert "warning: this series holds synthetic bars; 5 csv bars were merged in" in out.getvalue()
    with pytest.raises(CommandError, match="invalid choice: 'overwrite'"):
        call_command(*args, "--on-conflict", "overwrite")
