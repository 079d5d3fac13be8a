"""Admin for the series catalogue (read-mostly: bars are written by loads and imports)."""

from __future__ import annotations

from django.contrib import admin

from marketdata.models import BarSeries


@admin.register(BarSeries)
class BarSeriesAdmin(admin.ModelAdmin):
    list_display = (
        "symbol", "timeframe", "asset_class", "source", "row_count", "first_timestamp",
        "last_timestamp", "unexpected_gaps", "updated_at",
    )  # fmt: skip
    list_filter = ("timeframe", "source", "asset_class")
    search_fields = ("symbol",)
    ordering = ("symbol", "timeframe")
    readonly_fields = (
        "symbol", "timeframe", "asset_class", "source", "sources", "contract", "first_timestamp",
        "last_timestamp", "row_count", "gap_summary", "file_path", "file_size", "created_at",
        "updated_at",
    )  # fmt: skip

    def has_add_permission(self, request) -> bool:
        # Series are created by writing bars (loads, imports), never by hand.
        return False
