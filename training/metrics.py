"""Prometheus metrics of training runs (docs/monitoring.md): throughput, once per epoch.

Recorded by `TrainingExecutor` at the end of each epoch — never per batch: the batch loop is
the hot path and its bridge write has a sub-microsecond budget. Plain Python: no Django here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TRAINING_SAMPLES = Counter(
    "ktrdr_training_samples", "Training samples processed (each epoch counts its samples)."
)
TRAINING_EPOCHS = Counter("ktrdr_training_epochs", "Training epochs finished.")
TRAINING_SAMPLES_PER_SECOND = Gauge(
    "ktrdr_training_samples_per_second",
    "Samples per second of the running trainings (each one's last epoch), summed over them and "
    "over the live processes.",
    multiprocess_mode="livesum",
)


class TrainingThroughput:
    """One run's share of `ktrdr_training_samples_per_second`: its last epoch's rate while it
    runs, nothing once it ended (`end`, idempotent)."""

    def __init__(self) -> None:
        self.rate = 0.0

    def epoch(self, samples: int, seconds: float) -> None:
        TRAINING_SAMPLES.inc(samples)
        TRAINING_EPOCHS.inc()
        rate = samples / seconds if seconds > 0 else 0.0
        TRAINING_SAMPLES_PER_SECOND.inc(rate - self.rate)
        self.rate = rate

    def end(self) -> None:
        if self.rate:
            TRAINING_SAMPLES_PER_SECOND.dec(self.rate)
            self.rate = 0.0
