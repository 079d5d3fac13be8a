"""Execution-mode selection (docs/architecture.md §7) with the agent place's candidates, on
registry rows with fresh health snapshots."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hostagents.models import Agent
from operations.exceptions import InvalidInput, ServiceUnavailable
from operations.kinds import kind_get
from operations.placement import Placement, choose_place

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_health(settings):
    # Long TTL: the snapshots below count as just pulled, so nothing is contacted.
    settings.KTRDR = {
        **settings.KTRDR,
        "AGENT_HEALTH_TTL": 3600.0,
        "AGENTS": "",
        "IB_HOST": "",
        "LOCAL_EXECUTION": True,
        "TRAINING_DEFAULT_MODE": "auto",
    }


# The work a placement is asked for: a training run, an IB load, a synthetic load.
WORK = {
    "training": ("training", {}),
    "ib": ("data_load", {"source": "ib"}),
    "data": ("data_load", {"source": "synthetic"}),
}


def choose_execution(
    work: str, mode: str | None = None, agent: str | None = None, require_gpu: bool = False
) -> Placement:
    kind, metadata = WORK[work]
    return choose_place(kind_get(kind), metadata, mode, agent, require_gpu)


def agent(name: str, caps: list[str], *, error: str = "", enabled: bool = True) -> Agent:
    return Agent.objects.create(
        name=name,
        base_url=f"http://{name}.test:8101",
        capabilities=caps,
        enabled=enabled,
        health=None if error else {"status": "ok", "capabilities": caps},
        health_pulled_at=timezone.now(),
        last_error=error,
    )


def test_auto_training_prefers_a_gpu_agent():
    agent("a-cpu", ["training"])
    agent("z-gpu", ["gpu", "training"])
    placement = choose_execution("training", "auto")
    assert placement.place == "agent"
    assert placement.target.name == "z-gpu"
    assert "GPU" in placement.reason


def test_auto_falls_back_to_local_and_says_which_agents_could_not_take_it():
    agent("down", ["training"], error="agent down: unreachable (connection refused)")
    agent("ibonly", ["ib"])
    placement = choose_execution("training", None)
    assert placement.place == "local"
    assert placement.tried == [
        "down: unreachable (agent down: unreachable (connection refused))",
        "ibonly: no training role (has: ib)",
    ]
    meta = placement.as_metadata()
    assert meta["place"] == "local"
    assert "down: unreachable" in meta["reason"]


@pytest.fixture
def local_gpu(monkeypatch):
    """Pretend this backend has (True) or lacks (False) a CUDA device, whatever the test host."""

    def set_gpu(available: bool) -> None:
        monkeypatch.setattr("training.device.cuda_available", lambda: available)

    return set_gpu


def test_require_gpu_without_a_gpu_anywhere_is_503_naming_the_agents_tried(local_gpu):
    local_gpu(False)
    agent("cpu1", ["training"])
    with pytest.raises(ServiceUnavailable) as caught:
        choose_execution("training", "agent", require_gpu=True)
    assert caught.value.status_code == 503
    assert "cpu1: no GPU" in caught.value.message
    assert "this backend has no GPU" in caught.value.message
    assert caught.value.details["tried"] == ["cpu1: no GPU"]


def test_require_gpu_with_no_gpu_agent_runs_on_this_backends_gpu(local_gpu):
    local_gpu(True)
    agent("cpu1", ["training"])
    placement = choose_execution("training", "auto", require_gpu=True)
    assert placement.place == "local"
    assert placement.tried == ["cpu1: no GPU"]


def test_local_mode_runs_locally_even_when_agents_exist():
    agent("gpu1", ["gpu", "training"])
    placement = choose_execution("training", "local")
    assert placement.place == "local"
    assert placement.reason == "execution_mode=local"


def test_local_mode_with_local_execution_off_is_503(settings):
    settings.KTRDR = {**settings.KTRDR, "LOCAL_EXECUTION": False}
    with pytest.raises(ServiceUnavailable, match="switched off"):
        choose_execution("training", "local")


def test_named_agent_is_used_when_it_can_take_the_work():
    agent("a1", ["training"])
    agent("a2", ["training", "gpu"])
    assert choose_execution("training", "agent", agent="a1").target.name == "a1"


def test_named_agent_that_cannot_take_it_falls_back_to_local_with_the_reason():
    agent("a1", ["ib"])
    placement = choose_execution("training", "agent", agent="a1")
    assert placement.place == "local"
    assert placement.tried == ["a1: no training role (has: ib)"]


def test_unknown_named_agent_is_a_400_naming_the_field():
    with pytest.raises(InvalidInput) as caught:
        choose_execution("training", "agent", agent="nope")
    assert caught.value.field == "agent"


def test_invalid_execution_mode_is_a_400_naming_the_field():
    with pytest.raises(InvalidInput) as caught:
        choose_execution("training", "cloud")
    assert caught.value.field == "execution_mode"


def test_default_mode_comes_from_settings(settings):
    agent("gpu1", ["gpu", "training"])
    settings.KTRDR = {**settings.KTRDR, "TRAINING_DEFAULT_MODE": "local"}
    assert choose_execution("training").place == "local"


def test_ib_loads_go_to_an_ib_agent():
    agent("trainer", ["training", "gpu"])
    agent("ib1", ["ib"])
    placement = choose_execution("ib", "auto")
    assert placement.target.name == "ib1"


def test_ib_loads_without_an_ib_agent_or_local_ib_are_503():
    agent("trainer", ["training"])
    with pytest.raises(ServiceUnavailable) as caught:
        choose_execution("ib", "auto")
    assert "trainer: no ib role" in caught.value.message
    assert "KTRDR_IB_HOST" in caught.value.message


def test_ib_loads_run_locally_when_this_backend_has_ib(settings):
    settings.KTRDR = {**settings.KTRDR, "IB_HOST": "127.0.0.1"}
    assert choose_execution("ib", "auto").place == "local"


def test_disabled_agents_are_not_chosen():
    agent("gpu1", ["gpu", "training"], enabled=False)
    assert choose_execution("training", "auto").place == "local"


def test_synthetic_loads_stay_local_in_auto_mode():
    agent("any", ["training"])
    assert choose_execution("data", "auto").place == "local"
