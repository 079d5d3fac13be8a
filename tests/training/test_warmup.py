"""torch warm-up: the processes that train import torch before their first run, the others never."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from training import warmup
from training.warmup import hosts_training

ROOT = Path(__file__).resolve().parents[2]


def hosts(argv, environ=None, *, local_execution=True, role="backend", agent_roles=""):
    return hosts_training(
        argv,
        environ or {},
        local_execution=local_execution,
        role=role,
        agent_roles=agent_roles,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "runserver", "127.0.0.1:8000", "--noreload"],
        ["/srv/ktrdr/manage.py", "train", "rsi_macd_zigzag"],
        ["/venv/bin/daphne", "ktrdr_site.asgi:application"],
        ["/venv/lib/python3.11/site-packages/django/__main__.py", "train", "x"],
    ],
)
def test_servers_and_the_train_command_warm_up(argv):
    assert hosts(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "migrate"],
        ["manage.py", "check"],
        ["manage.py", "ops", "list"],
        ["manage.py", "load_data", "EURUSD"],
        ["manage.py", "shell"],
        ["manage.py"],
        ["manage.py", "train", "x", "--no-follow"],
        ["/venv/bin/pytest", "tests/training"],
        ["/venv/lib/python3.11/site-packages/pytest/__main__.py", "tests"],
        ["-c"],
        [],
    ],
)
def test_commands_that_do_not_train_and_test_runs_never_import_torch(argv):
    assert not hosts(argv)


def test_the_autoreloader_parent_does_not_warm_up_its_serving_child_does():
    argv = ["manage.py", "runserver"]
    assert not hosts(argv, {})
    assert hosts(argv, {"RUN_MAIN": "true"})


def test_only_the_serving_agent_with_the_training_role_warms_up():
    argv = ["manage.py", "run_agent", "--roles", "training,ib", "--port", "8101"]
    # The first process re-executes itself as the agent; it never serves.
    assert not hosts(argv, role="backend", agent_roles="")
    assert hosts(argv, role="agent", agent_roles="ib,training")
    assert not hosts(argv, role="agent", agent_roles="ib")


def test_a_backend_with_local_execution_off_trains_nothing_itself():
    assert not hosts(["manage.py", "runserver", "--noreload"], local_execution=False)


def test_torch_ready_returns_with_torch_imported_with_or_without_a_warm_up():
    warmup.start_warmup()
    warmup.torch_ready()
    assert "torch" in sys.modules
    assert "torch._dynamo" in sys.modules  # what the first optimiser would import
    warmup.start_warmup()  # once per process: nothing more to do
    warmup.torch_ready()


def run_django(argv: list[str], tmp_path: Path) -> str:
    """Set Django up in a fresh process whose command line is `argv`; its report on stdout."""
    script = textwrap.dedent(
        f"""
        import sys, threading
        sys.argv = {argv!r}
        import django
        django.setup()
        threads = [t for t in threading.enumerate() if t.name == "torch-warmup"]
        print("started" if threads else "not started")
        print("torch imported at setup" if "torch" in sys.modules else "no torch at setup")
        for t in threads:
            t.join(120)
        print("torch imported" if "torch" in sys.modules else "no torch")
        """
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ktrdr_site.settings",
        "KTRDR_HOME": str(tmp_path),
        "KTRDR_LOG_LEVEL": "WARNING",
    }
    env.pop("RUN_MAIN", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_command_that_does_not_train_starts_django_without_torch(tmp_path):
    out = run_django(["manage.py", "check"], tmp_path)
    assert out.split("\n")[:3] == ["not started", "no torch at setup", "no torch"]


@pytest.mark.slow
def test_the_train_command_imports_torch_in_the_background_from_ready(tmp_path):
    out = run_django(["manage.py", "train", "rsi_macd_zigzag"], tmp_path)
    lines = out.split("\n")
    assert lines[0] == "started"
    assert lines[2] == "torch imported"
