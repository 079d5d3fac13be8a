"""`manage.py ib_gateway_sim --port 4002`: the IB Gateway simulator for tests and demos.

Point the backend at it with KTRDR_IB_HOST=127.0.0.1 KTRDR_IB_PORT=4002 and load with
--source ib. Bars come from the synthetic generator, or from one CSV (--csv FILE --csv-symbol
--csv-timeframe).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.csvparse import CsvFormatError, parse_bars_csv
from marketdata.ibsim.server import FrameSource, IBGatewaySimulator, SyntheticSource
from marketdata.pacing import PacingRules
from marketdata.symbols import parse_symbol
from marketdata.timeframes import get_timeframe
from operations.exceptions import InvalidInput


class Command(BaseCommand):
    help = "Run an IB Gateway simulator speaking the TWS socket protocol (for ib_async clients)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=4002)
        parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
        parser.add_argument("--csv", type=Path, default=None, help="serve this CSV instead")
        parser.add_argument("--csv-symbol", default=None)
        parser.add_argument("--csv-timeframe", default=None)
        parser.add_argument(
            "--no-pacing", action="store_true", help="never answer error 162 for pacing"
        )
        parser.add_argument(
            "--drop-on-request",
            type=int,
            default=None,
            metavar="N",
            help="close the connection instead of answering the N-th historical request",
        )
        parser.add_argument(
            "--delay", type=float, default=0.0, help="seconds each historical answer takes"
        )
        parser.add_argument(
            "--stats-file",
            type=Path,
            default=None,
            help="write the counters (requests, pacing violations…) as JSON here after each "
            "historical request",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["port"] <= 65535:
            raise CommandError("--port must be between 0 and 65535")
        source = SyntheticSource(seed=options["seed"])
        if options["csv"] is not None:
            if not options["csv_symbol"] or not options["csv_timeframe"]:
                raise CommandError("--csv needs --csv-symbol and --csv-timeframe")
            try:
                symbol = parse_symbol(options["csv_symbol"]).symbol
                tf = get_timeframe(options["csv_timeframe"])
                frame = parse_bars_csv(options["csv"].read_bytes(), timeframe=tf)
            except (OSError, CsvFormatError, InvalidInput) as exc:
                raise CommandError(f"{options['csv']}: {exc}") from None
            source = FrameSource(symbol, tf.name, frame)
        simulator = IBGatewaySimulator(
            source,
            host=options["host"],
            port=options["port"],
            pacing=PacingRules(),
            enforce_pacing=not options["no_pacing"],
            drop_on_request=options["drop_on_request"],
            response_delay=options["delay"],
            stats_path=options["stats_file"],
        )

        async def main() -> None:
            port = await simulator.start()
            self.stdout.write(f"IB Gateway simulator on {options['host']}:{port} (Ctrl+C to stop)")
            self.stdout.flush()
            await simulator.serve_forever()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
        self.stdout.write(f"stopped; {simulator.stats}")
