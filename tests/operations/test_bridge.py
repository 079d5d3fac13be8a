"""ProgressBridge: fast, never raising, consistent under one writer and many readers."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

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


def test_every_update_between_two_reads_is_applied_in_the_order_written():
    bridge = ProgressBridge()
    bridge.update(phase="loading", message="a", steps_total=3)
    for i in range(1, 1001):
        bridge.update(percentage=i / 10, steps_completed=i)
    bridge.update(message="b")
    snap = bridge.snapshot()
    assert (snap["phase"], snap["message"], snap["steps_total"]) == ("loading", "b", 3)
    assert (snap["percentage"], snap["steps_completed"]) == (100.0, 1000)
    bridge.update(phase="saving")
    assert bridge.snapshot()["message"] == "b"  # kept across reads too


def test_a_record_is_stamped_when_first_read_and_keeps_that_stamp_for_every_reader():
    bridge = ProgressBridge()
    bridge.append_metric("step", {"i": 0})
    before = time.time()
    (first,), cursor = bridge.metrics_since(0)
    (again,), _ = bridge.metrics_since(0)
    assert before <= first["recorded_at"] <= time.time()
    assert again == first
    bridge.append_metric("step", {"i": 1})
    (later,), _ = bridge.metrics_since(cursor)
    assert later["recorded_at"] >= first["recorded_at"]


def test_a_payload_mapping_is_copied_into_a_plain_record():
    bridge = ProgressBridge()
    bridge.append_metric("step", OrderedDict(i=1, detail="x"))
    (record,), _ = bridge.metrics_since(0)
    assert type(record) is dict
    assert record == {"kind": "step", "recorded_at": record["recorded_at"], "i": 1, "detail": "x"}


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


class Wrapping(ProgressBridge):
    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def update(self, **fields) -> None:
        super().update(**fields)
        self.seen.append(fields.get("message", ""))


def test_a_subclass_may_wrap_update_in_a_method():
    bridge = Wrapping()
    bridge.update(message="one", percentage=10.0)
    bridge.update(message="two")
    assert bridge.seen == ["one", "two"]
    snap = bridge.snapshot()
    assert (snap["message"], snap["percentage"]) == ("two", 10.0)
