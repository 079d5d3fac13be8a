"""Errors of the training pipeline, in plain Python (the executor runs without Django).

Both carry a message that says exactly what went wrong and where; the services map them to
`operations.exceptions.InvalidInput` (400) and the runner lets them fail the operation with that
message.
"""

from __future__ import annotations


class StrategyError(ValueError):
    """A strategy failed validation. `errors` is a list of (path, message) pairs.

    `str(exc)` reads `indicators.rsi_14.period: must be an integer ≥ 2` (several joined by `; `).
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors) or [("", "invalid strategy")]
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.errors))

    def as_details(self) -> dict[str, list[str]]:
        """`{"indicators.rsi_14.period": ["must be an integer ≥ 2"]}` for the API error body."""
        details: dict[str, list[str]] = {}
        for path, message in self.errors:
            details.setdefault(path or "strategy", []).append(message)
        return details


class TrainingDataError(ValueError):
    """The data cannot be trained on (missing, NaNs, too short, a single label class…)."""


class ModelStorageError(OSError):
    """The model cannot be written where it goes (disk full, read-only, no space to start)."""


class TrainingDeviceError(ValueError):
    """The requested training device cannot be used here (`cuda` without CUDA, a bad name…)."""
