"""Segment planning: IB-sized requests, durations rounded up, modes pick the right ranges."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pandas as pd
import pytest

from marketdata.calendar import expected_bar_times
from marketdata.planner import fetch_ranges, plan_segments
from marketdata.timeframes import TIMEFRAMES, ib_duration_for, parse_ib_duration

UTC = "UTC"


@pytest.mark.parametrize(
    ("span", "tf", "duration"),
    [
        (timedelta(hours=5, seconds=1), "1m", "18001 S"),
        (timedelta(days=1, seconds=1), "5m", "2 D"),
        (timedelta(days=6, hours=1), "1h", "7 D"),
        (timedelta(days=30), "1h", "30 D"),
        (timedelta(days=366), "1d", "2 Y"),
    ],
)
def test_durations_are_rounded_up_and_never_use_hours(span, tf, duration):
    text = ib_duration_for(span, TIMEFRAMES[tf])
    assert text == duration
    assert " H" not in text
    assert parse_ib_duration(text) >= span


def test_segments_cover_the_range_without_gaps_or_overlap():
    tf = TIMEFRAMES["1h"]
    start, end = pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-07-01", tz=UTC)
    segments = plan_segments([(start, end)], tf, "forex")
    assert len(segments) == 7  # 182 days / 30-day requests
    assert segments[0].start == start
    assert segments[-1].end == end
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start
    assert all(s.end - s.start <= pd.Timedelta(days=30) for s in segments)
    total = sum(s.expected_bars for s in segments)
    assert total == len(expected_bar_times("forex", tf, start, end))


def test_tail_fetches_after_the_last_stored_bar_and_backfill_before_the_first():
    tf = TIMEFRAMES["1h"]
    stored = expected_bar_times(
        "forex", tf, pd.Timestamp("2024-02-01", tz=UTC), pd.Timestamp("2024-03-01", tz=UTC)
    )
    start, end = pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-04-01", tz=UTC)
    kw = {"start": start, "end": end, "stored": stored, "timeframe": tf, "asset_class": "forex"}
    assert fetch_ranges(mode="tail", **kw) == [(stored[-1] + pd.Timedelta(hours=1), end)]
    assert fetch_ranges(mode="backfill", **kw) == [(start, stored[0])]
    assert fetch_ranges(mode="local", **kw) == []


def test_full_mode_fetches_only_missing_ranges_including_unexpected_holes():
    tf = TIMEFRAMES["1h"]
    start, end = pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-02-01", tz=UTC)
    stored = expected_bar_times("forex", tf, start, end)
    hole = stored[50:60]
    stored = stored.delete(range(50, 60))
    ranges = fetch_ranges(
        mode="full", start=start, end=end, stored=stored, timeframe=tf, asset_class="forex"
    )
    assert ranges == [(hole[0], hole[-1] + pd.Timedelta(hours=1))]


def test_tail_over_a_weekend_fetches_nothing():
    tf = TIMEFRAMES["1h"]
    stored = expected_bar_times(
        "forex", tf, pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-06", tz=UTC)
    )
    ranges = fetch_ranges(
        mode="tail",
        start=stored[0],
        end=pd.Timestamp("2024-01-07 12:00", tz=UTC),
        stored=stored,
        timeframe=tf,
        asset_class="forex",
    )
    assert ranges == []


def test_a_full_load_fetches_a_missing_head_bar_the_calendar_does_not_expect():
    h1 = TIMEFRAMES["1h"]
    head = pd.Timestamp("2007-01-01 21:00", tz="UTC")  # New Year's Day: the calendar opens 22:00
    stored = pd.DatetimeIndex(
        pd.date_range("2007-01-01 22:00", "2007-01-05 20:00", freq="1h", tz="UTC"), name="timestamp"
    )
    end = pd.Timestamp("2007-01-05 21:00", tz="UTC")
    ranges = fetch_ranges(mode="full", start=head, end=end, stored=stored, timeframe=h1,
                          asset_class="forex", head=head)  # fmt: skip
    assert ranges == [(head, head + pd.Timedelta(hours=1))]
    segments = plan_segments(ranges, h1, "forex", head=head)
    assert [(s.start, s.expected_bars) for s in segments] == [(head, 1)]
    # Nothing stored in front of the first missing range: it is widened to the head.
    ranges = fetch_ranges(mode="full", start=head, end=end, stored=stored[5:], timeframe=h1,
                          asset_class="forex", head=head)  # fmt: skip
    assert ranges == [(head, stored[5])]
    # A stored head bar is not fetched again; tail leaves it to full and backfill.
    with_head = stored.insert(0, head)
    assert fetch_ranges(mode="full", start=head, end=end, stored=with_head, timeframe=h1,
                        asset_class="forex", head=head) == []  # fmt: skip
    assert fetch_ranges(mode="tail", start=head, end=end, stored=stored, timeframe=h1,
                        asset_class="forex", head=head) == []  # fmt: skip
