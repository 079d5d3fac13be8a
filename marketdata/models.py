"""BarSeries: one stored series of bars (symbol x timeframe) and what is known about it.

The bars themselves live in a Parquet file under DATA_DIR (see `marketdata.store`); this row is
the catalogue entry: coverage, row count, the gap summary and the file it points to.
"""

from __future__ import annotations

from django.db import models


class BarSource(models.TextChoices):
    SYNTHETIC = "synthetic", "Synthetic"
    CSV = "csv", "CSV import"
    IB = "ib", "Interactive Brokers"


class BarSeries(models.Model):
    symbol = models.CharField(max_length=16)
    timeframe = models.CharField(max_length=8)
    asset_class = models.CharField(max_length=16, default="stock")
    # The source of the most recent write that changed bars; `sources` lists every source that
    # contributed, `provenance` the ranges each write added or replaced: `{source, start, end,
    # bars, at}` (ISO timestamps; `scattered: true` when the write's bars lie between older
    # ones), oldest first (`marketdata.store`).
    source = models.CharField(max_length=16, choices=BarSource.choices)
    sources = models.JSONField(default=list, blank=True)
    provenance = models.JSONField(default=list, blank=True)
    contract = models.JSONField(default=dict, blank=True)
    first_timestamp = models.DateTimeField(null=True, blank=True)
    last_timestamp = models.DateTimeField(null=True, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    gap_summary = models.JSONField(default=dict, blank=True)
    # Relative to DATA_DIR, so a data directory can move (an agent has its own).
    file_path = models.CharField(max_length=255)
    file_size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol", "timeframe"]
        verbose_name_plural = "bar series"
        constraints = [
            models.UniqueConstraint(fields=["symbol", "timeframe"], name="uniq_bar_series"),
            models.CheckConstraint(
                condition=models.Q(first_timestamp__isnull=True)
                | models.Q(last_timestamp__gte=models.F("first_timestamp")),
                name="bar_series_coverage_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe}"

    @property
    def key(self) -> str:
        return f"{self.symbol}:{self.timeframe}"

    @property
    def unexpected_gaps(self) -> int:
        return int((self.gap_summary or {}).get("unexpected_gaps", 0))
