"""A new operation kind, brought by one app alone (`tests.toykind`), runs here and on a real
agent process — with no change to operations/ or hostagents/ (docs/architecture.md §3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hostagents import services as agent_services
from hostagents.models import Artifact
from operations.exceptions import InvalidInput
from operations.execution import operation_submit
from operations.kinds import kind_get, register_kind, unregister_kind
from tests.hostagents.test_remote import all_metrics, follow
from tests.toykind.kind import TOY

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def toy_kind() -> Iterator[None]:
    # In this process the toy app is not installed: register its kind as its ready() would.
    register_kind(TOY)
    yield
    unregister_kind(TOY.name)


@pytest.fixture(scope="module")
def toy_agent(agent_factory):
    return agent_factory("toyagent", roles="training", env={"KTRDR_EXTRA_APPS": "tests.toykind"})


def test_the_toy_kind_runs_in_this_process(toy_kind, backend_settings, api):
    op = operation_submit(
        operation_type="toy",
        metadata={"word": "tick", "times": 4, "suffix": "!"},
        execution_mode="local",
        user=api.user,
    )
    final, _ = follow(api, op.operation_id)

    assert final["status"] == "completed"
    assert final["operation_type"] == "toy"
    assert final["location"]["executor"] == "local"
    assert final["result_summary"] == {"text": "tick tick tick tick!", "ran_on_agent": False}
    assert [m["step"] for m in all_metrics(api, op.operation_id)] == [1, 2, 3, 4]


def test_the_toy_kind_runs_on_a_real_agent_that_has_its_app(
    toy_kind, backend_settings, api, toy_agent
):
    agent_services.agent_add(name="toy1", base_url=toy_agent.url)

    op = operation_submit(
        operation_type="toy",
        metadata={"word": "tock", "times": 3, "suffix": "?"},
        execution_mode="agent",
        agent="toy1",
        user=api.user,
    )
    final, _ = follow(api, op.operation_id, timeout=60)

    assert final["status"] == "completed", final
    assert final["location"]["executor"] == "agent"
    assert final["location"]["agent"] == "toy1"
    summary = final["result_summary"]
    # The suffix travelled as a content-addressed input; the text came back as an artifact.
    assert summary["text"] == "tock tock tock?"
    assert summary["ran_on_agent"] is True
    assert summary["fetched_text"] == "tock tock tock?"
    assert Artifact.objects.filter(operation_id=op.operation_id, name="toy.txt").exists()
    assert [m["step"] for m in all_metrics(api, op.operation_id)] == [1, 2, 3]
    remote = toy_agent.operation(final["location"]["remote_operation_id"])
    assert remote["metadata"]["inputs"][0]["key"] == "suffix"


def test_an_agent_rejects_the_toy_kinds_bad_input_naming_the_field(
    toy_kind, backend_settings, api, toy_agent
):
    agent_services.agent_add(name="toy1", base_url=toy_agent.url)
    with pytest.raises(InvalidInput) as caught:
        operation_submit(
            operation_type="toy",
            metadata={"word": "no digits 1", "times": 3},
            execution_mode="agent",
            agent="toy1",
        )
    assert "word" in str(caught.value.details)


def test_an_agent_without_the_app_does_not_know_the_kind(agent):
    response = agent.start_work("toy", {"word": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "operation_type": [response.json()["error"]["message"]]
    }


def test_unknown_kinds_are_refused_here_too():
    with pytest.raises(InvalidInput, match="unknown operation type 'nope'"):
        kind_get("nope")
