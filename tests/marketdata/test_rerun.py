"""Re-running a data load: the same series, range, mode and source, as a new operation."""

from __future__ import annotations

import pytest

from marketdata.services import data_load_start
from operations import execution
from operations.local import local_runs
from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)


def test_rerun_of_a_load_loads_the_same_series_again(logged_in, user, data_dir):
    old = data_load_start(
        symbol="SPY", timeframe="1d", start="2023-01-01", end="2023-03-01", mode="full", user=user
    )
    assert local_runs.wait_idle(30)
    new = execution.operation_rerun(operation_id=old.operation_id, user=user)
    assert local_runs.wait_idle(30)
    new.refresh_from_db()
    assert new.status == "completed", new.error_message
    assert new.rerun_of_id == old.pk
    for key in ("symbol", "timeframe", "start", "end", "mode", "source"):
        assert new.metadata[key] == Operation.objects.get(pk=old.pk).metadata[key]
    # Everything was stored by the first load: the second one fetches nothing new.
    assert new.result_summary["bars_added"] == 0

    page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    edit = "/data/?symbol=SPY&amp;timeframe=1d&amp;start=2023-01-01&amp;end=2023-03-01"
    assert edit in page
    form = logged_in.get(edit.replace("&amp;", "&") + "&mode=full").content.decode()
    assert 'name="start" value="2023-01-01"' in form
    assert '<option value="full" selected>' in form
