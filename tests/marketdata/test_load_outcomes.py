"""Load outcomes tell the truth: nothing loaded and failures is `failed` with the reasons; some
failed segments is "completed with gaps", named in the summary, the page and `load_data`, and
the next `full` load fills them; the source's first bar (its head timestamp) is stored."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from marketdata import loader, services, store
from marketdata.gateways.base import TransientError
from marketdata.ibsim.server import FrameSource
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.fakes.marketdata_gateway import FakeBarGateway
from tests.marketdata.conftest import wait_terminal
from tests.marketdata.test_loader_ib import load

pytestmark = pytest.mark.django_db(transaction=True)

H1 = TIMEFRAMES["1h"]
RANGE = {"start": "2024-01-01", "end": "2024-05-01"}  # four segments of at most a month


def start_load(monkeypatch, gateway, **kw):
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    params = {"symbol": "EURUSD", "timeframe": "1h", "mode": "full", **RANGE, **kw}
    return wait_terminal(services.data_load_start(**params).operation_id)


def always_failing(calls: range, message: str = "HMDS farm down") -> dict:
    return {n: TransientError(message) for n in calls}


def test_a_load_whose_every_segment_failed_ends_failed_with_the_reasons(monkeypatch, data_dir):
    op = start_load(monkeypatch, FakeBarGateway(failures=always_failing(range(1, 100))))
    assert op.status == "failed"
    assert "nothing was loaded: 4 of 4 segments failed" in op.error_message
    assert "HMDS farm down" in op.error_message
    summary = op.result_summary
    assert summary["bars_received"] == 0
    assert summary["segments_failed"] == [0, 1, 2, 3]
    # One range (the four failed segments are adjacent — only a weekend the plan skips lies
    # between two of them — with one error), named: from the first bar the calendar expects.
    assert summary["failed_ranges"] == [
        {"start": "2024-01-01T22:00:00+00:00", "end": "2024-05-01T00:00:00+00:00",
         "error": "HMDS farm down", "segments": 4}
    ]  # fmt: skip


def test_some_failed_segments_complete_with_gaps_named_in_the_summary_page_and_command(
    monkeypatch, data_dir, client, user
):
    # Segment 2 fails on all four attempts (fetch calls 2..5); the others load.
    gateway = FakeBarGateway(failures=always_failing(range(2, 6)))
    op = start_load(monkeypatch, gateway)
    assert op.status == "completed"
    summary = op.result_summary
    assert summary["outcome"] == "completed with gaps"
    assert summary["segments_failed"] == [1]
    gap = summary["segments"][1]
    assert summary["failed_ranges"] == [
        {"start": gap["start"], "end": gap["end"], "error": "HMDS farm down", "segments": 1}
    ]
    stored = store.read_index("EURUSD", "1h")
    assert not ((stored >= pd.Timestamp(gap["start"])) & (stored < pd.Timestamp(gap["end"]))).any()

    client.force_login(user)
    page = client.get(reverse("operations:detail", args=[op.operation_id])).content.decode()
    assert "completed with gaps" in page
    assert 'id="data-load-gaps"' in page
    assert gap["start"][:16] in page
    listing = client.get(reverse("operations:list")).content.decode()
    assert "with gaps" in listing

    # The next full load of the range fetches exactly the gap, and then there is none.
    refill = FakeBarGateway()
    again = start_load(monkeypatch, refill)
    assert again.status == "completed"
    assert again.result_summary["outcome"] == "completed"
    assert again.result_summary["failed_ranges"] == []
    assert [(a.isoformat(), b.isoformat()) for a, b in refill.calls] == [(gap["start"], gap["end"])]
    full = generate_bars("EURUSD", H1, pd.Timestamp(RANGE["start"], tz="UTC"),
                         pd.Timestamp(RANGE["end"], tz="UTC"))  # fmt: skip
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), full)


def test_load_data_names_the_ranges_it_could_not_load(monkeypatch, data_dir):
    monkeypatch.setattr(
        loader, "open_gateway", lambda source: FakeBarGateway(failures=always_failing(range(2, 6)))
    )
    out = io.StringIO()
    call_command("load_data", "EURUSD", "1h", "--start", RANGE["start"], "--end", RANGE["end"],
                 "--mode", "full", stdout=out, stderr=io.StringIO())  # fmt: skip
    text = out.getvalue()
    assert "completed with gaps:" in text
    assert "not loaded: 2024-02-01T22:00:00+00:00 -> 2024-03-01T22:00:00+00:00" in text
    assert "HMDS farm down" in text
    assert "--mode full" in text

    monkeypatch.setattr(
        loader, "open_gateway", lambda source: FakeBarGateway(failures=always_failing(range(1, 99)))
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="nothing was loaded"):
        call_command("load_data", "GBPUSD", "1h", "--start", RANGE["start"], "--end",
                     RANGE["end"], "--mode", "full", stdout=out, stderr=io.StringIO())  # fmt: skip
    assert "not loaded: 2024-01-01T22:00:00+00:00 -> 2024-05-01T00:00:00+00:00" in out.getvalue()


def head_on_a_holiday() -> pd.DataFrame:
    """EURUSD 1h as the real data opens: 2007-01-01 21:00Z, an hour before the calendar's
    session (New Year's Day reopens at 17:00 New York = 22:00Z)."""
    bars = generate_bars("EURUSD", H1, pd.Timestamp("2007-01-01 22:00", tz="UTC"),
                         pd.Timestamp("2007-02-15", tz="UTC"))  # fmt: skip
    head = bars.iloc[[0]].copy()
    head.index = pd.DatetimeIndex([pd.Timestamp("2007-01-01 21:00", tz="UTC")], name="timestamp")
    return pd.concat([head, bars])


def test_the_head_bar_is_stored_by_a_full_load_even_where_the_calendar_expects_none(
    simulator_factory,
):
    source = head_on_a_holiday()
    simulator_factory(source=FrameSource("EURUSD", "1h", source))
    head = pd.Timestamp("2007-01-01 21:00", tz="UTC")
    # Something is stored already (a tail load), then a full load from before the head.
    first = wait_terminal(load(start="2007-01-10", end="2007-02-01").operation_id)
    assert first.status == "completed", first.error_message
    op = wait_terminal(load(start="2006-12-01", end="2007-02-01").operation_id)
    assert op.status == "completed", op.error_message
    summary = op.result_summary
    assert any("to the head timestamp 2007-01-01T21:00:00+00:00" in n for n in summary["notes"])
    assert summary["segments"][0]["start"] == head.isoformat()
    stored = store.read_bars("EURUSD", "1h")
    assert stored.index[0] == head
    pd.testing.assert_frame_equal(stored, source.loc[: pd.Timestamp("2007-01-31 23:00", tz="UTC")])
