"""Training on an agent: same executor, same experience as local, the model comes back verified.

Uses the smallest strategy (a few months of the real EURUSD 1h bars, a tiny MLP, few epochs).
"""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

import pandas as pd
import pytest

from hostagents import services as agent_services
from hostagents.client import client_for
from hostagents.models import Agent, Artifact
from operations.execution import operation_launch
from operations.kinds import kind_get
from operations.models import Executor
from operations.places import remote_places
from tests.hostagents.conftest import AgentProcess
from tests.hostagents.test_remote import all_metrics, follow, keys_of
from tests.shared_data import EURUSD_1H_CSV, require_shared

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHARED_CSV = EURUSD_1H_CSV

TINY = {
    "name": "agent_tiny",
    "description": "tiny, for agent tests",
    "training_data": {
        "symbols": ["EURUSD"],
        "timeframes": ["1h"],
        "history": {"start": "2017-01-01", "end": "2017-04-01"},
    },
    "indicators": {
        "rsi_14": {"type": "rsi", "period": 14},
        "atr_14": {"type": "atr", "period": 14},
    },
    "fuzzy_sets": {
        "rsi_zone": {
            "input": "rsi_14",
            "sets": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 45]},
                "high": {"type": "triangular", "parameters": [55, 70, 100]},
            },
        }
    },
    "model_inputs": ["rsi_zone.low", "rsi_zone.high", "atr_14"],
    "labels": {"type": "zigzag", "threshold": 0.003},
    "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    "model": {
        "hidden_layers": [8],
        "dropout": 0.0,
        "activation": "relu",
        "training": {
            "epochs": 3,
            "batch_size": 128,
            "learning_rate": 0.003,
            "early_stopping": None,
            "seed": 7,
        },
    },
}


@pytest.fixture
def stored_bars(backend_settings, tmp_path):
    from marketdata import store

    require_shared(SHARED_CSV)
    backend_settings.KTRDR = {
        **backend_settings.KTRDR,
        "DATA_DIR": tmp_path / "data",
        "MODELS_DIR": tmp_path / "models",
    }
    frame = pd.read_csv(SHARED_CSV)
    frame.index = pd.DatetimeIndex(
        pd.to_datetime(frame.pop("timestamp"), utc=True), name="timestamp"
    )
    frame = frame.astype(float)
    frame = frame[(frame.index >= "2016-12-01") & (frame.index < "2017-05-01")]
    store.write_bars("EURUSD", "1h", frame, source="csv")
    return tmp_path


def run_metadata(end: str = "2017-04-01T00:00:00+00:00") -> dict[str, Any]:
    from training.strategy import config_hash, validate_strategy

    config = validate_strategy(copy.deepcopy(TINY))
    return {
        "strategy": config["name"],
        "config_hash": config_hash(config),
        "symbols": ["EURUSD"],
        "timeframes": ["1h"],
        "base_timeframe": "1h",
        "start": "2017-01-01T00:00:00+00:00",
        "end": end,
        "seed": 7,
        "strategy_config": config,
    }


