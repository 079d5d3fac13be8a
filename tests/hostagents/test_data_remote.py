"""Data loads on an agent: the same loader runs there, the bars come back as a verified artifact
and are merged into the backend's store."""

from __future__ import annotations

import pytest

from hostagents import services as agent_services
from hostagents.models import Artifact
from marketdata.services import data_load_start
from tests.hostagents.test_remote import all_metrics, follow

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_bars_loaded_on_an_agent_are_fetched_verified_and_merged_into_the_backend_store(
    backend_settings, api, agent, tmp_path
):
    from marketdata import store

    backend_settings.KTRDR = {**backend_settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    agent_services.agent_add(name="ib1", base_url=agent.url)

    op = data_load_start(
        symbol="GBPUSD",
        timeframe="1h",
        start="2020-01-06",
        end="2020-01-20",
        source="synthetic",
        execution_mode="agent",
        user=api.user,
    )
    final, _ = follow(api, op.operation_id, timeout=60)

    assert final["status"] == "completed", final
    assert final["location"]["executor"] == "agent"
    merged = final["result_summary"]["merged_into_backend"]
    assert merged["bars_added"] > 0
    bars = store.read_bars("GBPUSD", "1h", start="2020-01-06", end="2020-01-20")
    assert len(bars) == final["result_summary"]["bars_received"] > 0
    assert Artifact.objects.filter(operation_id=op.operation_id, name="bars.parquet").exists()
    segments = [m for m in all_metrics(api, op.operation_id) if m["kind"] == "segment"]
    assert segments
    assert {"symbol", "timeframe", "segment_index", "bars_received"} <= set(segments[0])


def test_a_load_asked_for_on_an_agent_through_the_api_runs_there_and_records_why(
    backend_settings, api, agent, tmp_path
):
    backend_settings.KTRDR = {**backend_settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    agent_services.agent_add(name="ib1", base_url=agent.url)

    response = api.post(
        "/api/v1/data/loads/",
        {
            "symbol": "AUDUSD",
            "timeframe": "1h",
            "start": "2021-03-01",
            "end": "2021-03-05",
            "source": "synthetic",
            "execution_mode": "agent",
        },
        format="json",
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["location"]["executor"] == "agent"
    assert body["metadata"]["placement"]["agent"] == "ib1"
    assert "ib1" in body["metadata"]["placement"]["reason"]
    final, _ = follow(api, body["operation_id"], timeout=60)
    assert final["status"] == "completed"
    assert final["result_summary"]["merged_into_backend"]["bars_added"] > 0


@pytest.fixture
def ib_simulator(tmp_path):
    """The project's IB Gateway simulator as its own process on a free loopback port."""
    import subprocess
    import sys

    from tests.hostagents.conftest import ROOT, free_port, wait_for

    port = free_port()
    with open(tmp_path / "sim.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "ib_gateway_sim", "--port", str(port)],
            cwd=ROOT, env={**__import__("os").environ, "KTRDR_HOME": str(tmp_path / "sim")},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def listening() -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout=30)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_ib_loads_go_to_the_ib_agent_which_holds_the_ib_connection(
    backend_settings, api, agent_factory, ib_simulator, tmp_path
):
    backend_settings.KTRDR = {
        **backend_settings.KTRDR,
        "DATA_DIR": tmp_path / "data",
        "IB_HOST": "",
    }
    ib_agent = agent_factory(
        "ibagent",
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
    body = response.json()
    assert body["location"]["agent"] == "ib1"
    assert "ib" in body["metadata"]["placement"]["reason"]
    final, _ = follow(api, body["operation_id"], timeout=90)
    assert final["status"] == "completed", final
    assert final["result_summary"]["source"] == "ib"
    assert final["result_summary"]["merged_into_backend"]["bars_added"] > 0
