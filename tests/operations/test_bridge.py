"""ProgressBridge: fast, never raising, consistent under one writer and many readers."""

from __future__ import annotations

import threading

from operations.bridge import ProgressBridge


def test_snapshot_is_a_copy_the_worker_cannot_change_later():
    bridge = ProgressBridge()
    bridge.update(percentage=40.0, message="half", context={"symbol": "EURUSD"})
    snap = bridge.snapshot()
    bridge.update(percentage=80.0, message="more", context={"symbol": "GBPUSD"})
    assert snap["percentage"] == 40.0
    assert snap["message"] == "half"
    assert snap["context"] == {"symbol": "EURUSD"}


def test_update_keeps_fields_that_are_not_given():
    bridge = ProgressBridge()
    bridge.update(percentage=10.0, phase="loading", steps_total=5)
    bridge.update(message="step 1")
    snap = bridge.snapshot()
    assert (snap["percentage"], snap["phase"], snap["steps_total"], snap["message"]) == (
        10.0,
        "loading",
        5,
        "step 1",
    )


def test_percentage_is_clamped_to_0_100():
    bridge = ProgressBridge()
    bridge.update(percentage=150.0)
    assert bridge.snapshot()["percentage"] == 100.0
    bridge.update(percentage=-3.0)
    assert bridge.snapshot()["percentage"] == 0.0


def test_writer_never_raises_into_the_worker():
    bridge = ProgressBridge()
    bridge.update(percentage="not a number")  # type: ignore[arg-type]
    bridge.append_metric("epoch", None)  # type: ignore[arg-type]
    assert bridge.snapshot()["percentage"] == 0.0
    assert bridge.metrics_count == 0


def test_metrics_since_cursor_is_incremental():
    bridge = ProgressBridge()
    for i in range(3):
        bridge.append_metric("step", {"i": i})
    first, cursor = bridge.metrics_since(0)
    assert [m["i"] for m in first] == [0, 1, 2]
    assert cursor == 3
    assert bridge.metrics_since(cursor) == ([], 3)
    bridge.append_metric("step", {"i": 3})
    more, cursor = bridge.metrics_since(cursor)
    assert [m["i"] for m in more] == [3]
    assert cursor == 4


def test_linear_eta_appears_between_0_and_100_percent():
    bridge = ProgressBridge()
    assert bridge.snapshot()["eta_seconds"] is None
    bridge.update(percentage=50.0)
    assert bridge.snapshot()["eta_seconds"] is not None
    bridge.update(percentage=100.0)
    assert bridge.snapshot()["eta_seconds"] is None


def test_one_writer_many_readers_see_consistent_states_and_every_metric_once():
    bridge = ProgressBridge()
    total = 20_000
    done = threading.Event()
    problems: list[str] = []
    seen_by_reader: list[list[int]] = [[] for _ in range(6)]

    def writer() -> None:
        for i in range(1, total + 1):
            # percentage and steps_completed always move together: a torn read would split them
            bridge.update(percentage=100.0 * i / total, steps_completed=i, message=f"step {i}")
            bridge.append_metric("step", {"i": i})
        done.set()

    def reader(slot: int) -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            snap = bridge.snapshot()
            steps = snap["steps_completed"]
            if steps and abs(snap["percentage"] - 100.0 * steps / total) > 1e-9:
                problems.append(f"torn snapshot {snap}")
            if steps and snap["message"] != f"step {steps}":
                problems.append(f"torn message {snap}")
            records, cursor = bridge.metrics_since(cursor)
            seen_by_reader[slot].extend(r["i"] for r in records)
            if finished:
                records, cursor = bridge.metrics_since(cursor)
                seen_by_reader[slot].extend(r["i"] for r in records)
                return

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not problems, problems[:3]
    for seen in seen_by_reader:
        assert seen == list(range(1, total + 1))