def test_local_and_agent_training_give_clients_the_same_experience_and_model(
    stored_bars, api, agent: AgentProcess
):
    from training.models import TrainedModel

    registered, _ = agent_services.agent_add(name="t1", base_url=agent.url)
    local = operation_launch(
        operation_type="training",
        launch=kind_get("training").prepare(run_metadata(), None),
        user=api.user,
    )
    remote = training_dispatch_to(
        agent=registered,
        metadata=run_metadata(),
        user=api.user,
        strategy_name=TINY["name"],
        input_series=["EURUSD:1h"],
    )
    # The bars went to the agent, unless an earlier test on this shared agent sent the same
    # bytes already (content-addressed: then they are not sent again).
    sent = remote.metadata["inputs_sent_bytes"]
    assert sent > 0 or remote.metadata["inputs_cached_on_agent"] >= 1, remote.metadata

    local_final, local_seen = follow(api, local.operation_id, timeout=120)
    remote_final, remote_seen = follow(api, remote.operation_id, timeout=120)

    assert local_final["status"] == remote_final["status"] == "completed", remote_final
    assert keys_of(local_final) == keys_of(remote_final)
    assert all(keys_of(b) == keys_of(local_final) for b in local_seen + remote_seen)
    # The remote summary also lists the files fetched from the agent (their sha256 and size).
    assert set(local_final["result_summary"]) == set(remote_final["result_summary"]) - {"artifacts"}
    local_epochs = all_metrics(api, local.operation_id)
    remote_epochs = all_metrics(api, remote.operation_id)
    assert [m["kind"] for m in remote_epochs] == [m["kind"] for m in local_epochs]
    assert [m["epoch"] for m in remote_epochs if m["kind"] == "epoch"] == [1, 2, 3]
    assert [set(m) for m in remote_epochs] == [set(m) for m in local_epochs]
    # Same executor, same seed, same bars: the same learning curve, wherever it ran.
    for a, b in zip(local_epochs, remote_epochs, strict=True):
        if a["kind"] == "epoch":
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
    remote_phases = {b["progress"]["phase"] for b in remote_seen} - {""}
    local_phases = {b["progress"]["phase"] for b in local_seen} - {""}
    # The same executor's phases; which of them a poll happens to catch depends on timing.
    executor_phases = {"loading_data", "indicators", "features", "labelling", "model"}
    executor_phases |= {"training", "evaluating", "saving"}
    assert remote_phases <= local_phases | executor_phases

    # The model came back verified and is registered on the backend.
    model_info = remote_final["result_summary"]["model"]
    stored = Artifact.objects.get(operation_id=remote.operation_id, name="model.pt")
    with open(model_info["artifact_path"], "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == stored.sha256 == model_info["sha256"]
    model = TrainedModel.objects.get(pk=model_info["id"])
    assert model.operation_id == remote.operation_id
    assert model.sha256 == stored.sha256


def test_bars_the_agent_already_has_are_not_sent_again(stored_bars, api, agent):
    registered, _ = agent_services.agent_add(name="t1", base_url=agent.url)
    # A range no other test used: its bars are new to the (shared) agent the first time.
    meta = run_metadata(end="2017-03-15T00:00:00+00:00")
    first = training_dispatch_to(agent=registered, metadata=meta, user=api.user)
    assert first.metadata["inputs_sent_bytes"] > 0
    second = training_dispatch_to(agent=registered, metadata=meta, user=api.user)
    assert second.metadata["inputs_sent_bytes"] == 0
    assert second.metadata["inputs_cached_on_agent"] == 1
    for op in (first, second):
        api.post(f"/api/v1/operations/{op.operation_id}/cancel/", {"reason": "t"}, format="json")
    time.sleep(0.3)
    client = client_for(Agent.objects.get(name="t1"))
    assert client.requests_sent[("POST", "blobs")] == 2


def test_agent_without_the_training_role_refuses_training(stored_bars, api, agent_factory):
    from operations.exceptions import ServiceUnavailable

    ib_only = agent_factory("ibonly", roles="ib")
    registered, _ = agent_services.agent_add(name="i1", base_url=ib_only.url)
    with pytest.raises(ServiceUnavailable, match="training"):
        training_dispatch_to(agent=registered, metadata=run_metadata(), user=api.user)


def test_a_training_run_asked_for_on_an_agent_through_the_api_trains_there(
    stored_bars, backend_settings, api, agent
):
    import yaml

    from training.models import TrainedModel

    strategies = stored_bars / "strategies"
    strategies.mkdir()
    (strategies / "agent_tiny.yaml").write_text(yaml.safe_dump(TINY))
    backend_settings.KTRDR = {**backend_settings.KTRDR, "STRATEGIES_DIR": strategies}
    agent_services.agent_add(name="t1", base_url=agent.url)

    response = api.post(
        "/api/v1/training/runs/",
        {"strategy": "agent_tiny", "execution_mode": "agent", "agent": "t1"},
        format="json",
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["location"]["executor"] == "agent"
    assert body["metadata"]["placement"]["agent"] == "t1"
    final, _ = follow(api, body["operation_id"], timeout=120)
    assert final["status"] == "completed", final
    model = TrainedModel.objects.get(operation_id=body["operation_id"])
    assert model.sha256 == final["result_summary"]["model"]["sha256"]


def training_dispatch_to(
    *, agent: Agent, metadata: dict, user=None, strategy_name: str = "", input_series=()
):
    """Start a training run on `agent` through the agent place, as placement would."""
    return remote_places()[Executor.AGENT].start(
        kind=kind_get("training"),
        target=agent,
        metadata=metadata,
        user=user,
        strategy_name=strategy_name,
        input_series=input_series,
    )
