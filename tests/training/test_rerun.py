"""Re-running a training: the same resolved strategy, data, range and seed, as a new operation
that registers the next model version; "Edit and run" opens the strategy's form pre-filled."""

from __future__ import annotations

import pytest
import yaml

from operations.local import local_runs
from operations.models import Operation
from training.models import TrainedModel
from training.services import training_start

pytestmark = pytest.mark.django_db(transaction=True)


def test_rerun_of_a_training_trains_the_same_strategy_as_it_was(
    api, user, strategies_dir, models_dir, store_bars
):
    old = training_start(
        strategy="test_small", start="2017-01-01", end="2017-04-01", seed=11, user=user
    )
    assert local_runs.wait_idle(timeout=60)
    old.refresh_from_db()
    assert old.status == "completed", old.error_message
    # The file changes afterwards: a re-run trains what the first run trained, not the new file.
    changed = yaml.safe_load((strategies_dir / "test_small.yaml").read_text())
    changed["model"]["hidden_layers"] = [4]
    (strategies_dir / "test_small.yaml").write_text(yaml.safe_dump(changed))

    resp = api.post(f"/api/v1/operations/{old.operation_id}/rerun/")
    assert resp.status_code == 202, resp.content
    assert local_runs.wait_idle(timeout=60)
    new = Operation.objects.get(operation_id=resp.json()["operation_id"])
    assert new.status == "completed", new.error_message
    assert new.rerun_of == old
    for key in ("strategy", "symbols", "timeframes", "start", "end", "seed", "strategy_config"):
        assert new.metadata[key] == old.metadata[key], key
    assert new.metadata["strategy_config"]["model"]["hidden_layers"] == [16, 8]
    assert new.strategy_name == "test_small"
    assert new.input_series == old.input_series
    models = TrainedModel.objects.filter(strategy_name="test_small").order_by("version")
    assert [(m.operation_id, m.version) for m in models] == [
        (old.operation_id, 1),
        (new.operation_id, 2),
    ]
    # Same data, same seed: the same figures.
    assert models[0].metrics["test"] == models[1].metrics["test"]


def test_edit_and_run_opens_the_training_form_pre_filled(
    logged_in, user, strategies_dir, models_dir, store_bars
):
    old = training_start(
        strategy="test_small", start="2017-02-01", end="2017-04-01", execution_mode="local"
    )
    assert local_runs.wait_idle(timeout=60)
    page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    edit = (
        "/training/strategies/test_small/?symbols=EURUSD&amp;timeframes=1h&amp;"
        "start=2017-02-01&amp;end=2017-04-01&amp;execution_mode=local#start-training"
    )
    assert edit in page
    form = logged_in.get(edit.replace("&amp;", "&")).content.decode()
    assert 'name="start" value="2017-02-01"' in form
    assert 'name="end" value="2017-04-01"' in form
    assert '<option value="local" selected>' in form
    assert "Pre-filled with the inputs of an earlier run" in form
