"""KTRDR_IB_PACING_DIR: the backend and the IB agents of one host share one pacing budget."""

from __future__ import annotations

from marketdata.loader import pacing_ledger
from marketdata.pacing import FileLedger


def test_a_pacing_folder_is_used_by_every_process_whatever_its_home_or_cache(settings, tmp_path):
    settings.KTRDR = {**settings.KTRDR, "IB_PACING_DIR": str(tmp_path / "pacing")}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the backend's Redis: agents do not have it
    ledger = pacing_ledger(("127.0.0.1", 4002))
    assert isinstance(ledger, FileLedger)
    assert ledger.path == tmp_path / "pacing" / "127.0.0.1_4002.json"
