"""Segment planning: IB-sized requests, durations rounded up and within IB's limits per bar size,
as few requests as those limits allow, modes pick the right ranges."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.calendar import expected_bar_times
from marketdata.planner import fetch_ranges, plan_segments
from marketdata.timeframes import (
    TIMEFRAMES,
    IBDuration,
    ib_duration,
    ib_duration_problem,
    parse_ib_duration,
)

UTC = "UTC"

# IB's longest and shortest duration per bar size, read off the duration steps in the IB
# reference (docs/marketdata.md, "IB request plans"): written out here, not derived, so the
# table in marketdata.timeframes is checked against the document.
IB_LONGEST = {"1m": "1 D", "5m": "1 W", "15m": "1 W", "30m": "1 M", "1h": "1 M", "4h": "1 M",
              "1d": "5 Y"}  # fmt: skip
IB_SHORTEST = {"1m": "60 S", "5m": "1800 S", "15m": "1800 S", "30m": "1800 S", "1h": "3600 S",
               "4h": "28800 S", "1d": "1 D"}  # fmt: skip
END = pd.Timestamp("2024-03-06", tz=UTC)  # a Wednesday
RANGES = {
    "1 day": pd.DateOffset(days=1),
    "1 month": pd.DateOffset(months=1),
    "1 year": pd.DateOffset(years=1),
    "5 years": pd.DateOffset(years=5),
}


def fewest_requests(times: pd.DatetimeIndex, longest: IBDuration) -> int:
    """The fewest requests of at most `longest` that reach every time: the greedy cover (start
    a request at the first time not yet covered) is optimal for points on a line."""
    stamps = times.as_unit("ns").asi8
    count = i = 0
    while i < len(stamps):
        count += 1
        reach = longest.end_from(pd.Timestamp(int(stamps[i]), tz=UTC))
        i = int(np.searchsorted(stamps, reach.value, side="left"))
    return count


def test_the_duration_table_follows_the_ib_reference():
    for name, tf in TIMEFRAMES.items():
        assert str(tf.ib_longest) == IB_LONGEST[name], name
        assert str(tf.ib_shortest) == IB_SHORTEST[name], name


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
@pytest.mark.parametrize("asset_class", ["forex", "stock"])
@pytest.mark.parametrize("span", list(RANGES))
def test_a_plan_never_exceeds_ib_limits_and_is_near_the_fewest_requests(
    timeframe, asset_class, span
):
    tf = TIMEFRAMES[timeframe]
    start = END - RANGES[span]
    segments = plan_segments([(start, END)], tf, asset_class)
    longest, shortest = (
        parse_ib_duration(IB_LONGEST[timeframe]),
        parse_ib_duration(IB_SHORTEST[timeframe]),
    )
    for seg in segments:
        duration = parse_ib_duration(seg.ib_duration)
        assert duration.at_most(longest), (seg, longest)
        assert shortest.at_most(duration), (seg, shortest)
        assert ib_duration_problem(duration, tf.ib_bar_size) is None
        # Rounded up: the request reaches back to the segment's start.
        assert duration.start_from(seg.end) <= seg.start
    times = expected_bar_times(asset_class, tf, start, END)
    # Every expected bar in exactly one segment: in order, only closed time between them.
    assert sum(s.expected_bars for s in segments) == len(times)
    stamps = times.as_unit("ns").asi8
    for a, b in itertools.pairwise(segments):
        assert a.end <= b.start
        assert np.searchsorted(stamps, a.end.value) == np.searchsorted(stamps, b.start.value)
    fewest = fewest_requests(times, longest)
    assert len(segments) <= 1.1 * fewest
    naive = -(-(END - start).total_seconds() // longest.least_seconds)
    assert len(segments) <= naive + 1  # never worse than cutting the range itself


def test_the_issue_cases_use_ibs_longest_durations():
    one_year, five_years = END - pd.DateOffset(years=1), END - pd.DateOffset(years=5)
    m15 = plan_segments([(one_year, END)], TIMEFRAMES["15m"], "forex")
    assert {s.ib_duration for s in m15} <= {"1 W", *(f"{n} D" for n in range(1, 7))}
    h4 = plan_segments([(five_years, END)], TIMEFRAMES["4h"], "forex")
    assert len(h4) <= 61
    assert all(parse_ib_duration(s.ib_duration).unit in "DWM" for s in h4)
    daily = plan_segments([(five_years, END)], TIMEFRAMES["1d"], "stock")
    assert [s.ib_duration for s in daily] == ["5 Y"]
    # One request per FX trading day for a year of minutes (2023: 259 trading days).
    m1 = plan_segments(
        [(pd.Timestamp("2023-01-01", tz=UTC), pd.Timestamp("2024-01-01", tz=UTC))],
        TIMEFRAMES["1m"],
        "forex",
    )
    assert len(m1) == 259


@pytest.mark.parametrize(
    ("span", "tf", "duration"),
    [
        (timedelta(hours=5, seconds=1), "1m", "18001 S"),
        (timedelta(seconds=10), "1m", "60 S"),  # at least the bar size's shortest
        (timedelta(hours=2), "4h", "28800 S"),
        (timedelta(hours=3), "1d", "1 D"),
        (timedelta(days=1, seconds=1), "5m", "2 D"),
        (timedelta(days=6, hours=1), "1h", "1 W"),  # 7 D and 1 W cover alike: the larger unit
        (timedelta(days=27), "1h", "27 D"),
        (timedelta(days=366), "1d", "1 Y"),  # a leap year: 2023-03-01 to 2024-03-01
        (timedelta(days=367), "1d", "2 Y"),
    ],
)
def test_durations_are_rounded_up_within_limits_and_never_use_hours(span, tf, duration):
    end = pd.Timestamp("2024-03-01", tz=UTC)
    start = end - pd.Timedelta(span)
    text = str(ib_duration(start, end, TIMEFRAMES[tf]))
    assert text == duration
    assert " H" not in text
    assert parse_ib_duration(text).start_from(end) <= start


def test_months_and_years_are_calendar_ones_back_from_the_end():
    end = pd.Timestamp("2024-03-01", tz=UTC)
    assert ib_duration(pd.Timestamp("2024-02-01", tz=UTC), end, TIMEFRAMES["1h"]) == IBDuration(
        1, "M"
    )
    # 30 days is not certainly within one month (February is shorter): it is no 1h request.
    with pytest.raises(ValueError, match="at most 1 M"):
        ib_duration(pd.Timestamp("2024-01-31", tz=UTC), end, TIMEFRAMES["1h"])


@pytest.mark.parametrize(
    ("duration", "bar_size", "problem"),
    [
        ("14 D", "15 mins", "longer than IB allows for 15 mins bars (at most 1 W)"),
        ("120 D", "4 hours", "longer than IB allows for 4 hours bars (at most 1 M)"),
        ("2 D", "1 min", "at most 1 D"),
        ("3600 S", "1 day", "shorter than IB allows for 1 day bars (at least 1 D)"),
        ("1 W", "15 mins", None),
        ("1 M", "1 hour", None),
        ("5 Y", "1 day", None),
    ],
)
def test_ib_duration_limits_per_bar_size(duration, bar_size, problem):
    found = ib_duration_problem(parse_ib_duration(duration), bar_size)
    assert found == problem if problem is None else problem in found


@pytest.mark.parametrize("text", ["2 H", "0 D", "86401 S", "366 D", "53 W", "13 M", "1 Q", "D"])
def test_durations_ib_would_not_parse_are_refused(text):
    with pytest.raises(ValueError):
        parse_ib_duration(text)


def test_segments_skip_closed_time_and_hold_every_expected_bar():
    tf = TIMEFRAMES["1h"]
    start, end = pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-07-01", tz=UTC)
    segments = plan_segments([(start, end)], tf, "forex")
    assert len(segments) == 6  # one calendar month each
    times = expected_bar_times("forex", tf, start, end)
    assert segments[0].start == times[0]  # New Year's Day is closed until 22:00Z
    assert segments[-1].end == times[-1] + pd.Timedelta(hours=1)
    assert not segments[0].adjacent
    assert all(s.adjacent for s in segments[1:])
    for a, b in itertools.pairwise(segments):
        assert a.end <= b.start
    assert all(parse_ib_duration(s.ib_duration).at_most(IBDuration(1, "M")) for s in segments)
    assert sum(s.expected_bars for s in segments) == len(times)


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
