"""`manage.py train STRATEGY --symbols EURUSD --timeframes 1h --start 2016-01-01 --end 2017-12-31`

Starts a training operation through the same service as the API and follows it with the shared
progress bar (epoch, batch and loss in the bar's message). Ctrl+C offers to cancel the run.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.exceptions import KtrdrError
from operations.follow import follow_operation
from operations.placement import EXECUTION_MODES
from training import services


class Command(BaseCommand):
    help = "Train a strategy and follow the run with a live progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("strategy", help="strategy name (a file in the strategies directory)")
        parser.add_argument(
            "--symbols", default="", help="comma-separated; default: the strategy's"
        )
        parser.add_argument(
            "--timeframes", default="", help="comma-separated; default: the strategy's"
        )
        parser.add_argument("--start", default="", help="ISO date; default: the strategy's history")
        parser.add_argument("--end", default="", help="ISO date; default: the strategy's history")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--execution-mode", choices=EXECUTION_MODES, default=None)
        parser.add_argument(
            "--no-follow",
            action="store_true",
            help="start and return at once (only for runs an agent takes: a run inside this "
            "command would end with it, so that is refused)",
        )

    def handle(self, *args, **options) -> None:
        try:
            op = services.training_start(
                strategy=options["strategy"],
                symbols=options["symbols"],
                timeframes=options["timeframes"],
                start=options["start"],
                end=options["end"],
                seed=options["seed"],
                execution_mode=options["execution_mode"],
                detach=options["no_follow"],
            )
        except KtrdrError as exc:
            field = getattr(exc, "field", None)
            raise CommandError(f"{field}: {exc.message}" if field else exc.message) from None
        self.stdout.write(f"started {op.operation_id}")
        if options["no_follow"]:
            return
        final = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        self.stdout.write(f"{final.operation_id}: {final.status}")
        if final.status == "completed":
            result = final.result_summary or {}
            test = (result.get("metrics") or {}).get("test") or {}
            model = result.get("model") or {}
            self.stdout.write(
                f"test accuracy {test.get('accuracy')}, loss {test.get('loss')}; "
                f"model {model.get('label', '-')} ({model.get('artifact_path', '-')})"
            )
        elif final.status == "failed":
            raise CommandError(final.error_message)
