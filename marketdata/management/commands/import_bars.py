"""`manage.py import_bars FILE --symbol --timeframe`: merge a CSV (plain or `.csv.gz`) of bars
into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.services import bars_import_csv, csv_upload_limit
from marketdata.store import ON_CONFLICT
from operations.exceptions import KtrdrError


class Command(BaseCommand):
    help = "Import a CSV of OHLCV bars (common layouts are recognised) into the bar store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)
        parser.add_argument(
            "--on-conflict",
            choices=ON_CONFLICT,
            default="reject",
            help="bars that differ from stored ones at the same timestamps: reject (default, "
            "nothing is written), keep the stored ones, or replace them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        limit = csv_upload_limit()
        try:
            # Read at most one byte past the limit: the service refuses the file then, without
            # a large file ever being read whole.
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise CommandError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        try:
            result = bars_import_csv(
                data=data,
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                filename=str(path),
                on_conflict=options["on_conflict"],
            )
        except KtrdrError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.symbol} {result.timeframe}: {result.bars_written} bars read, "
                f"{result.bars_added} new, {result.bars_replaced} replaced, {result.bars_kept} "
                f"kept as stored, {result.bars_unchanged} unchanged; the series has "
                f"{result.total} bars"
            )
        )
        for warning in result.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
