"""Resuming a failed or cancelled data load: the same load again, which fetches only the
segments the first one did not store (loads merge; they never overwrite with a partial range)."""

from __future__ import annotations

import pytest

from marketdata import loader, store
from marketdata.gateways.base import UnknownSymbol
from marketdata.services import data_load_start
from operations import execution
from operations.exceptions import Conflict
from operations.local import local_runs
from operations.models import Operation
from tests.fakes.marketdata_gateway import FakeBarGateway

pytestmark = pytest.mark.django_db(transaction=True)


def _load(monkeypatch, gateway, **kwargs) -> Operation:
    monkeypatch.setattr(loader, "open_gateway", lambda source: gateway)
    params = {
        "symbol": "EURUSD",
        "timeframe": "1h",
        "start": "2024-01-01",
        "end": "2024-05-01",
        "mode": "full",
        "source": "synthetic",
        "execution_mode": "local",
        **kwargs,
    }
    op = data_load_start(**params)
    assert local_runs.wait_idle(30)
    return Operation.objects.get(pk=op.pk)


@pytest.mark.parametrize("mode", ["full", "tail", "backfill"])
def test_a_resumed_load_fetches_only_the_segments_the_failed_one_did_not_store(
    settings, monkeypatch, data_dir, user, mode
):
    settings.KTRDR = {**settings.KTRDR, "DATA_LOAD_SAVE_EVERY": 1}
    # The 4th request fails the load (a fatal error): three one-month segments are stored.
    first = FakeBarGateway(failures={4: UnknownSymbol("IB error 200: gone")})
    old = _load(monkeypatch, first, mode=mode, user=user)
    assert old.status == "failed", old.error_message
    stored = len(store.read_bars("EURUSD", "1h"))
    assert stored > 1000

    again = FakeBarGateway()
    monkeypatch.setattr(loader, "open_gateway", lambda source: again)
    new = execution.operation_resume(operation_id=old.operation_id, user=user)
    assert local_runs.wait_idle(30)
    new.refresh_from_db()
    assert new.status == "completed", new.error_message
    assert new.resumed_from_id == old.pk
    assert new.metadata["resumed_mode"] == mode
    # Only what was missing was asked for: the segments from the failed one on.
    assert len(again.calls) == len(first.calls) - 3
    assert again.calls[0] == first.calls[3]
    assert new.result_summary["bars_added"] == len(store.read_bars("EURUSD", "1h")) - stored

    # The same bars as one uninterrupted load of the range.
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": data_dir.parent / "fresh"}
    whole = _load(monkeypatch, FakeBarGateway(), mode=mode)
    assert whole.status == "completed"
    assert whole.result_summary["bars_received"] == stored + new.result_summary["bars_added"]


def test_resume_of_a_completed_load_is_refused(monkeypatch, data_dir):
    done = _load(monkeypatch, FakeBarGateway(), end="2024-02-01")
    assert done.status == "completed"
    with pytest.raises(Conflict, match="only a failed or cancelled operation can be resumed"):
        execution.operation_resume(operation_id=done.operation_id)
