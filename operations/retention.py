"""Retention: deleting finished operations with everything they own (docs/logs-and-retention.md).

`operations_prune` deletes operations that ended longer ago than a given age, with their metric
records and log lines (database cascade) and what other apps hold for them: the apps that own
things produced by an operation (training's models, host agents' artifacts) register a
`RetentionOwner` in their `AppConfig.ready()`, so this core imports none of them. An owner says,
per operation, what it holds (`Holding`: a description, the files, and — when it must stay — why);
one holding that must stay keeps its whole operation, so a kept model keeps the lineage (its
operation, metrics and log) it points to.

Rules:

* Only terminal operations are ever deleted; pending, running and cancelling ones are never
  candidates, whatever the filter asks (asking for them is an error, not a no-op).
* Age counts from when the operation ended (`completed_at`; its creation if it has none).
* Rows go in one transaction per batch, under the row locks, re-checking that each is still
  terminal; files are removed after that commits, so a failure leaves at worst an orphan file
  (said in the report), never a row pointing at a deleted file.
* `dry_run` decides and reports exactly the same, and deletes nothing.

It is run from the terminal (`manage.py ops prune`, from cron or a systemd timer), never by a
background thread of the server.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from django.db import transaction
from django.db.models import Count
from django.db.models.functions import Coalesce
from django.utils import timezone

from operations import cache as op_cache
from operations.exceptions import InvalidInput
from operations.models import TERMINAL_STATUSES, Operation, OperationLog, OperationMetric

logger = logging.getLogger(__name__)

BATCH = 200
_AGE = re.compile(r"^\s*(\d{1,7})\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
MAX_AGE = timedelta(days=36_500)


def parse_age(text: str, *, field_name: str = "older_than") -> timedelta:
    """`30d`, `12h`, `90m` (days, hours, minutes) → a timedelta; anything else is InvalidInput
    naming the field and what is accepted."""
    match = _AGE.match(str(text or ""))
    if match is None:
        raise InvalidInput(
            f"{field_name} must be a whole number followed by d (days), h (hours) or m "
            f"(minutes), e.g. 30d, 12h or 90m; got {str(text)[:40]!r}",
            field=field_name,
        )
    age = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if age <= timedelta(0) or age > MAX_AGE:
        raise InvalidInput(
            f"{field_name} must be more than 0 and at most 36500d; got {text.strip()!r}",
            field=field_name,
        )
    return age


@dataclass(frozen=True)
class Holding:
    """Something an owner keeps for an operation: what it is, its files and folders (all inside
    the owner's own storage), and why it must stay ("" when it may go)."""

    what: str
    paths: tuple[Path, ...] = ()
    keep_because: str = ""


class RetentionOwner(Protocol):
    name: str

    def holdings(self, operation_ids: list[str]) -> dict[str, list[Holding]]:
        """What it holds for each of these operations (ids it holds nothing for may be left out)."""

    def forget(self, operation_ids: list[str]) -> None:
        """Delete its rows for these operations (inside the prune's transaction; files are
        removed by the prune after commit, from the holdings' paths)."""


_owners: dict[str, RetentionOwner] = {}


def path_inside(path: Path, root: Path) -> bool:
    """Whether `path` lies under `root` (links resolved): an owner only lets prune delete files
    inside its own folder, whatever a row says."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def register_owner(owner: RetentionOwner) -> None:
    """Called in an app's `AppConfig.ready()`; one owner per name."""
    if owner.name in _owners and _owners[owner.name] is not owner:
        raise ValueError(f"a retention owner named {owner.name!r} is already registered")
    _owners[owner.name] = owner


def owners() -> list[RetentionOwner]:
    return list(_owners.values())


@dataclass
class Decision:
    operation_id: str
    operation_type: str
    status: str
    ended: datetime
    delete: bool
    reason: str
    metrics: int = 0
    log_lines: int = 0
    holdings: list[Holding] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [p for h in self.holdings for p in h.paths]


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    decisions: list[Decision] = field(default_factory=list)
    # Active operations past the cutoff (never deleted), and finished ones younger than it.
    active_kept: list[tuple[str, str]] = field(default_factory=list)
    younger: int = 0
    files_removed: int = 0
    bytes_removed: int = 0
    file_errors: list[str] = field(default_factory=list)

    @property
    def deleted(self) -> list[Decision]:
        return [d for d in self.decisions if d.delete]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.delete]


def _statuses(statuses: Iterable[str] | None) -> list[str]:
    wanted = [s for s in (statuses or []) if s]
    if not wanted:
        return sorted(TERMINAL_STATUSES)
    active = [s for s in wanted if s not in TERMINAL_STATUSES]
    if active:
        raise InvalidInput(
            f"prune deletes finished operations only ({', '.join(sorted(TERMINAL_STATUSES))}); "
            f"never {', '.join(active)}",
            field="status",
        )
    return wanted


