"""IB metrics, through the real ib_async client against the in-process IB Gateway simulator:
requests by outcome, the pacing violations IB reported, our pacing waits, and the budget in use
read from the shared ledger at scrape time."""

from __future__ import annotations

import pytest

from marketdata import services
from marketdata.pacing import PacingRules
from tests.marketdata.conftest import wait_terminal
from tests.scrape import has, parse, value

pytestmark = pytest.mark.django_db(transaction=True)

SCRAPE_TOKEN = "ib-tests-scrape-token-0123456789"
START, END = "2024-01-01", "2024-05-01"  # 4 months of 1h bars: 4 requests of at most 1 M


@pytest.fixture
def scraping(settings):
    settings.KTRDR = {**settings.KTRDR, "METRICS_TOKEN": SCRAPE_TOKEN}


def scrape(client) -> dict:
    resp = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")
    assert resp.status_code == 200, resp.content[:300]
    return parse(resp.content)


def load():
    return services.data_load_start(
        symbol="EURUSD", timeframe="1h", start=START, end=END, mode="full", source="ib"
    )


def test_a_pacing_violation_ib_reports_is_counted(settings, simulator_factory, scraping, client):
    settings.KTRDR = {**settings.KTRDR, "IB_PACING_BACKOFF": 0.6}
    sim = simulator_factory(
        pacing=PacingRules(per_contract_max=2, per_contract_window=0.5, identical_interval=0.1)
    )
    before = scrape(client)
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ktrdr_ib_pacing_violations_total", request="historical_data") == (
        sim.stats.pacing_violations
    )
    assert sim.stats.pacing_violations >= 1
    assert moved(
        "ktrdr_ib_requests_total", request="historical_data", outcome="pacing_violation"
    ) == (sim.stats.pacing_violations)
    # Every historical request the simulator answered with bars, counted ok.
    assert moved("ktrdr_ib_requests_total", request="historical_data", outcome="ok") == (
        sim.stats.historical_requests - sim.stats.pacing_violations
    )
    assert moved("ktrdr_ib_requests_total", request="qualify", outcome="ok") >= 1
    # Our limiter is off in this test (IB_PACING False): no budget to show, no wait.
    assert not has(after, "ktrdr_ib_pacing_requests_in_window")
    assert moved("ktrdr_ib_pacing_waits_total") == 0


def test_our_pacing_waits_and_the_budget_in_use_are_counted(
    settings, simulator_factory, scraping, client
):
    simulator_factory(pacing=PacingRules(max_requests=3, window_seconds=0.8))
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
    before = scrape(client)
    op = wait_terminal(load().operation_id)
    assert op.status == "completed", op.error_message
    after = scrape(client)
    waits = value(after, "ktrdr_ib_pacing_waits_total") - value(
        before, "ktrdr_ib_pacing_waits_total"
    )
    waited = value(after, "ktrdr_ib_pacing_wait_seconds_total") - value(
        before, "ktrdr_ib_pacing_wait_seconds_total"
    )
    assert waits >= 1
    # The same seconds the load reports in its summary.
    assert waited == pytest.approx(op.result_summary["pacing_wait_seconds"], abs=1e-3)
    endpoint = f"127.0.0.1:{settings.KTRDR['IB_PORT']}"
    assert value(after, "ktrdr_ib_pacing_limit", endpoint=endpoint) == 3
    assert 0 <= value(after, "ktrdr_ib_pacing_requests_in_window", endpoint=endpoint) <= 3
    assert value(after, "ktrdr_collector_up", collector="ib_pacing") == 1
