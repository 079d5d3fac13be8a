"""CSV imports from a hostile user, through the API, the upload form and `import_bars`: every bad
file is a 400 (or a CommandError) naming `file`, never a 500; big files are refused unread."""

from __future__ import annotations

import gzip
import io

import pytest
from django.core.files import utils as file_utils
from django.core.management import CommandError, call_command

from marketdata import store

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
