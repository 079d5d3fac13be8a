"""Resuming a cancelled backtest: it goes on from the bar it reached (the engine state saved at
that chunk boundary) and ends with the figures, trades and curve of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtest import services
from backtest.kinds import BACKTEST, BacktestProgressBridge
from backtest.state import STATE_FILE, STATE_RECORD
from operations.execution import operation_cancel, operation_launch, operation_rerun
from operations.local import local_runs
from operations.models import Operation, OperationMetric

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 100


@pytest.fixture
def checkpoints_dir(settings, tmp_path) -> Path:
    path = tmp_path / "checkpoints"
    settings.KTRDR = {**settings.KTRDR, "CHECKPOINTS_DIR": path}
    return path


class CancelAfter(BacktestProgressBridge):
    """Cancels its operation through the one cancel path after the n-th chunk."""

    __slots__ = ("after", "chunks", "operation_id")

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.chunks, self.operation_id = after, 0, ""

    def append_metric(self, kind, payload) -> None:
        super().append_metric(kind, payload)
        if kind == "chunk":
            self.chunks += 1
            if self.chunks == self.after:
                operation_cancel(operation_id=self.operation_id, reason="enough", user=None)


def finished(operation_id: str) -> Operation:
    assert local_runs.wait_idle(timeout=120)
    return Operation.objects.get(operation_id=operation_id)


def cancelled_backtest(model, user, after: int = 3) -> Operation:
    metadata = services.backtest_metadata(
        body={"model_id": model.pk, "start": "2017-08-01", "end": "2017-12-01", "chunk_bars": CHUNK}
    )
    launch = BACKTEST.prepare({**metadata, "placement": {"execution_mode": "local"}}, None)
    bridge = CancelAfter(after)
    launch.bridge = bridge
    op = operation_launch(operation_type="backtest", launch=launch, user=user)
    bridge.operation_id = op.operation_id
    op = finished(op.operation_id)
    assert op.status == "cancelled", op.error_message
    return op


def records(op: Operation, kind: str) -> list[dict]:
    return [
        {"seq": m.seq, **m.payload}
        for m in OperationMetric.objects.filter(operation=op, kind=kind).order_by("seq")
    ]


def strip(rows: list[dict]) -> list[dict]:
    """Records without their time of recording (which differs run to run)."""
    return [{k: v for k, v in r.items() if k != "recorded_at"} for r in rows]


def test_a_resumed_backtest_ends_with_the_figures_and_trades_of_an_uninterrupted_run(
    api, model, user, checkpoints_dir
):
    old = cancelled_backtest(model, user)
    assert old.result_summary["bars_done"] == 3 * CHUNK
    record = json.loads((checkpoints_dir / old.operation_id / STATE_RECORD).read_text())
    assert (record["bars_done"], record["metrics_seq"]) == (3 * CHUNK, 3)

    resp = api.post(f"/api/v1/operations/{old.operation_id}/resume/")
    assert resp.status_code == 202, resp.content
    new = finished(resp.json()["operation_id"])
    assert new.status == "completed", new.error_message
    assert new.resumed_from == old
    assert new.metadata["resume"]["bars_done"] == 3 * CHUNK
    # A completed run leaves no state behind; the one it resumed from is kept with its run.
    assert not (checkpoints_dir / new.operation_id).exists()
    assert (checkpoints_dir / old.operation_id / STATE_FILE).is_file()

    whole = finished(operation_rerun(operation_id=old.operation_id, user=user).operation_id)
    assert whole.status == "completed"
    a, b = new.result_summary, whole.result_summary
    for key in ("figures", "baselines", "curve", "trades", "trades_total", "bars_done"):
        assert a[key] == b[key], key
    assert a["partial"] is False
    # The curve's records: the first three copied from the cancelled run, the rest its own,
    # one per chunk with no gap: the same as the uninterrupted run's.
    assert strip(records(new, "chunk")) == strip(records(whole, "chunk"))
    assert strip(records(new, "trade")) == strip(records(whole, "trade"))


def test_a_corrupted_engine_state_is_refused(api, model, user, checkpoints_dir):
    old = cancelled_backtest(model, user, after=2)
    path = checkpoints_dir / old.operation_id / STATE_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    resp = api.post(f"/api/v1/operations/{old.operation_id}/resume/")
    assert resp.status_code == 400
    assert (
        f"checkpoint corrupted: sha256 mismatch for {STATE_FILE}" in resp.json()["error"]["message"]
    )


def test_a_backtest_with_no_saved_state_cannot_be_resumed(api, model, user, checkpoints_dir):
    old = cancelled_backtest(model, user, after=1)
    for path in (checkpoints_dir / old.operation_id).iterdir():
        path.unlink()
    resp = api.post(f"/api/v1/operations/{old.operation_id}/resume/")
    assert resp.status_code == 409
    assert "left no engine state" in resp.json()["error"]["message"]
