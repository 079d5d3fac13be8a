"""`manage.py train STRATEGY --symbols EURUSD --timeframes 1h --start 2016-01-01 --end 2017-12-31`

Starts a training operation through the same service as the API and follows it with the shared
progress bar (epoch, batch and loss in the bar's message). Ctrl+C offers to cancel the run.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.exceptions import KtrdrError
from operations.follow import follow_operation
from operations.local import sigterm_cancels_local_work
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
        with sigterm_cancels_local_work():
            final = follow_operation(
                operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin
            )
        self.stdout.write(f"{final.operation_id}: {final.status}")
        if final.status == "completed":
            result = final.result_summary or {}
            test = (result.get("metrics") or {}).get("test") or {}
            model = result.get("model") or {}
            self.stdout.write(
                f"test accuracy {test.get('accuracy')}, loss {test.get('loss')}; "
                f"model {model.get('label', '-')} ({model.get('artifact_path', '-')})"
            )
            self._baselines(result)
        elif final.status == "failed":
            raise CommandError(final.error_message)

    def _baselines(self, result: dict) -> None:
        """Every split's figures beside its baselines, then the run's warnings."""
        metrics = result.get("metrics") or {}
        weighted = (metrics.get("test") or {}).get("loss_class_weighted")
        loss_name = "class-weighted loss" if weighted else "training loss"
        self.stdout.write(
            f"{'split':<11}{'samples':>8} {'accuracy':>9} {'majority':>9} {'acc lift':>9} "
            f"{'log-loss':>9} {'prior':>9} {'ll lift':>8} {'macro F1':>9}  {loss_name}"
        )
        for split in ("train", "validation", "test"):
            s = metrics.get(split) or {}
            if s.get("majority_rate") is None:
                continue
            self.stdout.write(
                f"{split:<11}{s['samples']:>8} {s['accuracy']:>9.2%} {s['majority_rate']:>9.2%} "
                f"{100 * s['accuracy_lift']:>+6.1f} pp {s['log_loss']:>9.4f} "
                f"{s['prior_log_loss']:>9.4f} {s['log_loss_lift']:>+8.4f} {s['macro_f1']:>9.3f}  "
                f"{s['loss']:.4f}"
            )
        balance = (result.get("class_balance") or {}).get("train")
        if balance:
            self.stdout.write(
                "train class balance: " + ", ".join(f"{k} {v}" for k, v in balance.items())
            )
        test = (result.get("reports") or {}).get("test") or {}
        matrix = (test.get("confusion_matrix") or {}).get("matrix")
        if matrix:
            labels = test["confusion_matrix"]["labels"]
            self.stdout.write("test confusion (rows true, columns predicted):")
            self.stdout.write(" " * 6 + "".join(f"{label:>8}" for label in labels))
            for label, row in zip(labels, matrix, strict=True):
                self.stdout.write(f"{label:<6}" + "".join(f"{n:>8}" for n in row))
        for warning in result.get("warnings") or []:
            self.stdout.write(f"warning {warning['code']}: {warning['message']}")
