"""`manage.py evaluate STRATEGY --symbol EURUSD --timeframe 1h --folds 5 --seeds 3`

Starts a walk-forward evaluation through the same service as the API and follows it with the
shared progress bar (Ctrl+C offers to cancel); then prints the fold table and the aggregate
with its bootstrap interval. `--agent NAME` runs it on that training agent.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation import services
from evaluation.folds import SCHEMES
from operations.exceptions import KtrdrError
from operations.follow import follow_operation
from operations.placement import EXECUTION_MODES

FIGURE_ROWS = (
    ("accuracy", "accuracy", "pct"),
    ("majority_rate", "majority rate", "pct"),
    ("accuracy_lift", "accuracy lift", "pt"),
    ("log_loss", "log-loss", "num"),
    ("prior_log_loss", "prior log-loss", "num"),
    ("log_loss_lift", "log-loss lift", "num"),
    ("macro_f1", "macro F1", "num"),
)


def _cell(value: Any, style: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if style == "pct":
        return f"{100 * value:.1f} %"
    if style == "pt":
        return f"{100 * value:+.1f} pt"
    return f"{value:.4f}"


class Command(BaseCommand):
    help = "Walk-forward evaluation of a strategy (folds × seeds) with a live progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("strategy", help="strategy name (a file in the strategies directory)")
        parser.add_argument("--symbol", default="", help="default: the strategy's first")
        parser.add_argument("--timeframe", default="", help="the strategy's base timeframe")
        parser.add_argument("--start", default="", help="ISO date; default: the strategy's")
        parser.add_argument("--end", default="", help="ISO date, exclusive")
        parser.add_argument("--folds", type=int, default=None, help="2-20 (default 5)")
        parser.add_argument("--scheme", choices=SCHEMES, default=None)
        parser.add_argument("--train-bars", type=int, default=None)
        parser.add_argument("--test-bars", type=int, default=None)
        parser.add_argument("--purge-bars", type=int, default=None)
        parser.add_argument("--embargo-bars", type=int, default=None)
        parser.add_argument(
            "--seeds", default=None, help="a count (1-10) or a comma-separated list of seeds"
        )
        parser.add_argument("--epochs", type=int, default=None, help="override the strategy's")
        parser.add_argument("--resamples", type=int, default=None, help="bootstrap (2000)")
        parser.add_argument("--execution-mode", choices=EXECUTION_MODES, default=None)
        parser.add_argument("--agent", default="", help="run it on this (training) agent")

    def handle(self, *args, **options) -> None:
        body: dict[str, Any] = {
            "strategy": options["strategy"],
            "symbol": options["symbol"],
            "timeframe": options["timeframe"],
            "start": options["start"],
            "end": options["end"],
            "folds": options["folds"],
            "scheme": options["scheme"],
            "train_bars": options["train_bars"],
            "test_bars": options["test_bars"],
            "purge_bars": options["purge_bars"],
            "embargo_bars": options["embargo_bars"],
            "seeds": options["seeds"],
            "epochs": options["epochs"],
            "execution_mode": options["execution_mode"],
            "agent": options["agent"],
        }
        if options["resamples"] is not None:
            body["bootstrap"] = {"resamples": options["resamples"]}
        body = {k: v for k, v in body.items() if v not in (None, "")}
        try:
            op = services.evaluation_start(body=body)
        except KtrdrError as exc:
            field = getattr(exc, "field", None)
            raise CommandError(f"{field}: {exc.message}" if field else exc.message) from None
        self.stdout.write(f"started {op.operation_id}")
        final = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        self.stdout.write(f"{final.operation_id}: {final.status}")
        summary = final.result_summary if isinstance(final.result_summary, dict) else {}
        if summary.get("fold_results"):
            self._tables(summary)
        if final.status == "failed":
            raise CommandError(final.error_message)

    def _tables(self, summary: dict[str, Any]) -> None:
        self.stdout.write(
            f"{summary.get('strategy')} on {summary.get('symbol')} {summary.get('timeframe')} · "
            f"{summary.get('scheme')} · purge {summary.get('purge_bars')} · embargo "
            f"{summary.get('embargo_bars')} · {summary.get('units_done')} of "
            f"{summary.get('units_total')} fold × seed runs"
        )
        head = (
            "fold",
            "seed",
            "train",
            "test",
            "accuracy",
            "majority",
            "lift",
            "log-loss",
            "prior",
        )
        widths = (4, 10, 35, 35, 9, 9, 9, 9, 9)
        self.stdout.write(" ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
        for r in summary["fold_results"]:
            train = f"{r['train']['first'][:16]}..{r['validation']['last'][:16]}"
            test = f"{r['test']['first'][:16]}..{r['test']['last'][:16]}"
            cells = (
                r["fold"],
                r["seed"],
                train,
                test,
                _cell(r["accuracy"], "pct"),
                _cell(r["majority_rate"], "pct"),
                _cell(r["accuracy_lift"], "pt"),
                _cell(r["log_loss"], "num"),
                _cell(r["prior_log_loss"], "num"),
            )
            self.stdout.write(" ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True)))
        agg = summary.get("aggregate") or {}
        figures = agg.get("figures") or {}
        self.stdout.write(f"{'':16}" + "".join(f"{s:>10}" for s in ("mean", "median", "std")))
        for key, label, style in FIGURE_ROWS:
            stats = figures.get(key) or {}
            cells = "".join(f"{_cell(stats.get(s), style):>10}" for s in ("mean", "median", "std"))
            self.stdout.write(f"{label:16}{cells}")
        boot = agg.get("bootstrap") or {}
        for key, label, style in (
            ("accuracy_lift", "accuracy lift", "pt"),
            ("log_loss_lift", "log-loss lift", "num"),
        ):
            ci = (agg.get("ci") or {}).get(key) or {}
            self.stdout.write(
                f"{label}: {_cell(ci.get('mean'), style)} "
                f"[{_cell(ci.get('low'), style)}, {_cell(ci.get('high'), style)}] "
                f"({100 * float(boot.get('confidence', 0.95)):.0f} % bootstrap interval over "
                f"{ci.get('folds')} folds, {boot.get('resamples')} resamples)"
            )
        for warning in summary.get("warnings") or []:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
