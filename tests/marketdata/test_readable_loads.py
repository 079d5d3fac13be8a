"""A data load's page as a researcher reads it: source-specific details only for that source (IB's
pacing budget on IB loads alone), parameters as dates and fields, the outcome in one line, and a
load with gaps in the warning colour, not the failure one."""

from __future__ import annotations

import re

import pytest

from marketdata import loader, services, store
from marketdata.gateways.base import TransientError
from tests.fakes.marketdata_gateway import FakeBarGateway
from tests.marketdata.conftest import wait_terminal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def _live(page: str) -> str:
    return page.split('id="operation-live"', 1)[1].split("</section>", 1)[0]


def test_a_synthetic_load_page_shows_no_ib_pacing_and_says_what_it_loaded(logged_in, data_dir):
    op = services.data_load_start(
        symbol="SPY", timeframe="1d", start="2023-01-01", end="2023-06-01", source="synthetic"
    )
    final = wait_terminal(op.operation_id)
    assert final.status == "completed", final.error_message

    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()

    assert "pacing" not in page.lower()
    assert "pacing" not in final.progress["context"]
    assert "{'" not in page
    assert "<dt>Start</dt><dd>2023-01-01</dd>" in page
    assert "<dt>Source</dt><dd>synthetic</dd>" in page
    series = len(store.read_index("SPY", "1d"))
    received = final.result_summary["bars_received"]
    outcome = re.search(r'id="operation-outcome">([^<]*)<', page).group(1)
    assert outcome.startswith("Completed in ")
    assert outcome.endswith(
        f": {received:,} bars received, {received:,} new; series now {series:,} bars"
    )
    assert "saved; the series has" not in _live(page)


def test_an_ib_load_page_shows_the_ib_pacing_budget(logged_in, settings, simulator_factory):
    simulator_factory()
    # Pacing on (the fast test knobs switch it off): the budget is what this test is about.
    settings.KTRDR = {**settings.KTRDR, "IB_PACING": {}}
    op = services.data_load_start(
        symbol="EURUSD", timeframe="1h", start="2024-01-01", end="2024-03-01", source="ib"
    )
    final = wait_terminal(op.operation_id)
    assert final.status == "completed", final.error_message

    live = _live(logged_in.get(f"/operations/{op.operation_id}/").content.decode())

    assert re.search(r"IB pacing budget \d+/\d+ per 10 min", live)


def test_a_load_with_gaps_reads_as_a_warning_not_as_a_failure(monkeypatch, logged_in, data_dir):
    # Segment 2 fails on all four attempts (fetch calls 2..5); the others load.
    gateway = FakeBarGateway(failures={n: TransientError("HMDS farm down") for n in range(2, 6)})
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    op = services.data_load_start(
        symbol="EURUSD", timeframe="1h", start="2024-01-01", end="2024-05-01", mode="full"
    )
    final = wait_terminal(op.operation_id)
    assert final.status == "completed"

    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    listing = logged_in.get("/operations/").content.decode()

    # Completed is green, a gap is a warning: red is for what failed.
    assert '<span class="badge warning">completed with gaps</span>' in page
    assert 'class="badge failed">completed with gaps' not in page
    assert '<span class="badge warning" title="some ranges could not be loaded' in listing
    outcome = re.search(r'id="operation-outcome">([^<]*)<', page).group(1)
    assert outcome.startswith("Completed in ")
    assert ": with gaps (1 segment failed); " in outcome
