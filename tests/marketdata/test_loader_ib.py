"""Data loads through the real ib_async client against the in-process IB Gateway simulator."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from marketdata import services, store
from marketdata.gateways import ib as ib_gateway
from marketdata.gateways.base import InvalidRequest, UnknownSymbol
from marketdata.gateways.ib import IBGateway
from marketdata.pacing import PacingRules
from marketdata.planner import plan_segments
from marketdata.symbols import parse_symbol
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES, IBDuration
from tests.marketdata.conftest import wait_terminal

pytestmark = pytest.mark.django_db(transaction=True)

H1 = TIMEFRAMES["1h"]
START, END = "2024-01-01", "2024-05-01"  # 4 months of 1h bars: 4 requests of at most 1 M


def source_bars(symbol: str = "EURUSD", start: str = START, end: str = END) -> pd.DataFrame:
    return generate_bars(symbol, H1, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))


def load(symbol: str = "EURUSD", **kw):
    params = {"timeframe": "1h", "start": START, "end": END, "mode": "full", "source": "ib"}
    params.update(kw)
    return services.data_load_start(symbol=symbol, **params)


def test_real_client_qualifies_and_reads_the_head_timestamp(simulator_factory):
    sim = simulator_factory()
    gateway = IBGateway(host="127.0.0.1", port=sim.port, client_id=21, request_timeout=5)
    try:
        info = gateway.qualify(parse_symbol("EURUSD"))
        assert (info.sec_type, info.exchange, info.currency) == ("CASH", "IDEALPRO", "USD")
        assert info.con_id > 0
        head = gateway.head_timestamp(parse_symbol("AAPL"), TIMEFRAMES["1d"])
        assert head == pd.Timestamp("2010-01-04", tz="UTC")
        with pytest.raises(UnknownSymbol, match="No security definition"):
            gateway.qualify(parse_symbol("ZZZZ"))
    finally:
        gateway.close()


def test_multi_segment_load_matches_the_source_bar_for_bar(simulator_factory):
    sim = simulator_factory()
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    summary = op.result_summary
    assert summary["segments_total"] == 4
    assert summary["segments_failed"] == []
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), source_bars())
    assert summary["bars_received"] == summary["bars_expected"] == len(source_bars())
    assert sim.stats.historical_requests == 4
    assert sim.stats.invalid_requests == 0


@pytest.mark.parametrize(
    ("symbol", "timeframe", "start"),
    [("EURUSD", "15m", "2023-01-01"), ("EURUSD", "4h", "2019-01-01"), ("AAPL", "1d", "2019-01-01")],
)
def test_plans_stay_within_ibs_durations_through_the_real_client(
    simulator_factory, symbol, timeframe, start
):
    # The simulator answers 321 to any duration longer than IB's for the bar size (1 W for
    # 15 mins, 1 M for 4 hours): a plan cut into 14- or 120-day requests would fail here.
    sim = simulator_factory(enforce_pacing=False)
    end = "2024-01-01"
    op = wait_terminal(load(symbol=symbol, timeframe=timeframe, start=start, end=end).operation_id)
    assert op.status == "completed", op.error_message
    summary = op.result_summary
    assert summary["segments_failed"] == []
    assert sim.stats.invalid_requests == 0
    tf = TIMEFRAMES[timeframe]
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    plan = plan_segments([(lo, hi)], tf, parse_symbol(symbol).asset_class)
    assert sim.stats.historical_requests == summary["segments_total"] == len(plan)
    if timeframe == "1d":
        assert len(plan) == 1  # one "5 Y" request
    pd.testing.assert_frame_equal(
        store.read_bars(symbol, timeframe), generate_bars(symbol, tf, lo, hi)
    )


def _fetch_two_weeks_of_15m(gateway: IBGateway, *, match: str) -> None:
    """Ask for two weeks of 15 mins bars in one request; it must be refused (`match`)."""
    try:
        with pytest.raises(InvalidRequest, match=match):
            gateway.fetch_bars(
                parse_symbol("EURUSD"),
                TIMEFRAMES["15m"],
                pd.Timestamp("2024-01-08", tz="UTC"),
                pd.Timestamp("2024-01-22", tz="UTC"),
            )
    finally:
        gateway.close()


def test_a_duration_longer_than_ib_allows_is_refused_with_321_through_the_real_client(
    simulator_factory, monkeypatch
):
    sim = simulator_factory()
    # What the old plans sent for 15 mins bars: two weeks.
    monkeypatch.setattr(ib_gateway, "ib_duration", lambda start, end, tf: IBDuration(14, "D"))
    gateway = IBGateway(host="127.0.0.1", port=sim.port, client_id=22, request_timeout=5)
    _fetch_two_weeks_of_15m(gateway, match="321")
    assert sim.stats.invalid_requests == 1
    assert "longer than IB allows for 15 mins bars (at most 1 W)" in sim.stats.errors_sent[-1][2]


def test_the_gateway_never_sends_a_span_longer_than_ib_allows(simulator_factory):
    sim = simulator_factory()
    gateway = IBGateway(host="127.0.0.1", port=sim.port, client_id=23, request_timeout=5)
    _fetch_two_weeks_of_15m(gateway, match="at most 1 W")
    assert sim.stats.historical_requests == 0


def test_pacing_violation_from_the_gateway_backs_off_and_the_load_finishes(
    settings, simulator_factory
):
    # The simulator's pacing is stricter than our (disabled) limiter: it answers error 162.
    # Backing off longer than its 0.5 s window lets the retry through (IB counts violating
    # requests too, so a shorter backoff would keep the window full).
    settings.KTRDR = {**settings.KTRDR, "IB_PACING_BACKOFF": 0.6}
    sim = simulator_factory(
        pacing=PacingRules(per_contract_max=2, per_contract_window=0.5, identical_interval=0.1)
    )
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    assert sim.stats.pacing_violations >= 1
    assert op.result_summary["segments_retried"]
    assert op.result_summary["segments_failed"] == []
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), source_bars())


def test_our_limiter_keeps_the_gateway_from_ever_seeing_a_pacing_violation(
    settings, simulator_factory
):
    gateway_rules = PacingRules(
        max_requests=3,
        window_seconds=0.8,
        identical_interval=0.5,
        per_contract_max=2,
        per_contract_window=0.3,
    )
    sim = simulator_factory(pacing=gateway_rules)
    # Ours: the same rules with a margin (we enforce them before the gateway does).
    settings.KTRDR = {
        **settings.KTRDR,
        "IB_PACING": {
            "max_requests": 3,
            "window_seconds": 0.9,
            "identical_interval": 0.6,
            "per_contract_max": 2,
            "per_contract_window": 0.4,
            "margin": 0.02,
        },
    }
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    assert sim.stats.pacing_violations == 0
    assert op.result_summary["pacing_wait_seconds"] > 0
    assert op.result_summary["segments_retried"] == []


def test_dropped_connection_mid_load_reconnects_without_duplicate_or_missing_bars(
    simulator_factory,
):
    sim = simulator_factory(drop_on_request=3)
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    assert sim.stats.drops == 1
    assert sim.stats.connections == 2
    assert op.result_summary["reconnects"] == 1
    assert op.result_summary["segments_retried"] == [2]
    stored = store.read_bars("EURUSD", "1h")
    assert not stored.index.duplicated().any()
    pd.testing.assert_frame_equal(stored, source_bars())


def test_unknown_symbol_fails_the_operation_with_ibs_reason(simulator_factory):
    simulator_factory()
    op = wait_terminal(load(symbol="ZZZZ").operation_id)
    assert op.status == "failed"
    assert "No security definition has been found" in op.error_message
    assert "IB error 200" in op.error_message


def test_range_before_the_head_timestamp_fails_with_a_clear_message(simulator_factory):
    simulator_factory()
    op = wait_terminal(load(symbol="TSLA", start="2011-01-01", end="2011-06-01").operation_id)
    assert op.status == "failed"
    assert "before the first data" in op.error_message


def test_progress_and_segment_metrics_are_readable_through_the_api_while_loading(
    simulator_factory, api
):
    simulator_factory(response_delay=0.15)
    op = load(start="2023-01-01", end="2024-01-01")  # 12 segments (one a month), ~2 s
    seen_running = []
    records: list[dict] = []
    cursor = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/operations/{op.operation_id}/").json()
        page = api.get(f"/api/v1/operations/{op.operation_id}/metrics/", {"cursor": cursor}).json()
        records += page["metrics"]
        assert page["new_cursor"] >= cursor
        cursor = page["new_cursor"]
        if body["status"] == "running" and 0 < body["progress"]["percentage"] < 100:
            seen_running.append(body["progress"])
        if body["status"] in {"completed", "failed", "cancelled"}:
            break
        time.sleep(0.1)
    records += api.get(f"/api/v1/operations/{op.operation_id}/metrics/", {"cursor": cursor}).json()[
        "metrics"
    ]
    assert body["status"] == "completed"
    assert seen_running, "never saw the load in progress"
    context = seen_running[-1]["context"]
    assert context["symbol"] == "EURUSD"
    assert context["timeframe"] == "1h"
    assert context["segments_total"] == 12
    assert [r["seq"] for r in records] == list(range(12))
    keys = {"seq", "kind", "recorded_at", "symbol", "timeframe", "segment_index",
            "segments_total", "start", "end", "bars_received", "attempts",
            "duration_seconds", "status"}  # fmt: skip
    assert all(set(r) == keys and r["kind"] == "segment" for r in records)
    assert [r["segment_index"] for r in records] == list(range(12))


def test_cancel_mid_load_ends_cancelled_and_keeps_what_was_fetched(simulator_factory, api, user):
    simulator_factory(response_delay=0.2)
    # Users cancel their own operations.
    op = load(start="2022-01-01", end="2024-01-01", user=user)  # 24 segments, ~5 s
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = api.get(f"/api/v1/operations/{op.operation_id}/metrics/").json()
        if len(page["metrics"]) >= 2:
            break
        time.sleep(0.05)
    response = api.post(f"/api/v1/operations/{op.operation_id}/cancel/", {"reason": "test"})
    assert response.status_code == 202
    final = wait_terminal(op.operation_id)
    assert final.status == "cancelled"
    summary = final.result_summary
    assert summary["stopped_at"].startswith(("before segment", "segment"))
    fetched = sum(s["bars_received"] for s in summary["segments"])
    assert 0 < fetched < len(source_bars(start="2022-01-01", end="2024-01-01"))
    stored = store.read_bars("EURUSD", "1h")
    assert len(stored) == fetched == summary["bars_saved"]
    pd.testing.assert_frame_equal(
        stored, source_bars(start="2022-01-01", end="2024-01-01").loc[stored.index]
    )


def test_a_cancelled_load_resumed_fetches_only_the_missing_segments(simulator_factory, api, user):
    # These tests run without our own pacing limiter (FAST_KNOBS), and the resume asks again
    # within seconds of the first load (with no limiter the simulator answered a burst of pacing
    # violations, each retry counted against it, as IB does). The simulator's pacing is off so
    # the count is the resume's plan alone.
    sim = simulator_factory(response_delay=0.2, enforce_pacing=False)
    op = load(start="2022-01-01", end="2024-01-01", user=user)  # 24 segments
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = api.get(f"/api/v1/operations/{op.operation_id}/metrics/").json()
        if len(page["metrics"]) >= 2:
            break
        time.sleep(0.05)
    api.post(f"/api/v1/operations/{op.operation_id}/cancel/", {"reason": "test"})
    first = wait_terminal(op.operation_id)
    assert first.status == "cancelled"
    done = sum(1 for s in first.result_summary["segments"] if s["status"] == "ok")
    assert 0 < done < 24
    asked_before = sim.stats.historical_requests

    response = api.post(f"/api/v1/operations/{op.operation_id}/resume/")
    assert response.status_code == 202, response.content
    second = wait_terminal(response.json()["operation_id"], timeout=120)
    assert second.status == "completed", second.error_message
    # Only the months the first load did not store were asked for.
    asked = sim.stats.historical_requests - asked_before
    assert asked == second.result_summary["segments_total"] == 24 - done
    pd.testing.assert_frame_equal(
        store.read_bars("EURUSD", "1h"), source_bars(start="2022-01-01", end="2024-01-01")
    )
