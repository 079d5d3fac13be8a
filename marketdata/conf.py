"""Market-data knobs: read from the `KTRDR` settings dict on every call, with defaults here.

The operations core's accessor (`operations.conf.ktrdr_setting`) knows the shared knobs
(DATA_DIR, IB_HOST, IB_PORT, IB_CLIENT_ID); the data-load tuning knobs below are read the same
way but default here, so tests and benchmarks can override them through `settings.KTRDR`.
"""

from __future__ import annotations

from typing import Any

from operations.conf import ktrdr_setting

DEFAULTS: dict[str, Any] = {
    # Attempts per segment before it is reported failed (the load goes on).
    "DATA_LOAD_MAX_ATTEMPTS": 4,
    # First retry wait in seconds; doubles per attempt up to DATA_LOAD_MAX_BACKOFF.
    "DATA_LOAD_RETRY_BACKOFF": 2.0,
    "DATA_LOAD_MAX_BACKOFF": 60.0,
    # Wait after IB reports a pacing violation (IB asks for about a minute).
    "IB_PACING_BACKOFF": 60.0,
    # Merge-save fetched bars into the store after this many segments.
    "DATA_LOAD_SAVE_EVERY": 10,
    # Seconds before an unanswered IB request counts as timed out (retryable, not "no data").
    "IB_REQUEST_TIMEOUT": 60.0,
    "IB_CONNECT_TIMEOUT": 10.0,
    # Our copy of IB's pacing rules (PacingRules fields), or False to switch pacing off.
    "IB_PACING": {},
    # A folder shared by every process of this host on one IB endpoint (empty: see pacing_ledger).
    "IB_PACING_DIR": "",
    # Seed of the synthetic source.
    "SYNTHETIC_SEED": 0,
    # Largest CSV upload accepted, in bytes.
    "CSV_UPLOAD_MAX_BYTES": 64 * 1024 * 1024,
    # Most bars the series API returns in one answer.
    "BARS_API_MAX": 10_000,
}


def md_setting(name: str) -> Any:
    if name not in DEFAULTS:
        raise KeyError(f"unknown market-data setting {name!r}")
    return ktrdr_setting(name, DEFAULTS[name])
