"""Property-based fuzzing of the API against its own OpenAPI schema (schemathesis), on a real
backend process and a real agent process: no server error and no answer off the schema, whatever
a logged-in client sends. Bounded (a fixed seed, a few examples per operation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.hostagents.conftest import TOKEN
from tests.processes import backend_process, process_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES = "12"
SEED = "20261201"


def fuzz(schema_url: str, authorization: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(SCHEMATHESIS), "run", schema_url,
            "-H", f"Authorization: {authorization}",
            "--checks", "not_a_server_error,response_schema_conformance",
            "--phases", "examples,fuzzing",
            "--max-examples", EXAMPLES, "--seed", SEED, "-w", "1",
            "--request-timeout", "60",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.fixture
def backend(tmp_path):
    env = process_env(
        KTRDR_DATA_DIR=str(tmp_path / "data"), KTRDR_MODELS_DIR=str(tmp_path / "models")
    )
    with backend_process(env) as url:
        yield url


def test_the_backend_api_survives_fuzzing(backend, user, tmp_path):
    token = Token.objects.create(user=user)
    done = fuzz(f"{backend}/api/schema/", f"Token {token.key}", tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_an_agent_api_survives_fuzzing(agent_factory, tmp_path):
    fuzzed = agent_factory("fuzzed", roles="training")
    done = fuzz(f"{fuzzed.url}/api/schema/", f"Bearer {TOKEN}", tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
