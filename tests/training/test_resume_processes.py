"""A training run by a real process survives that process. A `manage.py train` SIGKILLed is
found interrupted and resumed here from its last checkpoint; SIGTERMed, it cancels itself,
writing a checkpoint first — and so does a run of a daphne backend sent SIGTERM. Either way the
resumed run trains only the epochs after the checkpoint and ends with the weights of an
uninterrupted run of the same seed."""

from __future__ import annotations

import copy
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from operations import selectors
from operations.execution import operation_rerun, operation_resume
from operations.local import local_runs
from operations.models import Operation, OperationMetric
from tests.processes import ROOT, free_port, manage, process_env
from tests.training.conftest import SMALL_STRATEGY
from training.checkpoint import RECORD_NAME

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EPOCHS = 300
WAIT = 120.0


@pytest.fixture
def home(settings, tmp_path, eurusd) -> dict[str, str]:
    """Folders this test process and the `train` process share, the bars stored in them."""
    from marketdata.store import write_bars

    dirs = {name: tmp_path / name for name in ("data", "models", "strategies", "checkpoints")}
    for path in dirs.values():
        path.mkdir()
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["name"] = "test_resume"
    raw["training_data"]["history"] = {"start": "2017-01-01", "end": "2017-03-01"}
    raw["model"]["training"]["epochs"] = EPOCHS
    raw["model"]["training"]["batch_size"] = 64
    (dirs["strategies"] / "test_resume.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    settings.KTRDR = {
        **settings.KTRDR,
        "DATA_DIR": dirs["data"],
        "MODELS_DIR": dirs["models"],
        "STRATEGIES_DIR": dirs["strategies"],
        "CHECKPOINTS_DIR": dirs["checkpoints"],
        "CHECKPOINT_EVERY_EPOCHS": 2,
        "CHECKPOINT_EVERY_SECONDS": 0,
    }
    write_bars("EURUSD", "1h", eurusd.loc["2016-12-01":"2017-03-31"], source="csv")
    return {
        "KTRDR_DATA_DIR": str(dirs["data"]),
        "KTRDR_MODELS_DIR": str(dirs["models"]),
        "KTRDR_STRATEGIES_DIR": str(dirs["strategies"]),
        "KTRDR_CHECKPOINTS_DIR": str(dirs["checkpoints"]),
        "KTRDR_CHECKPOINT_EVERY_EPOCHS": "2",
        "KTRDR_CHECKPOINT_EVERY_SECONDS": "0",
    }


def _train_until_checkpoint(env: dict[str, str]):
    command = manage("train", "test_resume", "--execution-mode", "local", "--seed", "7", **env)
    line = command.stdout.readline()
    match = re.search(r"started (op_\S+)", line)
    assert match, line + command.stderr.read()
    operation_id = match.group(1)
    record = Path(env["KTRDR_CHECKPOINTS_DIR"]) / operation_id / RECORD_NAME
    deadline = time.monotonic() + WAIT
    while not record.exists():
        assert command.poll() is None, command.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.01)
    return command, operation_id


def _resume_and_compare(old: Operation) -> None:
    new = operation_resume(operation_id=old.operation_id)
    assert local_runs.wait_idle(timeout=WAIT)
    new.refresh_from_db()
    assert new.status == "completed", new.error_message
    assert new.resumed_from_id == old.pk
    epoch = new.metadata["resume"]["epoch"]
    assert epoch >= 2
    # Only the epochs after the checkpoint ran here.
    assert new.result_summary["training"]["epochs_trained"] == EPOCHS - epoch
    # Its curve is whole, whatever the killed process had stored of its own.
    records = OperationMetric.objects.filter(operation=new).order_by("seq")
    assert [(m.seq, m.payload["epoch"]) for m in records] == [(i, i + 1) for i in range(EPOCHS)]

    again = operation_rerun(operation_id=old.operation_id)
    assert local_runs.wait_idle(timeout=WAIT)
    again.refresh_from_db()
    assert again.status == "completed", again.error_message
    assert (
        new.result_summary["model"]["weights_sha256"]
        == again.result_summary["model"]["weights_sha256"]
    )


def test_a_training_whose_process_was_killed_resumes_here_bit_identical(home):
    command, operation_id = _train_until_checkpoint(home)
    command.kill()  # SIGKILL: no handler, no cancel, no last write
    command.communicate(timeout=WAIT)
    old = selectors.operation_get(operation_id=operation_id, force_refresh=True)
    assert old.status == "failed"
    assert "interrupted" in old.error_message
    _resume_and_compare(old)


def test_sigterm_cancels_a_training_run_by_a_command_which_checkpoints_first(home):
    command, operation_id = _train_until_checkpoint(home)
    command.send_signal(signal.SIGTERM)
    out, err = command.communicate(timeout=WAIT)
    assert command.returncode == 0, err
    assert f"{operation_id}: cancelled" in out
    old = Operation.objects.get(operation_id=operation_id)
    assert old.status == "cancelled"
    assert old.cancel_reason == "its process got SIGTERM"  # said on the row, not just stopped
    record = json.loads(
        (Path(home["KTRDR_CHECKPOINTS_DIR"]) / operation_id / RECORD_NAME).read_text()
    )
    # The checkpoint of the last epoch it finished, written when it stopped.
    assert record["epoch"] == old.result_summary["epochs_completed"]
    _resume_and_compare(old)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_daphne_backend_stopped_mid_training_resumes_it_here_bit_identical(
    home, django_user_model, stop
):
    """SIGTERM: the backend cancels its training, which checkpoints first. SIGKILL: nothing
    runs; the run is found interrupted and resumes from its last periodic checkpoint. Either
    way this process (a backend started again on the same database and home) resumes it."""
    import requests
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user(username="carol", password="s3cret-carol!")
    token = Token.objects.create(user=user).key
    port = free_port()
    with open(Path(home["KTRDR_CHECKPOINTS_DIR"]).parent / "daphne.log", "w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "ktrdr_site.asgi:application"],
            cwd=ROOT, env=process_env(**home), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    requests.get(f"{url}/login/", timeout=5)
                    break
                except requests.ConnectionError:
                    assert server.poll() is None, log.read()
                    assert time.monotonic() < deadline, "the backend did not start"
                    time.sleep(0.2)
            answer = requests.post(
                f"{url}/api/v1/training/runs/",
                json={"strategy": "test_resume", "execution_mode": "local", "seed": 7},
                headers={"Authorization": f"Token {token}"},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            operation_id = answer.json()["operation_id"]
            record = Path(home["KTRDR_CHECKPOINTS_DIR"]) / operation_id / RECORD_NAME
            while not record.exists():
                assert time.monotonic() < deadline, "no checkpoint written"
                time.sleep(0.01)
            server.send_signal(stop)
            server.wait(timeout=WAIT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)
    if stop == signal.SIGTERM:
        old = Operation.objects.get(operation_id=operation_id)
        assert old.status == "cancelled", (old.status, old.error_message)
        saved = json.loads(record.read_text())
        assert saved["epoch"] == old.result_summary["epochs_completed"]
    else:
        # Its process is gone: the next look finds the run interrupted.
        old = selectors.operation_get(operation_id=operation_id, force_refresh=True)
        assert old.status == "failed", old.status
        assert "interrupted" in old.error_message
        assert json.loads(record.read_text())["epoch"] >= 2
    _resume_and_compare(old)
