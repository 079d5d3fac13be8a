"""`manage.py evaluate` for real: the fold table and the aggregate with its interval."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_command_runs_the_evaluation_and_prints_the_folds_and_the_interval(
    strategies_dir, stored_bars
):
    out = io.StringIO()
    call_command(
        "evaluate",
        "test_small",
        "--symbol",
        "EURUSD",
        "--timeframe",
        "1h",
        "--start",
        "2017-01-01",
        "--end",
        "2017-04-01",
        "--folds",
        "3",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--resamples",
        "500",
        stdout=out,
    )
    text = out.getvalue()
    op = Operation.objects.get(operation_type="evaluation")
    assert op.status == "completed"
    assert f"{op.operation_id}: completed" in text
    lines = text.splitlines()
    fold_lines = [line for line in lines if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert len(fold_lines) == 6
    ci = op.result_summary["aggregate"]["ci"]["accuracy_lift"]
    interval = f"[{100 * ci['low']:+.1f} pt, {100 * ci['high']:+.1f} pt]"
    assert f"accuracy lift: {100 * ci['mean']:+.1f} pt {interval}" in text
    assert "95 % bootstrap interval over 3 folds, 500 resamples" in text


def test_bad_arguments_are_a_command_error_naming_the_field(strategies_dir, stored_bars):
    with pytest.raises(CommandError, match="folds: folds must be between 2 and 20"):
        call_command("evaluate", "test_small", "--folds", "1", stdout=io.StringIO())
