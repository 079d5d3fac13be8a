"""`manage.py ops …` and `seed_demo` through call_command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from operations import services
from operations.models import Executor, Operation

pytestmark = pytest.mark.django_db(transaction=True)


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_ops_countdown_list_and_show():
    out = _call("ops", "countdown", "--steps", "3", "--step-seconds", "0")
    assert "completed" in out
    op = Operation.objects.get()
    listing = _call("ops", "list")
    assert op.operation_id in listing
    assert "1 operations, 0 active" in listing
    shown = _call("ops", "show", op.operation_id)
    assert "status     completed" in shown
    assert "metrics (last 3 of 3)" in shown
    as_json = _call("ops", "show", op.operation_id, "--json")
    assert '"operation_id"' in as_json


def test_ops_cancel_and_errors_name_the_problem():
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    assert "cancelled" in _call("ops", "cancel", op.operation_id)
    with pytest.raises(CommandError, match="cannot become cancelled"):
        _call("ops", "cancel", op.operation_id)
    with pytest.raises(CommandError, match="does not exist"):
        _call("ops", "show", "op_missing")
    with pytest.raises(CommandError, match="unknown status"):
        _call("ops", "list", "--status", "done")


def test_ops_follow_shows_a_bar_until_the_end():
    out = _call("ops", "countdown", "--steps", "4", "--step-seconds", "0.05", "--follow")
    assert "100.0%" in out
    assert "completed" in out


def test_seed_demo_prints_the_password_once(django_user_model):
    first = _call("seed_demo", "--no-content")
    assert "Demo login (shown once):  demo / " in first
    password = first.split("demo / ")[1].split()[0]
    assert django_user_model.objects.get(username="demo").check_password(password)
    second = _call("seed_demo", "--no-content")
    assert password not in second
    assert "exists" in second


def test_the_demo_user_is_a_superuser_only_when_asked(django_user_model):
    _call("seed_demo", "--no-content")
    demo = django_user_model.objects.get(username="demo")
    assert not demo.is_superuser
    assert not demo.is_staff
    demo.delete()
    _call("seed_demo", "--no-content", "--superuser")
    assert django_user_model.objects.get(username="demo").is_superuser
