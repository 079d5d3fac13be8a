"""Remote loads plan against the backend's coverage and send back only the new bars: the start
carries what the backend holds (`stored_ranges`), the agent fetches only what is missing there
and leaves only what it fetched in `bars.parquet`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from hostagents import services as agent_services
from marketdata import loader, store
from marketdata.kinds import BARS_ARTIFACT, DATA_LOAD
from marketdata.planner import coverage_runs, index_from_runs
from marketdata.progress import DataLoadingProgressBridge
from marketdata.services import data_load_start
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from operations.cancellation import CancellationToken
from operations.exceptions import InvalidInput
from operations.kinds import FetchedArtifact
from operations.local import WorkContext
from tests.fakes.marketdata_gateway import FakeBarGateway
from tests.hostagents.conftest import agent_factory, backend_settings  # noqa: F401 (fixtures)
from tests.hostagents.test_remote import follow

H1 = TIMEFRAMES["1h"]


def bars(start: str, end: str, symbol: str = "EURUSD") -> pd.DataFrame:
    return generate_bars(symbol, H1, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))


def test_coverage_runs_describe_an_index_exactly_and_compactly():
    frame = bars("2024-01-01", "2024-03-01")
    index = frame.index.delete(range(100, 110))  # a hole
    runs = coverage_runs(index, H1)
    assert len(runs) < 20  # one run per week, plus the hole
    pd.testing.assert_index_equal(index_from_runs(runs, H1), index)
    assert coverage_runs(frame.index[:0], H1) == []
    assert len(index_from_runs([], H1)) == 0


@pytest.mark.parametrize(
    "bad",
    ["x", [["2024-01-02T00:00:00+00:00"]], [["2024-01-02", "2024-01-01"]],
     [["2024-01-01", "2024-01-02"], ["2024-01-01T05:00", "2024-01-03"]], [[1, 2]]],
)  # fmt: skip
def test_stored_ranges_sent_to_an_agent_are_validated(bad):
    params = {"symbol": "EURUSD", "timeframe": "1h", "start": "2024-01-01", "end": "2024-02-01",
              "mode": "full", "source": "synthetic", "stored_ranges": bad}  # fmt: skip
    with pytest.raises(InvalidInput) as exc:
        DATA_LOAD.prepare(params, None)
    assert exc.value.field == "stored_ranges"


@pytest.mark.django_db
def test_the_agent_side_plans_against_the_backends_store_and_sends_back_only_what_it_fetched(
    settings, monkeypatch, data_dir, tmp_path
):
    # The backend holds January to March; a full load of January to May is asked for.
    store.write_bars("EURUSD", "1h", bars("2024-01-01", "2024-04-01"), source="ib")
    metadata = {"symbol": "EURUSD", "timeframe": "1h", "start": "2024-01-01T00:00:00+00:00",
                "end": "2024-05-01T00:00:00+00:00", "mode": "full", "source": "ib"}  # fmt: skip
    payload = DATA_LOAD.remote_payload(metadata)
    assert payload.params["stored_ranges"]
    backend_dir = data_dir

    # The agent: its own (empty) store, its own gateway.
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path / "agent-data"}
    gateway = FakeBarGateway()
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    launch = DATA_LOAD.prepare(payload.params, {})
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    ctx = WorkContext("op_remote", launch.metadata, DataLoadingProgressBridge.for_load(
        launch.metadata), CancellationToken(), artifacts_dir=artifacts)  # fmt: skip
    summary = launch.work(ctx)

    april = bars("2024-04-01", "2024-05-01")
    assert gateway.calls == [(april.index[0], pd.Timestamp("2024-05-01", tz="UTC"))]
    sent = store.bytes_to_frame((artifacts / BARS_ARTIFACT).read_bytes())
    pd.testing.assert_frame_equal(sent, april)
    assert summary["bars_received"] == len(april)
    assert summary["series_bars"] == len(bars("2024-01-01", "2024-05-01"))
    assert any("planned against the backend's store" in note for note in summary["notes"])

    # Back on the backend: merged, and the series is whole.
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": backend_dir}
    path = artifacts / BARS_ARTIFACT
    fetched = FetchedArtifact(BARS_ARTIFACT, path, path.stat().st_size,
                              hashlib.sha256(path.read_bytes()).hexdigest())  # fmt: skip
    done = DATA_LOAD.remote_completed(SimpleNamespace(metadata=metadata), summary, [fetched])
    assert done["merged_into_backend"]["bars_added"] == len(april)
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), bars("2024-01-01", "2024-05-01"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_remote_full_load_of_a_range_the_backend_holds_fetches_nothing_and_sends_nothing(
    backend_settings,  # noqa: F811
    agent_factory,  # noqa: F811
    api,
    tmp_path: Path,
):
    backend_settings.KTRDR = {**backend_settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    agent = agent_factory("planner")
    agent_services.agent_add(name="ib1", base_url=agent.url)
    store.write_bars("GBPUSD", "1h", bars("2020-01-06", "2020-01-20", "GBPUSD"), source="synthetic")

    def remote(start: str, end: str) -> dict:
        op = data_load_start(symbol="GBPUSD", timeframe="1h", start=start, end=end, mode="full",
                             source="synthetic", execution_mode="agent")  # fmt: skip
        final, _ = follow(api, op.operation_id, timeout=60)
        assert final["status"] == "completed", final
        return final["result_summary"]

    held = remote("2020-01-06", "2020-01-20")
    assert held["segments_total"] == 0
    assert held["bars_received"] == 0
    assert held["merged_into_backend"]["bars_added"] == 0

    more = remote("2020-01-06", "2020-01-27")  # one new week
    new_week = bars("2020-01-20", "2020-01-27", "GBPUSD")
    assert more["bars_received"] == len(new_week)
    assert more["merged_into_backend"] == {
        "bars_received": len(new_week), "bars_added": len(new_week), "bars_replaced": 0,
        "bars_unchanged": 0, "series_bars": len(bars("2020-01-06", "2020-01-27", "GBPUSD")),
        "warnings": [],
    }  # fmt: skip


@pytest.mark.django_db
def test_merging_an_agents_bars_replaces_only_corrected_ones_and_reports_it(data_dir, tmp_path):
    held = bars("2024-01-01", "2024-01-08")
    store.write_bars("EURUSD", "1h", held, source="csv")
    again = pd.concat([held.iloc[-10:], bars("2024-01-08", "2024-01-09")])
    again.iloc[0, again.columns.get_loc("close")] = again["close"].iloc[0] * 1.001
    again.iloc[0, again.columns.get_loc("high")] = again[["open", "close", "high"]].iloc[0].max()
    path = tmp_path / BARS_ARTIFACT
    path.write_bytes(store.frame_to_bytes(again))
    fetched = FetchedArtifact(BARS_ARTIFACT, path, path.stat().st_size,
                              hashlib.sha256(path.read_bytes()).hexdigest())  # fmt: skip
    metadata = {"symbol": "EURUSD", "timeframe": "1h", "source": "ib"}
    done = DATA_LOAD.remote_completed(SimpleNamespace(metadata=metadata), {}, [fetched])
    merged = done["merged_into_backend"]
    new = len(again) - 10
    assert (merged["bars_added"], merged["bars_replaced"], merged["bars_unchanged"]) == (new, 1, 9)
    warning = (
        f"this series holds csv bars; {new + 1} ib bars were merged in ({new} added, 1 replaced)"
    )
    assert merged["warnings"] == [warning]
    assert done["warnings"] == [warning]
    assert store.read_bars("EURUSD", "1h")["close"].loc[again.index[0]] == again["close"].iloc[0]
