"""Operations and their metrics: the persisted side of the pull design (docs/architecture.md §11).

An Operation row holds the last snapshot a reader pulled; OperationMetric rows are the append-only
metric history, numbered per operation by `seq` (the cursor clients page with).
"""

from __future__ import annotations

import secrets
import time

from django.db import models
from django.utils import timezone


class OperationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset(
    {OperationStatus.COMPLETED, OperationStatus.FAILED, OperationStatus.CANCELLED}
)
ACTIVE_STATUSES = frozenset(
    {OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.CANCELLING}
)


# The metadata key a re-run carries: the operation id it re-runs (made `Operation.rerun_of`).
RERUN_OF = "rerun_of"
# The metadata keys a resume carries: the operation id it resumes (made `Operation.resumed_from`)
# and how many of that operation's metric records (seq 0…N-1) it starts with, copied at creation.
RESUME_OF = "resume_of"
RESUME_METRICS_SEQ = "resume_metrics_seq"


class Executor(models.TextChoices):
    LOCAL = "local", "Local"
    AGENT = "agent", "Agent"


def new_operation_id(operation_type: str) -> str:
    """`op_{type}_{YYYYmmdd_HHMMSS}_{8 hex}`: sortable by time, unguessable suffix."""
    stamp = timezone.now().strftime("%Y%m%d_%H%M%S")
    return f"op_{operation_type}_{stamp}_{secrets.token_hex(4)}"


def empty_progress() -> dict:
    return {
        "percentage": 0.0,
        "message": "",
        "phase": "",
        "steps_completed": 0,
        "steps_total": 0,
        "items_processed": 0,
        "items_total": 0,
        "context": {},
        "eta_seconds": None,
    }


class Operation(models.Model):
    operation_id = models.CharField(max_length=96, unique=True, editable=False)
    operation_type = models.CharField(max_length=40, db_index=True)
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    progress = models.JSONField(default=empty_progress, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    result_summary = models.JSONField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")

    executor = models.CharField(max_length=8, choices=Executor.choices, default=Executor.LOCAL)
    agent = models.CharField(max_length=64, blank=True, default="")
    remote_operation_id = models.CharField(max_length=96, blank=True, default="")
    # The process instance that runs a local operation; another instance reading a running
    # operation it does not own knows the owner is gone (docs/architecture.md §5, "interrupted").
    owner = models.CharField(max_length=128, blank=True, default="")

    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_acknowledged_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True, default="")

    refreshed_at = models.DateTimeField(null=True, blank=True)
    unreachable_since = models.DateTimeField(null=True, blank=True)
    # Next metric seq to pull from the source: persisted so no restart re-reads or skips one.
    metrics_cursor = models.PositiveIntegerField(default=0)
    # The source's own cursor (an agent's metric seq), which can differ from ours.
    remote_metrics_cursor = models.PositiveIntegerField(default=0)
    # The same two cursors for the operation's log lines (OperationLog.seq, the source's seq).
    logs_cursor = models.PositiveIntegerField(default=0)
    remote_logs_cursor = models.PositiveIntegerField(default=0)

    # Lineage: plain references so the apps stay decoupled; the metadata says more.
    strategy_name = models.CharField(max_length=120, blank=True, default="")
    input_series = models.JSONField(default=list, blank=True)
    produced_model = models.CharField(max_length=120, blank=True, default="")

    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The finished operation this one started again with the same inputs (operation_rerun).
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    # The failed or cancelled operation this one goes on with from its checkpoint
    # (operation_resume); terminal statuses are final, so a resume is a new, linked operation.
    resumed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumes"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="op_status_created"),
            models.Index(fields=["operation_type", "-created_at"], name="op_type_created"),
        ]

    def __str__(self) -> str:
        return self.operation_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def percentage(self) -> float:
        try:
            return float((self.progress or {}).get("percentage") or 0.0)
        except (TypeError, ValueError):
            return 0.0

    @property
    def snapshot_age_seconds(self) -> float | None:
        """How old the stored snapshot is (None: never pulled)."""
        if self.refreshed_at is None:
            return None
        return max(time.time() - self.refreshed_at.timestamp(), 0.0)

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.completed_at or timezone.now()
        return max((end - self.started_at).total_seconds(), 0.0)


class OperationMetric(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="metrics")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    recorded_at = models.DateTimeField()
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["operation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "seq"], name="uniq_operation_metric_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id}#{self.seq} {self.kind}"

    def as_record(self) -> dict:
        """The API shape: `seq`, `kind`, `recorded_at` and the payload's own fields."""
        return {
            **self.payload,
            "seq": self.seq,
            "kind": self.kind,
            "recorded_at": self.recorded_at.isoformat(),
        }


class OperationLog(models.Model):
    """One log line of an operation (docs/logs-and-retention.md): caught by
    `operations.oplog.OperationLogHandler` where it was logged, stored with the next write of the
    row in that process, or pulled from the agent that ran it. Append-only, numbered per
    operation by `seq` (the cursor); only the newest `KTRDR_OPERATION_LOG_MAX_LINES` are kept."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="logs")
    seq = models.PositiveIntegerField()
    logged_at = models.DateTimeField()
    level = models.CharField(max_length=8)
    # Where it was logged: "" for this process, else the agent's name.
    source = models.CharField(max_length=64, blank=True, default="")
    event = models.CharField(max_length=32, blank=True, default="")
    message = models.TextField()

    class Meta:
        ordering = ["operation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "seq"], name="uniq_operation_log_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id}#{self.seq} {self.level} {self.message[:60]}"


class RunFigure(models.Model):
    """One figure of a finished run (a kind's `run_columns`, plus `duration_seconds`), written
    when the operation ends: the runs table sorts and compares by these without reading JSON."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="figures")
    name = models.CharField(max_length=40)
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["operation", "name"], name="uniq_run_figure"),
        ]
        indexes = [models.Index(fields=["name", "value"], name="run_figure_name_value")]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.name}={self.value}"
