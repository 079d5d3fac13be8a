"""Admin for the agent registry (add/edit agents, pull health on demand) and fetched artifacts."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hostagents import selectors
from hostagents.models import Agent, AgentStart, Artifact


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "base_url", "enabled", "capabilities", "reachable", "health_pulled_at")
    list_filter = ("enabled", "origin")
    search_fields = ("name", "base_url")
    readonly_fields = (
        "capabilities",
        "health",
        "health_pulled_at",
        "last_error",
        "last_error_at",
        "created_at",
    )
    fields = ("name", "base_url", "enabled", "origin", *readonly_fields)
    actions = ("check_health",)

    @admin.display(boolean=True)
    def reachable(self, obj: Agent) -> bool:
        return obj.reachable

    @admin.action(description="Check health now")
    def check_health(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        for row in queryset:
            agent = selectors.agent_pull_health(row, force=True)
            if agent.reachable:
                caps = ", ".join(agent.capabilities) or "none"
                self.message_user(request, f"{agent.name}: ok ({caps})", messages.SUCCESS)
            else:
                self.message_user(request, f"{agent.name}: {agent.last_error}", messages.WARNING)


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("operation_id", "name", "size", "sha256", "created_at")
    search_fields = ("operation_id", "name", "sha256")
    readonly_fields = ("operation_id", "name", "path", "size", "sha256", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AgentStart)
class AgentStartAdmin(admin.ModelAdmin):
    list_display = ("idempotency_key", "operation_id", "operation_type", "created_at")
    search_fields = ("idempotency_key", "operation_id")
    readonly_fields = ("idempotency_key", "operation_id", "operation_type", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
