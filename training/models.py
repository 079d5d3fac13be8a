"""TrainedModel: one saved model artifact and what it was trained on.

Versions count up per strategy and base timeframe (`rsi_macd_zigzag` 1h v1, v2, …). The row
records the artifact's sha256 and size so a download can be verified end to end, and the
operation that produced it (lineage).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TrainedModel(models.Model):
    strategy_name = models.CharField(max_length=120, db_index=True)
    config_hash = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=8, help_text="base timeframe")
    timeframes = models.JSONField(default=list)
    symbols = models.JSONField(default=list)
    version = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    feature_names = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Relative to KTRDR MODELS_DIR when the file lies under it (the usual case), so a moved
    # models directory keeps working; absolute otherwise.
    artifact_path = models.CharField(max_length=500)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # The weights' own digest (training.artifacts.weights_sha256): equal for equal weights, where
    # the file's sha256 also covers metadata such as the save time.
    weights_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    operation_id = models.CharField(max_length=96, blank=True, default="", db_index=True)
    # Kept by `ops prune` whatever its age, with its producing operation (training.retention).
    keep = models.BooleanField(
        default=False, help_text="never pruned (nor the operation that produced it)"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["strategy_name", "timeframe", "version"], name="uniq_model_version"
            ),
            # One model per producing operation: completion is idempotent even when two backend
            # processes discover the same remote completion at once.
            models.UniqueConstraint(
                fields=["operation_id"],
                condition=~models.Q(operation_id=""),
                name="uniq_model_per_operation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy_name} {self.timeframe} v{self.version}"

    @property
    def label(self) -> str:
        return str(self)

    @property
    def test_accuracy(self) -> float | None:
        return ((self.metrics or {}).get("test") or {}).get("accuracy")

    @property
    def test_figures(self) -> dict:
        return (self.metrics or {}).get("test") or {}

    @property
    def warnings(self) -> list:
        found = (self.metrics or {}).get("warnings")
        return found if isinstance(found, list) else []

    @property
    def test_loss(self) -> float | None:
        return ((self.metrics or {}).get("test") or {}).get("loss")
