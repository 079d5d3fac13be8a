"""`manage.py load_data SYMBOL TIMEFRAME --start --end --mode --source` with a live progress bar.

A thin wrapper: `data_load_start` validates and launches the operation; the bar follows it
through the same selectors every other reader uses (`operations.follow.follow_operation`).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.planner import MODES
from marketdata.services import LOAD_SOURCES, data_load_start
from marketdata.timeframes import TIMEFRAMES
from operations.exceptions import KtrdrError
from operations.follow import follow_operation
from operations.placement import EXECUTION_MODES


class Command(BaseCommand):
    help = "Load bars for SYMBOL TIMEFRAME as a data_load operation and follow its progress."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol", help="e.g. EURUSD, AAPL")
        parser.add_argument("timeframe", help=f"one of {', '.join(TIMEFRAMES)}")
        parser.add_argument("--start", default=None, help="YYYY-MM-DD or ISO timestamp (UTC)")
        parser.add_argument("--end", default=None, help="YYYY-MM-DD or ISO timestamp; default now")
        parser.add_argument("--mode", default="tail", choices=MODES)
        parser.add_argument("--source", default="synthetic", choices=LOAD_SOURCES)
        parser.add_argument("--execution-mode", choices=EXECUTION_MODES, default="auto")
        parser.add_argument(
            "--no-follow",
            action="store_true",
            help="print the operation id and return (only for loads an agent runs: a load run "
            "inside this command would end with it, so that is refused)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            op = data_load_start(
                symbol=options["symbol"],
                timeframe=options["timeframe"],
                start=options["start"],
                end=options["end"],
                mode=options["mode"],
                source=options["source"],
                execution_mode=options["execution_mode"],
                detach=options["no_follow"],
            )
        except KtrdrError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Started {op.operation_id}")
        if options["no_follow"]:
            return
        final = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        summary = final.result_summary or {}
        if final.status == "completed":
            outcome = summary.get("outcome") or final.status
            style = self.style.WARNING if outcome != "completed" else self.style.SUCCESS
            self.stdout.write(
                style(
                    f"{outcome}: {summary.get('bars_received', 0)} bars received, "
                    f"{summary.get('bars_added', 0)} new, {summary.get('bars_replaced', 0)} "
                    f"replaced, {summary.get('bars_unchanged', 0)} unchanged; series has "
                    f"{summary.get('series_bars', summary.get('bars_in_range', '?'))} bars"
                )
            )
            for note in summary.get("notes") or []:
                self.stdout.write(f"  {note}")
            for warning in summary.get("warnings") or []:
                self.stdout.write(self.style.WARNING(f"warning: {warning}"))
            self._write_gaps(summary)
        else:
            self._write_gaps(summary)
            raise CommandError(f"{final.status}: {final.error_message or summary}")

    def _write_gaps(self, summary: dict[str, Any]) -> None:
        """Name the ranges failed segments left unloaded, and how to fill them."""
        ranges = summary.get("failed_ranges") or []
        for gap in ranges:
            self.stdout.write(
                self.style.WARNING(
                    f"  not loaded: {gap['start']} -> {gap['end']} "
                    f"({gap.get('segments', 1)} segment(s)): {gap['error']}"
                )
            )
        if ranges:
            self.stdout.write(
                f"  a --mode full load of {summary.get('start')} -> {summary.get('end')} "
                "fetches them"
            )
