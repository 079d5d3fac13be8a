"""The bar store on a full or read-only disk: a clear 503 naming the path and the cause, the stored
series untouched; bar files follow the umask."""

from __future__ import annotations

import os
import stat
import subprocess

import pandas as pd
import pytest

from marketdata import store
from marketdata.store import StoreWriteError
from marketdata.synthetic import generate_bars
from marketdata.timeframes import get_timeframe
from tests.conftest import fill_up

pytestmark = pytest.mark.django_db(transaction=True)

CSV = "timestamp,open,high,low,close,volume\n" + "\n".join(
    f"2024-01-0{d} {h:02d}:00:00,1.1,1.2,1.0,1.15,100" for d in (2, 3) for h in range(24)
)


def bars(start: str, end: str) -> pd.DataFrame:
    tf = get_timeframe("1h")
    return generate_bars("EURUSD", tf, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))


@pytest.fixture
def disk_store(tmpfs, settings):
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmpfs / "data"}
    return tmpfs


def test_a_full_disk_refuses_the_write_naming_the_path_and_keeps_the_series(disk_store):
    store.write_bars("EURUSD", "1h", bars("2024-01-01", "2024-01-08"), source="synthetic")
    before = store.read_bars("EURUSD", "1h")
    fill_up(disk_store)

    with pytest.raises(StoreWriteError) as caught:
        store.write_bars("EURUSD", "1h", bars("2024-01-08", "2024-03-01"), source="synthetic")

    assert caught.value.status_code == 503
    assert str(store.series_path("EURUSD", "1h")) in caught.value.message
    assert "the disk is full" in caught.value.message
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), before)
    leftovers = [p.name for p in store.series_path("EURUSD", "1h").parent.iterdir()]
    assert not [n for n in leftovers if n.endswith(".tmp")]


def test_a_csv_import_onto_a_read_only_disk_is_a_503_in_the_api_and_a_message_on_the_page(
    disk_store, api, logged_in
):
    (disk_store / "data").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk_store)], check=True)
    upload = {"symbol": "EURUSD", "timeframe": "1h"}

    from django.core.files.uploadedfile import SimpleUploadedFile

    answer = api.post(
        "/api/v1/data/imports/",
        {**upload, "file": SimpleUploadedFile("bars.csv", CSV.encode(), "text/csv")},
        format="multipart",
    )
    page = logged_in.post(
        "/data/imports/",
        {**upload, "file": SimpleUploadedFile("bars.csv", CSV.encode(), "text/csv")},
    )

    assert answer.status_code == 503, answer.content
    assert "the file system is read-only" in answer.json()["error"]["message"]
    assert page.status_code == 503  # the form again, saying why
    assert "the file system is read-only" in page.content.decode()


def test_bar_files_follow_the_umask(settings, tmp_path):
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    store.write_bars("EURUSD", "1h", bars("2024-01-01", "2024-01-08"), source="synthetic")
    mode = stat.S_IMODE(store.series_path("EURUSD", "1h").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
