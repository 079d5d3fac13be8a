"""Management commands: import_bars, load_data (follows the operation), ib_gateway_sim args."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from marketdata import services, store
from marketdata.models import BarSeries
from tests.marketdata.conftest import EURUSD_CSV
from tests.shared_data import require_shared


@pytest.mark.django_db
def test_import_bars_imports_the_real_eurusd_file_and_is_idempotent(data_dir):
    require_shared(EURUSD_CSV)
    out = io.StringIO()
    call_command("import_bars", str(EURUSD_CSV), "--symbol", "EURUSD", "--timeframe", "1h",
                 stdout=out)  # fmt: skip
    assert "74439 bars read, 74439 new" in out.getvalue()
    call_command("import_bars", str(EURUSD_CSV), "--symbol", "EURUSD", "--timeframe", "1h",
                 stdout=out)  # fmt: skip
    assert (
        "74439 bars read, 0 new, 0 replaced, 0 kept as stored, 74439 unchanged; the series has "
        "74439 bars"
    ) in out.getvalue()
    frame = store.read_bars("EURUSD", "1h")
    assert frame.index[0].isoformat() == "2007-01-01T21:00:00+00:00"
    assert frame.iloc[0].tolist() == [1.31927, 1.31955, 1.3187, 1.31935, 0.0]
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert row.sources == ["csv"]
    assert row.gap_summary["expected_gaps"] >= 613


@pytest.mark.django_db
def test_import_bars_refuses_a_bad_file_with_the_reason(data_dir, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,price\n2024,1\n")
    with pytest.raises(CommandError, match="no timestamp column"):
        call_command("import_bars", str(bad), "--symbol", "EURUSD", "--timeframe", "1h")
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "import_bars", str(tmp_path / "nope.csv"), "--symbol", "X", "--timeframe", "1h"
        )


@pytest.mark.django_db(transaction=True)
def test_load_data_follows_the_operation_to_completion(data_dir):
    out = io.StringIO()
    call_command("load_data", "AAPL", "1d", "--start", "2022-01-01", "--end", "2023-01-01",
                 "--mode", "full", stdout=out, stderr=io.StringIO())  # fmt: skip
    text = out.getvalue()
    assert "Started op_data_load_" in text
    assert "completed" in text
    assert len(store.read_bars("AAPL", "1d")) > 240


@pytest.mark.django_db
def test_load_data_with_bad_input_is_a_command_error(data_dir):
    with pytest.raises(CommandError, match="unsupported timeframe"):
        call_command("load_data", "AAPL", "2d")


@pytest.mark.django_db
def test_seed_demo_data_is_idempotent(data_dir):
    first = services.seed_demo_data()
    keys = {(s.symbol, s.timeframe) for s in first}
    assert {("EURUSD", "1h"), ("AAPL", "1d")} <= keys
    eurusd = next(s for s in first if s.symbol == "EURUSD")
    assert (eurusd.last_timestamp - eurusd.first_timestamp).days >= 700
    counts = {s.key: s.row_count for s in first}
    second = services.seed_demo_data()
    assert {s.key: s.row_count for s in second} == counts
    assert BarSeries.objects.count() == len(first)


def test_ib_gateway_sim_rejects_a_csv_without_symbol_and_timeframe(tmp_path):
    with pytest.raises(CommandError, match="--csv needs"):
        call_command("ib_gateway_sim", "--port", "0", "--csv", str(tmp_path / "x.csv"))


def test_ib_gateway_sim_command_serves_the_real_client(tmp_path):
    """The command as a user runs it: a subprocess the real ib_async client connects to."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from marketdata.gateways.ib import IBGateway
    from marketdata.symbols import parse_symbol

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "KTRDR_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "ib_gateway_sim", "--port", "0"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "IB Gateway simulator on" in line, line
        port = int(line.split(":")[1].split()[0])
        gateway = IBGateway(host="127.0.0.1", port=port, client_id=5, request_timeout=10)
        try:
            assert gateway.qualify(parse_symbol("AAPL")).sec_type == "STK"
        finally:
            gateway.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _load(*args: str) -> str:
    out = io.StringIO()
    call_command("load_data", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_seed_demo_names_the_demo_series(data_dir):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "Demo content of marketdata: EURUSD 1h, AAPL 1d, AAPL 1h, SPY 1d\n" in text
    assert "<BarSeries" not in text
    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert "Demo content of marketdata: EURUSD 1h, AAPL 1d, AAPL 1h, SPY 1d\n" in again.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_load_that_fetches_nothing_says_why(data_dir):
    services.seed_demo_data()
    last = BarSeries.objects.get(symbol="EURUSD", timeframe="1h").last_timestamp
    tail = _load("EURUSD", "1h", "--start", "2025-01-01", "--end", "2025-06-30", "--mode", "tail")
    assert "completed: 0 bars received" in tail
    assert (
        f"already up to date: the stored bars reach {last:%Y-%m-%d %H:%M} UTC, the requested "
        "range ends 2025-06-30 00:00 UTC"
    ) in tail
    full = _load("EURUSD", "1h", "--start", "2025-01-01", "--end", "2025-06-30", "--mode", "full")
    assert "already complete: every bar the market calendar expects between" in full
    local = _load("EURUSD", "1h", "--start", "2025-01-01", "--end", "2025-01-08", "--mode", "local")
    assert re.search(
        r"--mode local fetches nothing: \d+ bars stored between 2025-01-01 00:00 UTC and "
        r"2025-01-08 00:00 UTC, where the market calendar expects \d+",
        local,
    )


@pytest.mark.django_db(transaction=True)
def test_the_readme_load_example_loads_bars_on_a_seeded_install(data_dir):
    services.seed_demo_data()
    before = BarSeries.objects.get(symbol="EURUSD", timeframe="1h").row_count
    # README, "Market data": the example as written there.
    text = _load("EURUSD", "1h", "--start", "2024-01-01", "--mode", "backfill", "--source",
                 "synthetic")  # fmt: skip
    after = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert after.row_count > before
    assert f"{after.first_timestamp:%Y-%m}" == "2024-01"
    assert (
        f"completed: {after.row_count - before} bars received, {after.row_count - before} new"
        in text
    )
