"""The loader with a scripted gateway: retries, failed segments, no-data ranges, periodic saves,
the pacing-wait phase and cancellation during waits."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from marketdata import loader, store
from marketdata.gateways.base import (
    InvalidRequest,
    NoData,
    PacingViolation,
    TransientError,
    UnknownSymbol,
)
from marketdata.progress import DataLoadingProgressBridge
from marketdata.services import validate_load_params
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from operations.cancellation import CancellationToken, OperationCancelled
from operations.local import WorkContext
from tests.fakes.marketdata_gateway import FakeBarGateway

pytestmark = pytest.mark.django_db


class RecordingBridge(DataLoadingProgressBridge):
    __slots__ = ("messages", "phases")

    def __init__(self) -> None:
        super().__init__(symbol="EURUSD", timeframe="1h", mode="full", source="ib")
        self.messages: list[str] = []
        self.phases: list[str] = []

    def update(self, **kw) -> None:
        super().update(**kw)
        if kw.get("message"):
            self.messages.append(kw["message"])
        if kw.get("phase"):
            self.phases.append(kw["phase"])


def run_with(monkeypatch, gateway, *, start="2024-01-01", end="2024-05-01", token=None):
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    metadata = validate_load_params(
        symbol="EURUSD", timeframe="1h", start=start, end=end, mode="full", source="synthetic"
    )
    ctx = WorkContext("op_test", metadata, RecordingBridge(), token or CancellationToken())
    return ctx, loader.run_data_load(ctx)


def test_a_segment_that_keeps_failing_is_reported_and_the_load_goes_on(monkeypatch, data_dir):
    # Segment 2 fails on every attempt (calls 2..5); the other segments load.
    gateway = FakeBarGateway(failures={n: TransientError("farm down") for n in range(2, 6)})
    _, summary = run_with(monkeypatch, gateway)
    assert summary["segments_failed"] == [1]
    assert summary["segments_retried"] == [1]
    failed = summary["segments"][1]
    assert (failed["status"], failed["attempts"], failed["error"]) == ("failed", 4, "farm down")
    assert all(s["status"] == "ok" for i, s in enumerate(summary["segments"]) if i != 1)
    assert summary["bars_received"] == len(store.read_bars("EURUSD", "1h"))
    assert gateway.closed


def test_invalid_request_fails_the_segment_without_retrying(monkeypatch, data_dir):
    gateway = FakeBarGateway(failures={1: InvalidRequest("IB error 321: bad")})
    _, summary = run_with(monkeypatch, gateway)
    assert summary["segments"][0]["attempts"] == 1
    assert summary["segments_failed"] == [0]


def test_no_data_answers_are_listed_as_ranges_not_errors(monkeypatch, data_dir):
    gateway = FakeBarGateway(failures={3: NoData("HMDS query returned no data")})
    _, summary = run_with(monkeypatch, gateway)
    assert summary["segments"][2]["status"] == "no_data"
    assert summary["no_data_ranges"][0]["start"] == summary["segments"][2]["start"]
    assert summary["segments_failed"] == []


def test_fatal_error_ends_the_load_but_keeps_the_segments_already_fetched(
    settings, monkeypatch, data_dir
):
    settings.KTRDR = {**settings.KTRDR, "DATA_LOAD_SAVE_EVERY": 1}
    gateway = FakeBarGateway(failures={4: UnknownSymbol("IB error 200: gone")})
    with pytest.raises(loader.DataLoadError, match="IB error 200"):
        run_with(monkeypatch, gateway)
    stored = store.read_bars("EURUSD", "1h")
    assert stored.index[-1] < gateway.calls[3][0]
    assert len(stored) > 1000  # three one-month segments


def test_pacing_violation_waits_the_pacing_backoff_before_retrying(settings, monkeypatch, data_dir):
    settings.KTRDR = {**settings.KTRDR, "IB_PACING_BACKOFF": 0.3}
    gateway = FakeBarGateway(failures={2: PacingViolation("IB error 162: pacing violation")})
    ctx, summary = run_with(monkeypatch, gateway)
    assert summary["segments_retried"] == [1]
    assert any("retry 2/4 in 0.3 s" in m for m in ctx.bridge.messages)


def test_pacing_wait_is_a_visible_phase_with_its_end_time(settings, monkeypatch, data_dir):
    settings.KTRDR = {
        **settings.KTRDR,
        "IB_PACING": {"per_contract_max": 1, "per_contract_window": 0.2, "margin": 0.02},
    }
    gateway = FakeBarGateway(needs_pacing=True)
    ctx, summary = run_with(monkeypatch, gateway, end="2024-03-01")
    assert "waiting for IB pacing window" in ctx.bridge.phases
    waits = [m for m in ctx.bridge.messages if m.startswith("waiting for IB pacing window until")]
    assert waits
    assert len(waits[0].rsplit(" ", 1)[1]) == len("14:03:10")
    assert summary["pacing_wait_seconds"] > 0


def test_cancel_during_a_pacing_wait_stops_promptly_and_saves(settings, monkeypatch, data_dir):
    settings.KTRDR = {**settings.KTRDR, "IB_PACING": {"max_requests": 2, "window_seconds": 600}}
    token = CancellationToken()
    # The third request would wait 10 minutes for the window; the cancel comes 0.3 s into it.
    timer = threading.Timer(0.3, token.cancel, args=("test",))
    gateway = FakeBarGateway(needs_pacing=True, on_fetch=lambda n: n == 2 and timer.start())
    with pytest.raises(OperationCancelled) as exc:
        run_with(monkeypatch, gateway, token=token)  # ends only if the cancel cut the wait short
    assert "waiting for IB pacing window" in exc.value.stop_point
    assert exc.value.partial_result["bars_saved"] == len(store.read_bars("EURUSD", "1h")) > 0


def test_local_mode_fetches_nothing_and_reports_coverage(monkeypatch, data_dir):
    gateway = FakeBarGateway()
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    metadata = validate_load_params(
        symbol="EURUSD",
        timeframe="1h",
        start="2024-01-01",
        end="2024-02-01",
        mode="local",
    )
    summary = loader.run_data_load(
        WorkContext("op", metadata, RecordingBridge(), CancellationToken())
    )
    assert gateway.calls == []
    assert summary["bars_in_range"] == 0
    assert summary["bars_expected_in_range"] > 500
    with pytest.raises(store.SeriesNotFound):
        store.read_bars("EURUSD", "1h")
    assert pd.Timestamp(summary["end"]) > pd.Timestamp(summary["start"])


def test_a_load_into_a_series_of_another_source_reports_counts_and_warns(monkeypatch, data_dir):
    held = generate_bars(
        "EURUSD", TIMEFRAMES["1h"], pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-15", tz="UTC"),
    )  # fmt: skip
    store.write_bars("EURUSD", "1h", held, source="csv")
    _, summary = run_with(monkeypatch, FakeBarGateway(), start="2024-01-01", end="2024-02-01")
    added = summary["bars_added"]
    assert added > 0
    assert (summary["bars_replaced"], summary["bars_unchanged"]) == (0, 0)
    assert summary["warnings"] == [
        f"this series holds csv bars; {added} synthetic bars were merged in "
        f"({added} added, 0 replaced)"
    ]
