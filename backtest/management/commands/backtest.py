"""`manage.py backtest MODEL_ID --start 2017-08-01 --end 2017-12-01 --cost-bps 1`

Starts a backtest through the same service as the API and follows it with the shared progress
bar (Ctrl+C offers to cancel); then prints the figures beside the baselines and any warning.
The run happens in this command's process (backtests run where the model and bars are), or on
the agent named by `--agent`.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backtest import services
from backtest.params import ON_HOLD, SIGNAL_SOURCES, SIZING_METHODS
from operations.exceptions import KtrdrError
from operations.follow import follow_operation

ROWS = (
    ("total_return", "total return", "pct"),
    ("annualised_return", "annualised return", "pct"),
    ("annualised_volatility", "annualised volatility", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("max_drawdown", "max drawdown", "pct"),
    ("max_drawdown_bars", "max drawdown length (bars)", "int"),
    ("calmar", "Calmar", "num"),
    ("hit_rate", "hit rate", "pct"),
    ("trades", "trades", "int"),
    ("turnover", "turnover", "num"),
    ("exposure", "exposure", "pct"),
    ("costs_paid", "costs paid", "pct"),
)


def _cell(value: Any, style: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if style == "pct":
        return f"{100 * value:.2f} %"
    if style == "int":
        return f"{int(value):,}"
    return f"{value:.3f}"


class Command(BaseCommand):
    help = "Backtest a trained model over stored bars and follow it with a live progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "model", help="the trained model's id (manage.py ops / the models page)"
        )
        parser.add_argument("--symbol", default="", help="default: the model's first symbol")
        parser.add_argument("--start", default="", help="ISO date; default: the first stored bar")
        parser.add_argument("--end", default="", help="ISO date, exclusive; default: the last")
        parser.add_argument("--cost-bps", type=float, default=None)
        parser.add_argument("--cost-pips", type=float, default=None)
        parser.add_argument("--slippage-bps", type=float, default=None)
        parser.add_argument("--slippage-pips", type=float, default=None)
        parser.add_argument("--sizing", choices=SIZING_METHODS, default="fixed")
        parser.add_argument("--size", type=float, default=1.0, help="fixed sizing: |position|")
        parser.add_argument("--target-vol", type=float, default=0.10)
        parser.add_argument("--vol-lookback", type=int, default=20)
        parser.add_argument("--max-leverage", type=float, default=3.0)
        parser.add_argument("--signals", choices=SIGNAL_SOURCES, default="model")
        parser.add_argument("--on-hold", choices=ON_HOLD, default="keep")
        parser.add_argument("--agent", default="", help="run it on this (training) agent")

    def handle(self, *args, **options) -> None:
        body = {
            "model_id": options["model"],
            "symbol": options["symbol"],
            "start": options["start"],
            "end": options["end"],
            "cost_bps": options["cost_bps"],
            "cost_pips": options["cost_pips"],
            "slippage_bps": options["slippage_bps"],
            "slippage_pips": options["slippage_pips"],
            "sizing": {
                "method": options["sizing"],
                "size": options["size"],
                "target_vol": options["target_vol"],
                "lookback": options["vol_lookback"],
                "max_leverage": options["max_leverage"],
            },
            "signals": options["signals"],
            "on_hold": options["on_hold"],
            "agent": options["agent"],
        }
        try:
            op = services.backtest_start(body=body)
        except KtrdrError as exc:
            field = getattr(exc, "field", None)
            raise CommandError(f"{field}: {exc.message}" if field else exc.message) from None
        self.stdout.write(f"started {op.operation_id}")
        final = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        self.stdout.write(f"{final.operation_id}: {final.status}")
        if final.status == "failed":
            raise CommandError(final.error_message)
        summary = final.result_summary or {}
        if "figures" in summary:
            self._table(summary)

    def _table(self, summary: dict[str, Any]) -> None:
        base = summary.get("baselines") or {}
        columns = [
            ("strategy", summary["figures"]),
            ("buy & hold", base.get("buy_and_hold") or {}),
            (f"rule ({(base.get('rule') or {}).get('name', '-')})", base.get("rule") or {}),
        ]
        self.stdout.write(
            f"{summary.get('symbol')} {summary.get('timeframe')} · "
            f"{(summary.get('first_bar') or '')[:16]} to {(summary.get('last_bar') or '')[:16]} · "
            f"{summary.get('bars_done', 0):,} bars"
        )
        self.stdout.write(f"{'':28}" + "".join(f"{name:>22}" for name, _ in columns))
        for key, label, style in ROWS:
            cells = "".join(f"{_cell(figures.get(key), style):>22}" for _, figures in columns)
            self.stdout.write(f"{label:28}{cells}")
        for warning in summary.get("warnings") or []:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