def _chunks(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in ids:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ended():
    return Coalesce("completed_at", "created_at")


def operations_prune(
    *,
    older_than: timedelta,
    statuses: Iterable[str] | None = None,
    dry_run: bool = False,
    now: Callable[[], datetime] = timezone.now,
    remove_path: Callable[[Path], int] | None = None,
) -> PruneReport:
    """Delete the finished operations (of `statuses`, default all terminal ones) that ended
    before now - `older_than`, with their metrics, logs and owned files; keep those an owner
    needs. Returns what was (with `dry_run`: would be) deleted and kept, and why."""
    wanted = _statuses(statuses)
    cutoff = now() - older_than
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    remove = remove_path or _remove
    old = Operation.objects.annotate(ended=_ended()).filter(ended__lt=cutoff)
    report.active_kept = list(
        old.exclude(status__in=TERMINAL_STATUSES).values_list("operation_id", "status")
    )
    report.younger = (
        Operation.objects.annotate(ended=_ended())
        .filter(status__in=wanted, ended__gte=cutoff)
        .count()
    )
    candidates = (
        old.filter(status__in=wanted).order_by("ended", "id").values_list("operation_id", flat=True)
    )
    for chunk in _chunks(candidates.iterator(), BATCH):
        decisions = _decide(chunk)
        report.decisions.extend(decisions)
        doomed = [d for d in decisions if d.delete]
        if dry_run or not doomed:
            continue
        deleted = _delete([d.operation_id for d in doomed])
        for decision in doomed:
            if decision.operation_id not in deleted:
                decision.delete = False
                decision.reason = "it changed while pruning (not deleted)"
                continue
            for path in decision.paths:
                try:
                    size = remove(path)
                except OSError as exc:
                    report.file_errors.append(f"{path}: {exc.strerror or exc}")
                    continue
                if size >= 0:
                    report.files_removed += 1
                    report.bytes_removed += size
    if not dry_run and report.deleted:
        logger.info(
            "pruned %d operations ended before %s (%d files, %d bytes); kept %d",
            len(report.deleted),
            cutoff.isoformat(),
            report.files_removed,
            report.bytes_removed,
            len(report.kept) + len(report.active_kept),
        )
    return report


def _decide(operation_ids: list[str]) -> list[Decision]:
    rows = list(
        Operation.objects.filter(operation_id__in=operation_ids)
        .annotate(ended=_ended())
        .values_list("pk", "operation_id", "operation_type", "status", "ended")
    )
    pks = {op_id: pk for pk, op_id, *_ in rows}
    metrics = dict(
        OperationMetric.objects.filter(operation_id__in=pks.values())
        .values("operation_id")
        .annotate(n=Count("id"))
        .values_list("operation_id", "n")
    )
    lines = dict(
        OperationLog.objects.filter(operation_id__in=pks.values())
        .values("operation_id")
        .annotate(n=Count("id"))
        .values_list("operation_id", "n")
    )
    held: dict[str, list[Holding]] = {op_id: [] for op_id in operation_ids}
    for owner in owners():
        for op_id, items in owner.holdings(list(operation_ids)).items():
            if op_id in held:
                held[op_id].extend(items)
    decisions = []
    for pk, op_id, op_type, status, ended in rows:
        holdings = held.get(op_id, [])
        keep = [f"{h.what} {h.keep_because}" for h in holdings if h.keep_because]
        decisions.append(
            Decision(
                operation_id=op_id,
                operation_type=op_type,
                status=status,
                ended=ended,
                delete=not keep,
                reason="; ".join(keep) if keep else f"{status}, ended {ended:%Y-%m-%d %H:%M} UTC",
                metrics=metrics.get(pk, 0),
                log_lines=lines.get(pk, 0),
                holdings=holdings,
            )
        )
    return decisions


@transaction.atomic
def _delete(operation_ids: list[str]) -> set[str]:
    """Delete the rows of these operations that are still terminal (locked first); returns the
    ids deleted. Owners forget theirs in the same transaction."""
    locked = set(
        Operation.objects.select_for_update()
        .filter(operation_id__in=operation_ids, status__in=TERMINAL_STATUSES)
        .values_list("operation_id", flat=True)
    )
    if not locked:
        return set()
    ids = sorted(locked)
    for owner in owners():
        owner.forget(ids)
    Operation.objects.filter(operation_id__in=ids).delete()  # metrics and logs cascade
    transaction.on_commit(lambda: [op_cache.invalidate(op_id) for op_id in ids])
    return locked


def _remove(path: Path) -> int:
    """Remove a file or a folder; its size in bytes (-1: it was not there)."""
    if path.is_symlink() or path.is_file():
        size = path.lstat().st_size
        path.unlink()
        return size
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        shutil.rmtree(path)
        return size
    return -1
