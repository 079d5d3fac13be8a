"""What the pages say about work on agents, as a researcher reads it: an agent's error as a
sentence with the raw detail folded away, an IB load's bar counts as the backend's store holds
them after the merge, and no ETA from a snapshot nobody can refresh."""

from __future__ import annotations

import re
import signal

import pandas as pd
import pytest

from hostagents import services as agent_services
from marketdata import store
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.hostagents.conftest import free_port, wait_for
from tests.hostagents.test_data_remote import ib_simulator  # noqa: F401 (a fixture)
from tests.hostagents.test_remote import follow, get_op, start_remote_countdown

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page_client(client, api):
    client.force_login(api.user)
    return client


def _live(page: str) -> str:
    return page.split('id="operation-live"', 1)[1].split("</section>", 1)[0]


def test_an_unreachable_agent_reads_as_a_sentence_with_the_raw_error_folded_away(
    backend_settings, page_client
):
    agent_services.agent_add(name="gone", base_url=f"http://127.0.0.1:{free_port()}")

    page = page_client.get("/agents/").content.decode()

    row = page.split('id="agent-gone"', 1)[1].split("</tr>", 1)[0]
    assert "Nothing answers at its address (connection refused)" in row
    sentence, folded = row.split('<details class="raw">', 1)
    # The raw transport error only inside <details>.
    assert "HTTPConnectionPool" not in sentence
    assert "Max retries" not in sentence
    assert "Connection refused" in folded or "connection refused" in folded.lower()


def test_an_ib_load_on_an_agent_shows_the_backend_series_after_the_merge(
    backend_settings,
    api,
    page_client,
    agent_factory,
    ib_simulator,  # noqa: F811
    tmp_path,
):
    backend_settings.KTRDR = {
        **backend_settings.KTRDR,
        "DATA_DIR": tmp_path / "data",
        "IB_HOST": "",
    }
    # The backend already holds two months the agent does not: its series is the larger one.
    h1 = TIMEFRAMES["1h"]
    earlier = generate_bars(
        "EURUSD", h1, pd.Timestamp("2021-01-04", tz="UTC"), pd.Timestamp("2021-03-01", tz="UTC")
    )
    store.write_bars("EURUSD", "1h", earlier, source="ib")
    ib_agent = agent_factory(
        "ibpages",
        roles="ib",
        env={"KTRDR_IB_HOST": "127.0.0.1", "KTRDR_IB_PORT": str(ib_simulator)},
    )
    agent_services.agent_add(name="ib1", base_url=ib_agent.url)
    response = api.post(
        "/api/v1/data/loads/",
        {"symbol": "EURUSD", "timeframe": "1h", "start": "2021-03-01", "end": "2021-03-04",
         "source": "ib"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    operation_id = response.json()["operation_id"]
    final, _ = follow(api, operation_id, timeout=90)
    assert final["status"] == "completed", final
    fetched = final["result_summary"]["bars_received"]
    backend_series = len(store.read_index("EURUSD", "1h"))
    assert backend_series > fetched > 0

    page = page_client.get(f"/operations/{operation_id}/").content.decode()

    bars = re.search(r'id="data-load-bars">([^<]*)<', page).group(1)
    assert bars.endswith(f"series now {backend_series:,}")
    assert f"<dt>Fetched by agent ib1</dt><dd>{fetched:,} of" in page
    outcome = re.search(r'id="operation-outcome">([^<]*)<', page).group(1)
    assert outcome.endswith(
        f": {fetched:,} bars fetched by the agent, {fetched:,} new; "
        f"series now {backend_series:,} bars"
    )
    assert f"series now {fetched:,}" not in page
    assert "<dt>Runs on</dt><dd>agent <strong>ib1</strong> (auto mode: it has the ib role)" in page
    listing = page_client.get("/operations/").content.decode()
    assert f"series now {backend_series:,} bars" in listing


def test_no_eta_is_shown_while_the_agent_does_not_answer(
    backend_settings, api, page_client, agent_factory
):
    paused = agent_factory("paused", roles="training")
    agent_services.agent_add(name="p1", base_url=paused.url)
    started = start_remote_countdown(api, "p1", steps=400, step_seconds=0.1)
    op_id = started["operation_id"]
    wait_for(
        lambda: get_op(api, op_id, force_refresh="true")["progress"]["eta_seconds"] is not None
    )
    live = _live(page_client.get(f"/operations/{op_id}/").content.decode())
    assert 'class="eta">ETA ' in live

    paused.signal(signal.SIGSTOP)
    try:
        body = get_op(api, op_id, force_refresh="true")
        assert body["freshness"]["stale"]
        live = _live(page_client.get(f"/operations/{op_id}/").content.decode())
        assert "ETA" not in live
        assert "showing the last snapshot" in live
    finally:
        paused.signal(signal.SIGCONT)
    api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "done"}, format="json")
    assert follow(api, op_id, timeout=60)[0]["status"] == "cancelled"
