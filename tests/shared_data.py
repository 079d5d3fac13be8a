"""The project's shared/ folder beside the checkout: real market data the tests read.

Tests may read it; the product never does. A missing file fails the test that needs it (a
silently skipped test would hide that the real-data checks never ran) unless
`KTRDR_ALLOW_MISSING_SHARED=1` says this machine has no shared/ folder on purpose.
`KTRDR_SHARED_DIR` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(
    os.environ.get("KTRDR_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
EURUSD_1H_CSV = SHARED_DIR / "data" / "EURUSD_1h.csv"


def require_shared(path: Path = EURUSD_1H_CSV) -> Path:
    """`path` if it is there; otherwise fail (or skip when allowed), saying what is missing."""
    if path.is_file():
        return path
    message = (
        f"{path} is missing: these tests read the project's shared/ folder beside the checkout "
        "(set KTRDR_SHARED_DIR to its location, or KTRDR_ALLOW_MISSING_SHARED=1 to skip them)"
    )
    if os.environ.get("KTRDR_ALLOW_MISSING_SHARED") == "1":
        pytest.skip(message)
    pytest.fail(message)
    raise AssertionError(message)  # not reached: pytest.fail raises
