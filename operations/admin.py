"""Admin for operations: read-only, live through the read path, a cancel action through the one
cancel path.

Rows of active operations are read with `operations.selectors.operation_get` (the same TTL-cached
pull every reader uses), so the list and the change page show progress at most one TTL old for
work run by any process or agent, never the row's last stored figure. Cancelling needs the
change permission (`has_cancel_permission`): a view-only staff user sees no cancel action.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from operations import execution, selectors
from operations.countdown import countdown_start
from operations.exceptions import InvalidInput, KtrdrError
from operations.models import Operation, OperationMetric


class OperationMetricInline(admin.TabularInline):
    model = OperationMetric
    extra = 0
    can_delete = False
    fields = ("seq", "kind", "recorded_at", "payload")
    readonly_fields = fields
    ordering = ("seq",)
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False


@admin.action(description="Cancel selected operations", permissions=["cancel"])
def cancel_operations(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    cancelled, refused = 0, []
    for op in queryset:
        try:
            execution.operation_cancel(
                operation_id=op.operation_id,
                reason=f"cancelled in the admin by {request.user}",
                user=request.user,
            )
            cancelled += 1
        except KtrdrError as exc:
            refused.append(exc.message)
    if cancelled:
        modeladmin.message_user(request, f"Cancel requested for {cancelled} operation(s).")
    for message in refused:
        modeladmin.message_user(request, message, level=messages.WARNING)


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = (
        "operation_id",
        "operation_type",
        "live_status",
        "progress_percent",
        "executor",
        "agent",
        "created_at",
        "completed_at",
    )
    list_filter = (
        "status",
        "operation_type",
        "executor",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("operation_id", "remote_operation_id", "strategy_name", "metadata")
    date_hierarchy = "created_at"
    actions = [cancel_operations]
    inlines = [OperationMetricInline]
    readonly_fields = (
        "operation_id",
        "operation_type",
        "live_status",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
        "progress_pretty",
        "metadata_pretty",
        "result_pretty",
        "error_message",
        "executor",
        "agent",
        "remote_operation_id",
        "owner",
        "cancel_requested_at",
        "cancel_acknowledged_at",
        "cancel_reason",
        "refreshed_at",
        "snapshot_age",
        "unreachable_since",
        "metrics_cursor",
        "remote_metrics_cursor",
        "strategy_name",
        "input_series",
        "produced_model",
        "created_by",
    )
    exclude = ("progress", "metadata", "result_summary")

    change_list_template = "admin/operations/operation/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Operations are started by the services (API, pages, commands), never typed in.
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Operation | None:
        op = super().get_object(request, object_id, from_field)
        return None if op is None else self._live(op)

    @staticmethod
    def _live(op: Operation) -> Operation:
        """The operation as the read path gives it (a refresh for an active one, once per row)."""
        live = getattr(op, "_live", None)
        if live is None:
            live = selectors.operation_get(operation_id=op.operation_id) if op.is_active else op
            op._live = live
        return live

    def get_urls(self) -> list:
        extra = [
            path(
                "start-countdown/",
                self.admin_site.admin_view(self.start_countdown_view),
                name="operations_operation_start_countdown",
            )
        ]
        return extra + super().get_urls()

    def start_countdown_view(self, request: HttpRequest) -> HttpResponse:
        """Start the built-in countdown from the admin (a quick end-to-end check)."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        error = ""
        if request.method == "POST":
            try:
                op = countdown_start(
                    steps=request.POST.get("steps", 10),
                    step_seconds=request.POST.get("step_seconds", 0.5),
                    user=request.user,
                )
            except InvalidInput as exc:
                error = f"{exc.field}: {exc.message}"
            else:
                self.message_user(request, f"Started {op.operation_id}")
                return redirect(reverse("admin:operations_operation_change", args=[op.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Start a countdown operation",
            "error": error,
        }
        return TemplateResponse(request, "admin/operations/operation/start_countdown.html", context)

    @admin.display(description="status", ordering="status")
    def live_status(self, obj: Operation) -> str:
        return self._live(obj).get_status_display()

    @admin.display(description="progress")
    def progress_percent(self, obj: Operation) -> str:
        return f"{self._live(obj).percentage:.1f}%"

    @admin.display(description="snapshot age")
    def snapshot_age(self, obj: Operation) -> str:
        live = self._live(obj)
        age = live.snapshot_age_seconds
        if age is None:
            return "never pulled"
        return f"{age:.1f} s" + ("" if live.is_active else " (final)")

    @staticmethod
    def _pretty(value: object) -> str:
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, default=str))

    @admin.display(description="progress")
    def progress_pretty(self, obj: Operation) -> str:
        return self._pretty(self._live(obj).progress)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj: Operation) -> str:
        return self._pretty(obj.metadata)

    @admin.display(description="result summary")
    def result_pretty(self, obj: Operation) -> str:
        return self._pretty(obj.result_summary)
