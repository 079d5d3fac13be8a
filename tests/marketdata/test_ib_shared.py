"""One IB connection and one pacing limiter per endpoint per process, shared by every load:
the real ib_async client against the in-process IB Gateway simulator."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from marketdata import loader, store
from marketdata.gateways.ib import close_shared_connections
from marketdata.pacing import PacingRules
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.marketdata.conftest import wait_terminal
from tests.marketdata.test_loader_ib import START, load, source_bars

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def ib_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ktrdr-ib")]


def test_gateways_of_one_endpoint_share_the_connection_and_the_pacing_limiter(
    settings, simulator_factory
):
    sim = simulator_factory()
    settings.KTRDR = {**settings.KTRDR, "IB_PACING": {}}
    first, second = loader.open_gateway("ib"), loader.open_gateway("ib")
    assert first.connection is second.connection
    assert loader._pacing_for(first) is loader._pacing_for(second)
    # Opening a gateway connects nothing: the connection opens on the first request.
    assert sim.stats.connections == 0
    other = simulator_factory()  # settings now point at another endpoint
    third = loader.open_gateway("ib")
    assert third.connection is not first.connection
    assert loader._pacing_for(third) is not loader._pacing_for(first)
    assert other.port != sim.port


def test_two_concurrent_loads_share_one_connection_and_never_break_ibs_pacing(
    settings, simulator_factory, monkeypatch
):
    # The simulator enforces short windows; ours are the same rules with a margin. Each load
    # alone would stay inside them; two loads with a limiter each would not.
    sim = simulator_factory(
        pacing=PacingRules(
            max_requests=3,
            window_seconds=0.8,
            identical_interval=0.5,
            per_contract_max=2,
            per_contract_window=0.3,
        )
    )
    settings.KTRDR = {
        **settings.KTRDR,
        "LOCAL_WORKERS": 2,
        "IB_PACING": {
            "max_requests": 3,
            "window_seconds": 1.2,
            "identical_interval": 0.8,
            "per_contract_max": 2,
            "per_contract_window": 0.6,
            "margin": 0.02,
        },
    }
    limiters = []
    both_fetching = threading.Barrier(2, timeout=30)
    pacing_for = loader._pacing_for

    def recording(gateway):
        limiter = pacing_for(gateway)
        limiters.append((threading.get_ident(), limiter, gateway.connection))
        both_fetching.wait()  # both loads are connected and about to fetch: truly concurrent
        return limiter

    monkeypatch.setattr(loader, "_pacing_for", recording)
    ops = [load(symbol="EURUSD").operation_id, load(symbol="GBPUSD").operation_id]
    finals = [wait_terminal(op) for op in ops]

    assert [f.status for f in finals] == ["completed", "completed"], [
        f.error_message for f in finals
    ]
    assert sim.stats.pacing_violations == 0
    assert sim.stats.historical_requests == 8  # two loads of four monthly requests
    assert len({ident for ident, _, _ in limiters}) == 2  # two worker threads
    (_, limiter_a, conn_a), (_, limiter_b, conn_b) = limiters
    assert limiter_a is limiter_b
    assert conn_a is conn_b
    assert sim.stats.connections == 1  # one handshake for both loads
    assert sim.stats.max_open_connections == 1
    assert limiter_a.requests_sent == 8
    assert all(f.result_summary["segments_retried"] == [] for f in finals)
    assert sum(f.result_summary["pacing_wait_seconds"] for f in finals) > 0
    for symbol in ("EURUSD", "GBPUSD"):
        pd.testing.assert_frame_equal(store.read_bars(symbol, "1h"), source_bars(symbol))


def test_a_connection_dropped_between_loads_is_reopened_by_the_next_load(simulator_factory):
    sim = simulator_factory()
    first = wait_terminal(load(end="2024-02-01").operation_id)
    assert first.status == "completed", first.error_message
    assert sim.stats.connections == 1
    connection = loader.open_gateway("ib").connection
    assert connection.is_connected()

    assert sim.drop_connections() == 1
    deadline = time.monotonic() + 5
    while connection.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not connection.is_connected()

    second = wait_terminal(load(start="2024-02-01").operation_id)
    assert second.status == "completed", second.error_message
    assert sim.stats.connections == 2
    assert second.result_summary["reconnects"] == 1
    assert second.result_summary["segments_retried"] == []
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), source_bars())


def test_an_idle_connection_that_no_longer_answers_fails_the_probe_and_is_replaced(
    settings, simulator_factory
):
    sim = simulator_factory()
    first = wait_terminal(load(end="2024-02-01").operation_id)
    assert first.status == "completed", first.error_message
    connection = loader.open_gateway("ib").connection
    probes_before = connection.probes

    # Half-open: the socket stays up, so isConnected() still says yes; only a probe can tell.
    assert sim.silence_connections() == 1
    settings.KTRDR = {**settings.KTRDR, "IB_CONNECT_TIMEOUT": 0.5}  # the probe's timeout
    connection.probe_after = 0.1
    time.sleep(0.15)
    assert connection.is_connected()

    second = wait_terminal(load(start="2024-02-01").operation_id)
    assert second.status == "completed", second.error_message
    assert connection.probes > probes_before
    assert sim.stats.connections == 2
    assert second.result_summary["reconnects"] == 1
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), source_bars())


def test_cancel_while_waiting_for_a_slow_ib_answer_stops_within_the_request(
    simulator_factory, api, user
):
    # An answer IB would give only after far longer than the test waits for the end: the
    # load can end in time only if the cancel cut the wait short.
    sim = simulator_factory(response_delay=600.0)
    op = load(end="2024-02-01", user=user)  # users cancel their own operations
    deadline = time.monotonic() + 30
    while sim.stats.historical_requests < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    response = api.post(f"/api/v1/operations/{op.operation_id}/cancel/", {"reason": "test"})
    assert response.status_code == 202
    final = wait_terminal(op.operation_id)
    assert final.status == "cancelled"
    assert final.result_summary["stopped_at"].startswith("segment 1/")
    # The abandoned request was cancelled at IB, and the shared connection stays usable.
    deadline = time.monotonic() + 5
    while sim.stats.historical_cancels < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.stats.historical_cancels == 1
    sim.response_delay = 0.0
    # (Another range: the same request again within 15 s would break IB's pacing.)
    again = wait_terminal(load(start="2024-02-01", end="2024-03-01").operation_id)
    assert again.status == "completed", again.error_message
    assert again.result_summary["segments_failed"] == [], again.result_summary
    assert sim.stats.connections == 1


def test_closing_the_shared_connections_disconnects_and_stops_their_threads(simulator_factory):
    sim = simulator_factory()
    gateway = loader.open_gateway("ib")
    gateway.connect()
    assert sim.stats.open_connections == 1
    assert any(t.is_alive() for t in ib_threads())
    close_shared_connections()
    assert not gateway.connection.thread.is_alive()
    deadline = time.monotonic() + 5
    while sim.stats.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.stats.open_connections == 0


def test_the_connection_is_closed_cleanly_at_interpreter_exit(simulator_factory):
    sim = simulator_factory()
    script = (
        "from marketdata.gateways.ib import shared_connection\n"
        f"c = shared_connection('127.0.0.1', {sim.port}, 31)\n"
        "c.ensure_connected()\n"
        "assert c.is_connected()\n"
        "print('connected', flush=True)\n"
        # No close(): the atexit hook must disconnect and stop the loop thread.
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "connected" in done.stdout  # and it exited by itself (the run's timeout is a guard)
    deadline = time.monotonic() + 5
    while sim.stats.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.stats.connections == 1
    assert sim.stats.open_connections == 0


def test_direct_gateway_without_a_shared_connection_owns_and_closes_its_own(simulator_factory):
    from marketdata.gateways.ib import IBGateway
    from marketdata.symbols import parse_symbol

    sim = simulator_factory()
    gateway = IBGateway(host="127.0.0.1", port=sim.port, client_id=41, request_timeout=5)
    bars = gateway.fetch_bars(
        parse_symbol("EURUSD"),
        TIMEFRAMES["1h"],
        pd.Timestamp(START, tz="UTC"),
        pd.Timestamp("2024-01-10", tz="UTC"),
    )
    expected = generate_bars(
        "EURUSD",
        TIMEFRAMES["1h"],
        pd.Timestamp(START, tz="UTC"),
        pd.Timestamp("2024-01-10", tz="UTC"),
    )
    pd.testing.assert_frame_equal(bars, expected)
    gateway.close()
    assert not gateway.connection.thread.is_alive()


def test_an_error_for_one_request_reaches_only_the_load_that_made_it(simulator_factory):
    from marketdata.gateways.base import UnknownSymbol
    from marketdata.symbols import parse_symbol

    simulator_factory(response_delay=0.5)
    slow, other = loader.open_gateway("ib"), loader.open_gateway("ib")
    start, end = pd.Timestamp(START, tz="UTC"), pd.Timestamp("2024-01-10", tz="UTC")
    slow.qualify(parse_symbol("EURUSD"))
    result: dict[str, object] = {}

    def fetch() -> None:
        try:
            result["bars"] = slow.fetch_bars(parse_symbol("EURUSD"), TIMEFRAMES["1h"], start, end)
        except Exception as exc:  # pragma: no cover - the failure is asserted below
            result["error"] = exc

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(0.1)  # the historical request is in flight on the shared connection
    with pytest.raises(UnknownSymbol, match="IB error 200"):
        other.qualify(parse_symbol("ZZZZ"))
    thread.join(10)
    assert "error" not in result, result.get("error")
    pd.testing.assert_frame_equal(
        result["bars"], generate_bars("EURUSD", TIMEFRAMES["1h"], start, end)
    )
