"""`manage.py ops list|show|cancel|follow|logs|countdown|prune|rerun|resume` — the terminal.

Thin wrappers over the selectors and services: the same read path as the API and the pages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations import execution, selectors
from operations.conf import ktrdr_setting
from operations.countdown import countdown_start
from operations.exceptions import KtrdrError
from operations.follow import describe_freshness, follow_logs, follow_operation
from operations.local import sigterm_cancels_local_work
from operations.placement import EXECUTION_MODES
from operations.retention import operations_prune, parse_age
from operations.serializers import serialize_operation


def _bounded(kind: type, low: float, high: float, what: str) -> Callable[[str], Any]:
    """An argparse type: `kind(text)` (int or float) between `low` and `high`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    return parse


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    return _bounded(int, low, high, "a whole number")


def _bounded_float(low: float, high: float) -> Callable[[str], float]:
    return _bounded(float, low, high, "a number")


class Command(BaseCommand):
    help = "List, show, cancel and follow operations; start the built-in countdown."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ls = sub.add_parser("list", help="newest first")
        ls.add_argument("--status", default="", help="comma-separated statuses")
        ls.add_argument("--type", dest="operation_type", default="")
        ls.add_argument("--active", action="store_true", help="only pending/running/cancelling")
        ls.add_argument("--search", default="", help="part of the operation id or strategy")
        ls.add_argument("--limit", type=int, default=20)
        ls.add_argument("--offset", type=int, default=0)
        show = sub.add_parser("show", help="one operation with its latest metrics")
        show.add_argument("operation_id")
        show.add_argument("--json", action="store_true", help="the API's JSON")
        show.add_argument("--metrics", type=int, default=10, help="how many latest metrics")
        cancel = sub.add_parser("cancel", help="request a cancel")
        cancel.add_argument("operation_id")
        cancel.add_argument("--reason", default="cancelled from the terminal")
        follow = sub.add_parser("follow", help="live progress bar until it ends")
        follow.add_argument("operation_id")
        follow.add_argument("--interval", type=float, default=0.5)
        logs = sub.add_parser(
            "logs", help="its log lines, wherever it runs (an agent's are pulled from it)"
        )
        logs.add_argument("operation_id")
        logs.add_argument(
            "--follow", action="store_true", help="print new lines until the operation ends"
        )
        logs.add_argument(
            "--lines", type=_bounded_int(0, 5000), default=100, help="the last N first (100)"
        )
        logs.add_argument("--interval", type=_bounded_float(0.05, 60.0), default=0.5)
        prune = sub.add_parser(
            "prune",
            help="delete finished operations older than an age, with their metrics, logs and "
            "owned files (models still referenced are kept)",
        )
        prune.add_argument(
            "--older-than",
            default=None,
            help="age since it ended: a whole number and d, h or m (days, hours, minutes), "
            "e.g. 30d; default KTRDR_PRUNE_OLDER_THAN",
        )
        prune.add_argument(
            "--status", default="", help="comma-separated: completed, failed, cancelled (all)"
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="say what would go, delete nothing"
        )
        countdown = sub.add_parser("countdown", help="start the built-in countdown")
        countdown.add_argument("--steps", type=int, default=10)
        countdown.add_argument("--step-seconds", type=float, default=0.5)
        countdown.add_argument("--fail-at", type=int, default=None)
        countdown.add_argument(
            "--follow", action="store_true", help="a live progress bar (else: wait silently)"
        )
        countdown.add_argument(
            "--execution-mode", choices=EXECUTION_MODES, default="auto", help="default: here"
        )
        countdown.add_argument("--agent", default=None, help="run it on this registered agent")
        rerun = sub.add_parser(
            "rerun", help="start a finished operation again with the same inputs (a new one)"
        )
        rerun.add_argument("operation_id")
        rerun.add_argument(
            "--follow", action="store_true", help="a live progress bar (else: wait silently)"
        )
        rerun.add_argument(
            "--no-wait",
            action="store_true",
            help="return at once (only for work sent to an agent; work run here is refused)",
        )
        resume = sub.add_parser(
            "resume",
            help="go on with a failed or cancelled operation from where it stopped (a new one)",
        )
        resume.add_argument("operation_id")
        resume.add_argument(
            "--follow", action="store_true", help="a live progress bar (else: wait silently)"
        )
        resume.add_argument(
            "--no-wait",
            action="store_true",
            help="return at once (only for work sent to an agent; work run here is refused)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except KtrdrError as exc:
            raise CommandError(exc.message) from None

    def _list(self, options: dict[str, Any]) -> None:
        page = selectors.operation_list(
            status=options["status"] or None,
            operation_type=options["operation_type"] or None,
            active_only=options["active"],
            search=options["search"] or None,
            limit=options["limit"],
            offset=options["offset"],
        )
        self.stdout.write(f"{page.total} operations, {page.active_count} active")
        for op in page.operations:
            message = (op.progress or {}).get("message") or op.error_message
            self.stdout.write(
                f"{op.operation_id:52} {op.operation_type:10} {op.status:10} "
                f"{op.percentage:5.1f}%  {message[:60]}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        op = selectors.operation_get(operation_id=options["operation_id"], force_refresh=True)
        if options["json"]:
            self.stdout.write(json.dumps(serialize_operation(op), indent=2, default=str))
            return
        progress = op.progress or {}
        lines = [
            f"{op.operation_id}  ({op.operation_type}, {op.executor} {op.agent})".replace(
                " )", ")"
            ),
            f"  status     {op.status}",
            f"  progress   {op.percentage:.1f}%  {progress.get('phase') or ''} "
            f"{progress.get('message') or ''}".rstrip(),
            f"  created    {op.created_at:%Y-%m-%d %H:%M:%S} UTC",
        ]
        if op.started_at:
            lines.append(f"  started    {op.started_at:%Y-%m-%d %H:%M:%S} UTC")
        if op.completed_at:
            lines.append(f"  ended      {op.completed_at:%Y-%m-%d %H:%M:%S} UTC")
        if op.error_message:
            lines.append(f"  error      {op.error_message}")
        if op.cancel_requested_at:
            acknowledged = (
                f", acknowledged {op.cancel_acknowledged_at:%H:%M:%S}"
                if op.cancel_acknowledged_at
                else ""
            )
            lines.append(
                f"  cancel     requested {op.cancel_requested_at:%H:%M:%S}{acknowledged} "
                f"({op.cancel_reason})"
            )
            if (op.result_summary or {}).get("cancel_not_needed"):
                lines.append("             the work had finished before the cancel reached it")
        lines.append(f"  snapshot   {describe_freshness(op)}")
        if op.result_summary:
            lines.append(f"  result     {json.dumps(op.result_summary, default=str)[:400]}")
        self.stdout.write("\n".join(lines))
        count = options["metrics"]
        if count > 0:
            records = selectors.operation_all_metrics(operation=op)[-count:]
            if records:
                self.stdout.write(f"  metrics (last {len(records)} of {op.metrics_cursor}):")
                for record in records:
                    values = {
                        k: v for k, v in record.items() if k not in {"seq", "kind", "recorded_at"}
                    }
                    self.stdout.write(
                        f"    #{record['seq']} {record['kind']} {json.dumps(values, default=str)}"
                    )

    def _cancel(self, options: dict[str, Any]) -> None:
        op = execution.operation_cancel(
            operation_id=options["operation_id"], reason=options["reason"]
        )
        self.stdout.write(f"{op.operation_id}: {op.status}")

    def _follow(self, options: dict[str, Any]) -> None:
        op = follow_operation(
            operation_id=options["operation_id"],
            stdout=self.stdout,
            stdin=sys.stdin,
            interval=options["interval"],
        )
        self._report_end(op)

    def _logs(self, options: dict[str, Any]) -> None:
        op = follow_logs(
            operation_id=options["operation_id"],
            write=self.stdout.write,
            last=options["lines"],
            follow=options["follow"],
            interval=options["interval"],
        )
        if options["follow"]:
            self._report_end(op)

    def _prune(self, options: dict[str, Any]) -> None:
        raw = options["older_than"]
        if raw is None:
            raw = str(ktrdr_setting("PRUNE_OLDER_THAN"))
            age = parse_age(raw, field_name="KTRDR_PRUNE_OLDER_THAN")
        else:
            age = parse_age(raw, field_name="--older-than")
        statuses = [s.strip() for s in options["status"].split(",") if s.strip()]
        report = operations_prune(older_than=age, statuses=statuses, dry_run=options["dry_run"])
        verb = "would delete" if report.dry_run else "deleted"
        write = self.stdout.write
        write(f"Finished operations that ended before {report.cutoff:%Y-%m-%d %H:%M} UTC ({raw}):")
        for d in report.decisions:
            if d.delete:
                owned = ", ".join(h.what for h in d.holdings)
                write(
                    f"  {verb:12} {d.operation_id} ({d.reason}): {d.metrics} metric records, "
                    f"{d.log_lines} log lines{', ' + owned if owned else ''}"
                )
            else:
                write(f"  {'kept':12} {d.operation_id}: {d.reason}")
        for operation_id, status in report.active_kept:
            write(f"  {'kept':12} {operation_id}: {status} (only finished operations are pruned)")
        files = f"{report.files_removed} files and folders, {report.bytes_removed} bytes"
        summary = (
            f"{len(report.deleted)} {verb}"
            + ("" if report.dry_run else f" ({files})")
            + f"; {len(report.kept) + len(report.active_kept)} kept; "
            f"{report.younger} ended more recently (not considered)"
        )
        write(
            self.style.SUCCESS(summary) if not report.file_errors else self.style.WARNING(summary)
        )
        for error in report.file_errors:
            self.stderr.write(f"  could not remove {error}")

    def _countdown(self, options: dict[str, Any]) -> None:
        op = countdown_start(
            steps=options["steps"],
            step_seconds=options["step_seconds"],
            fail_at=options["fail_at"],
            execution_mode=options["execution_mode"],
            agent=options["agent"],
        )
        self.stdout.write(f"started {op.operation_id}")
        if options["follow"]:
            op = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        else:
            # Work run here lives in this process: it is waited for, never left to die with it
            # (a cancel asked elsewhere still reaches it, at this process's own refreshes).
            op = execution.wait_for_end(operation_id=op.operation_id)
        self._report_end(op)

    def _rerun(self, options: dict[str, Any]) -> None:
        op = execution.operation_rerun(
            operation_id=options["operation_id"], detach=options["no_wait"]
        )
        self.stdout.write(f"started {op.operation_id} (re-run of {options['operation_id']})")
        if options["no_wait"]:
            return
        if options["follow"]:
            op = follow_operation(operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin)
        else:
            op = execution.wait_for_end(operation_id=op.operation_id)
        self._report_end(op)

    def _resume(self, options: dict[str, Any]) -> None:
        op = execution.operation_resume(
            operation_id=options["operation_id"], detach=options["no_wait"]
        )
        self.stdout.write(f"started {op.operation_id} (resumes {options['operation_id']})")
        if options["no_wait"]:
            return
        # A SIGTERM cancels the work run here (it checkpoints again) instead of killing it.
        with sigterm_cancels_local_work():
            if options["follow"]:
                op = follow_operation(
                    operation_id=op.operation_id, stdout=self.stdout, stdin=sys.stdin
                )
            else:
                op = execution.wait_for_end(operation_id=op.operation_id)
        self._report_end(op)

    def _report_end(self, op: Any) -> None:
        if op.status == "completed":
            self.stdout.write(self.style.SUCCESS(f"{op.operation_id} completed"))
        elif op.is_terminal:
            detail = op.error_message or (op.result_summary or {}).get("stopped_at", "")
            self.stdout.write(self.style.WARNING(f"{op.operation_id} {op.status}: {detail}"))
        else:
            self.stdout.write(f"{op.operation_id} is still {op.status}")
