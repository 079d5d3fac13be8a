"""Admin for trained models: browse, filter, inspect metrics; rows are created by training."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from training.models import TrainedModel


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = (
        "strategy_name",
        "timeframe",
        "version",
        "symbols",
        "test_accuracy",
        "size_bytes",
        "operation_id",
        "created_at",
        "keep",
        "download",
    )
    list_editable = ("keep",)
    list_filter = ("strategy_name", "timeframe", "keep")
    search_fields = ("strategy_name", "operation_id", "sha256")
    date_hierarchy = "created_at"
    readonly_fields = (
        "strategy_name",
        "config_hash",
        "timeframe",
        "timeframes",
        "symbols",
        "version",
        "metrics",
        "feature_names",
        "metadata",
        "artifact_path",
        "size_bytes",
        "sha256",
        "operation_id",
        "created_at",
        "created_by",
    )

    def has_add_permission(self, request) -> bool:  # type: ignore[override]
        # A row without its artifact file would be a lie: models come from training runs only.
        return False

    @admin.display(description="download")
    def download(self, obj: TrainedModel) -> str:
        return format_html('<a href="/api/v1/training/models/{}/download">file</a>', obj.pk)
