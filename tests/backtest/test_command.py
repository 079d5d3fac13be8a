"""`manage.py backtest` for real: a real small model over real stored bars."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_command_runs_the_backtest_and_prints_the_figures(model):
    out = io.StringIO()
    call_command(
        "backtest",
        str(model.pk),
        "--start",
        "2017-06-01",
        "--end",
        "2017-09-01",
        "--cost-bps",
        "1",
        "--sizing",
        "volatility",
        stdout=out,
    )
    text = out.getvalue()
    op = Operation.objects.get(operation_type="backtest")
    assert op.status == "completed"
    assert f"{op.operation_id}: completed" in text
    assert "Sharpe" in text
    assert "buy & hold" in text
    assert "rule (zigzag_known)" in text
    # June 2017 is in the model's training data.
    assert "warning: in-sample:" in text
    assert op.metadata["sizing"]["method"] == "volatility"
    assert op.metadata["cost_bps"] == 1.0


def test_the_command_reports_bad_input_without_a_traceback(model):
    with pytest.raises(CommandError, match="cost_bps: cost_bps must be at least 0"):
        call_command("backtest", str(model.pk), "--cost-bps", "-2", stdout=io.StringIO())
    with pytest.raises(CommandError, match="model_id"):
        call_command("backtest", "12345", stdout=io.StringIO())
