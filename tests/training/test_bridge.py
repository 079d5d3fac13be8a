"""TrainingProgressBridge: cheap writes, derived snapshot fields, §4 epoch records."""

from __future__ import annotations

from training.bridge import EPOCH_FIELDS, TrainingProgressBridge


def started_bridge() -> TrainingProgressBridge:
    bridge = TrainingProgressBridge()
    bridge.on_training_start(
        epochs=4,
        batches_per_epoch=10,
        patience=3,
        train_samples=1000,
        batch_size=100,
        step=5,
        steps_total=8,
    )
    return bridge


def test_snapshot_during_training_shows_epoch_batch_loss_and_eta():
    bridge = started_bridge()
    bridge.on_epoch(1, 1.1, 0.4, 1.05, 0.42, 0.001, 0.5, 1, 3)
    bridge.on_batch(2, 5, 0.75)
    snap = bridge.snapshot()
    assert snap["phase"] == "training"
    assert snap["message"] == "epoch 2/4 · batch 5/10 · loss 0.7500"
    assert snap["items_processed"] == 15
    assert snap["items_total"] == 40
    assert 5.0 < snap["percentage"] < 95.0
    assert snap["eta_seconds"] is not None
    assert snap["context"]["epoch"] == 2
    assert snap["context"]["batch"] == 5


def test_no_eta_during_setup_or_before_the_first_epoch_finished():
    bridge = TrainingProgressBridge()
    bridge.on_phase("model", "Step 5/8: building the model", step=4, steps_total=8, percentage=4.0)
    assert bridge.snapshot()["eta_seconds"] is None
    bridge = started_bridge()
    bridge.on_batch(1, 5, 0.9)
    assert bridge.snapshot()["eta_seconds"] is None
    bridge.on_epoch(1, 1.1, 0.4, 1.05, 0.42, 0.001, 0.5, 1, 3)
    bridge.on_batch(2, 1, 0.8)
    assert bridge.snapshot()["eta_seconds"] is not None
    bridge.on_phase("evaluating", "Step 7/8: evaluating", step=6, steps_total=8, percentage=96.0)
    assert bridge.snapshot()["eta_seconds"] is None


def test_epoch_records_have_the_architecture_shape():
    bridge = started_bridge()
    bridge.on_epoch(1, 1.1, 0.4, 1.05, 0.42, 0.001, 0.5, 1, 3)
    records, cursor = bridge.metrics_since(0)
    assert cursor == 1
    (record,) = records
    assert record["kind"] == "epoch"
    assert set(record) == {"kind", "recorded_at", *EPOCH_FIELDS}
    assert record["epoch"] == 1
    assert record["val_accuracy"] == 0.42
    assert bridge.metrics_since(1) == ([], 1)


def test_best_epoch_and_patience_left_are_in_the_snapshot_context():
    bridge = started_bridge()
    bridge.on_epoch(1, 1.1, 0.4, 1.05, 0.42, 0.001, 0.5, 1, 3)
    bridge.on_epoch(2, 1.0, 0.45, 1.07, 0.41, 0.001, 0.5, 1, 2)
    bridge.on_batch(3, 1, 0.9)
    context = bridge.snapshot()["context"]
    assert context["best_epoch"] == 1
    assert context["patience_left"] == 2
    assert context["last_epoch"]["epoch"] == 2


def test_after_training_the_phase_writes_take_over_again():
    bridge = started_bridge()
    bridge.on_batch(4, 10, 0.5)
    bridge.on_phase("evaluating", "Step 7/8: evaluating on the test split", step=6, steps_total=8)
    snap = bridge.snapshot()
    assert snap["message"] == "Step 7/8: evaluating on the test split"
    assert snap["phase"] == "evaluating"


def test_a_nan_loss_is_reported_as_null_not_as_invalid_json():
    bridge = started_bridge()
    bridge.on_epoch(1, float("nan"), 0.4, 1.0, 0.4, 0.001, 0.5, 1, 3)
    assert bridge.metrics_since(0)[0][0]["train_loss"] is None


def test_other_metrics_between_epochs_read_as_themselves_and_leave_the_epochs_alone():
    bridge = started_bridge()
    bridge.on_epoch(1, 1.1, 0.4, 1.05, 0.42, 0.001, 0.5, 1, 3)
    bridge.append_metric("note", {"text": "lr lowered"})
    bridge.on_epoch(2, 1.0, 0.45, 1.07, 0.41, 0.0005, 0.5, 1, 2)
    bridge.append_metric("note", {"text": "checkpoint"})
    bridge.on_batch(3, 1, 0.9)
    records, cursor = bridge.metrics_since(0)
    assert cursor == 4
    assert [r["kind"] for r in records] == ["epoch", "note", "epoch", "note"]
    assert records[1] == {
        "kind": "note",
        "recorded_at": records[1]["recorded_at"],
        "text": "lr lowered",
    }
    assert [r["epoch"] for r in bridge.epochs()] == [1, 2]
    assert bridge.epochs()[1]["learning_rate"] == 0.0005
    context = bridge.snapshot()["context"]
    assert context["last_epoch"] == records[2]
    assert context["patience_left"] == 2
