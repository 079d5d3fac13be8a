"""Host-agent data: the backend's agent registry and the artifacts/start keys of remote work.

`Agent` is the backend's registry entry (docs/architecture.md §11): where an agent lives, what it
can do and the last health snapshot someone pulled. The token is configuration
(`KTRDR_AGENT_TOKEN`), never a column.

`AgentStart` and `Artifact` exist in both roles' databases. On an agent, `AgentStart` maps the
backend's idempotency key to the operation it started (a retried start returns that operation
instead of starting a second run) and `Artifact` lists the files a run produced. On the backend,
`Artifact` lists the files fetched from agents after checksum verification.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

AGENT_NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    "Agent names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class Agent(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[AGENT_NAME_VALIDATOR])
    base_url = models.URLField(max_length=300)
    # From the agent's own /api/v1/health ("training", "gpu", "ib"); refreshed on every pull.
    capabilities = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    health = models.JSONField(null=True, blank=True)
    health_pulled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Where the entry came from ("settings", "admin", "command"): settings entries are re-synced.
    origin = models.CharField(max_length=16, default="admin")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"

    @property
    def reachable(self) -> bool:
        """True when the last health pull succeeded (an agent never pulled counts as unknown)."""
        return self.health is not None and not self.last_error

    def has_capability(self, capability: str) -> bool:
        return capability in (self.capabilities or [])


class AgentStart(models.Model):
    """Agent side: idempotency key (the backend's operation id) → the operation it started."""

    idempotency_key = models.CharField(max_length=128, unique=True)
    operation_id = models.CharField(max_length=96)
    operation_type = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.idempotency_key} → {self.operation_id}"


class Artifact(models.Model):
    """A file an operation produced (agent) or that was fetched and verified (backend)."""

    operation_id = models.CharField(max_length=96, db_index=True)
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["operation_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["operation_id", "name"], name="uniq_artifact_name"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id}/{self.name}"

    def manifest(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}
