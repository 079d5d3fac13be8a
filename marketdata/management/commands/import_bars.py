"""`manage.py import_bars FILE --symbol --timeframe`: merge a CSV of bars into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.services import bars_import_csv
from operations.exceptions import KtrdrError


class Command(BaseCommand):
    help = "Import a CSV of OHLCV bars (common layouts are recognised) into the bar store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--timeframe", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            result = bars_import_csv(
                data=path.read_bytes(),
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                filename=str(path),
            )
        except KtrdrError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.symbol} {result.timeframe}: {result.bars_written} bars read, "
                f"{result.bars_added} new; the series has {result.total} bars"
            )
        )
