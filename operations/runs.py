"""Runs: the operations of the kinds that declare `run_columns` (training, later evaluations and
backtests), listed with their figures, filtered, sorted and compared (docs/architecture.md §3).

The figures are `RunFigure` rows written when a run ends, so sorting by one is a join on an
indexed table, never a read of each run's JSON result. Every outside parameter is checked by
`RunsQuery` (a Django form: errors name the field) before anything is asked of the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import F, Q

from operations.exceptions import InvalidInput
from operations.kinds import OperationKind, RunColumn, kind_find, run_kinds
from operations.models import Operation, OperationStatus, RunFigure

PAGE_SIZE = 25
MAX_PAGE = 10_000
MAX_SEARCH = 100
MAX_COMPARE = 8
# The list counts this many at most ("more than 1,000"): its cost does not grow with the table.
COUNT_LIMIT = 1_000
# Columns every run has, next to the figures its kind declares.
DURATION = RunColumn("duration_seconds", "duration (s)", places=1)
BASE_COLUMNS = ("kind", "strategy", "symbols", "timeframes", "status", "model", "created")
BASE_SORTS = ("created",)
# Shown when no `columns` are chosen (the kind column once there is more than one run kind).
BASE_DEFAULT = ("strategy", "symbols", "status", "model", "created")


def run_columns() -> list[RunColumn]:
    """Every figure column the registered run kinds declare (first declaration wins), then the
    duration."""
    seen: dict[str, RunColumn] = {}
    for kind in run_kinds():
        for column in kind.run_columns:
            seen.setdefault(column.key, column)
    return [*seen.values(), DURATION]


def sort_keys() -> list[str]:
    return [*BASE_SORTS, *(c.key for c in run_columns())]


def _choices(values: list[str]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class RunsQuery(forms.Form):
    """The runs table's GET parameters, each checked and bounded."""

    search = forms.CharField(required=False, max_length=MAX_SEARCH, strip=True)
    kind = forms.ChoiceField(required=False)
    strategy = forms.RegexField(
        regex=r"^[A-Za-z0-9_.-]{1,120}$", required=False, max_length=120, strip=True
    )
    symbol = forms.RegexField(regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$", required=False)
    timeframe = forms.RegexField(regex=r"^[0-9]{1,4}[mhdw]$", required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *OperationStatus.choices])
    created_from = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    created_to = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    sort = forms.ChoiceField(required=False)
    order = forms.ChoiceField(required=False, choices=[("desc", "desc"), ("asc", "asc")])
    columns = forms.MultipleChoiceField(required=False)
    page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "any"), *_choices([k.name for k in run_kinds()])]
        self.fields["sort"].choices = _choices(sort_keys())
        self.fields["columns"].choices = _choices([*BASE_COLUMNS, *(c.key for c in run_columns())])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and end < start:
            self.add_error("created_to", "must not be before created_from")
        return data


def parse_query(params: Any) -> dict[str, Any]:
    """The validated query, or `InvalidInput` naming every bad field."""
    form = RunsQuery(params)
    if not form.is_valid():
        details = {field: [str(e) for e in errors] for field, errors in form.errors.items()}
        first = next(iter(details))
        raise InvalidInput(f"{first}: {details[first][0]}", details=details)
    q = dict(form.cleaned_data)
    q["sort"] = q.get("sort") or "created"
    q["order"] = q.get("order") or "desc"
    q["page"] = q.get("page") or 1
    return q


def default_columns() -> list[str]:
    base = [c for c in BASE_COLUMNS if c in BASE_DEFAULT or (c == "kind" and len(run_kinds()) > 1)]
    return [*base, *(c.key for c in run_columns() if c.default)]


@dataclass(frozen=True)
class RunRow:
    operation: Operation
    kind: OperationKind | None
    figures: dict[str, float]


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int
    total_is_exact: bool
    active_count: int
    page: int
    has_next: bool


def _filtered(q: dict[str, Any]):
    kinds = [k.name for k in run_kinds()]
    qs = Operation.objects.filter(operation_type__in=[q["kind"]] if q.get("kind") else kinds)
    if search := q.get("search"):
        qs = qs.filter(
            Q(operation_id__icontains=search)
            | Q(strategy_name__icontains=search)
            | Q(input_series__icontains=search)
        )
    if q.get("strategy"):
        qs = qs.filter(strategy_name=q["strategy"])
    # `input_series` holds "SYMBOL:TF" strings: matched with their quotes, exactly.
    if q.get("symbol"):
        qs = qs.filter(input_series__icontains=f'"{q["symbol"]}:')
    if q.get("timeframe"):
        qs = qs.filter(input_series__icontains=f':{q["timeframe"]}"')
    if q.get("status"):
        qs = qs.filter(status=q["status"])
    if q.get("created_from"):
        start = dt.datetime.combine(q["created_from"], dt.time.min, tzinfo=dt.UTC)
        qs = qs.filter(created_at__gte=start)
    if q.get("created_to"):
        end = dt.datetime.combine(
            q["created_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC
        )
        qs = qs.filter(created_at__lt=end)
    return qs


def _newest(qs, order: str = "desc"):
    if order == "asc":
        return qs.order_by("created_at", "id")
    return qs.order_by("-created_at", "-id")


def _page(qs, sort: str, order: str, offset: int, size: int) -> list[Operation]:
    """`size` rows from `offset` in the asked order. Sorted by a figure: the runs that have it,
    read along the (name, value) index, then those that lack it (still running, failed early),
    newest first, so a page costs about the same however many runs there are."""
    if sort == "created":
        return list(_newest(qs, order)[offset : offset + size])
    with_figure = qs.filter(figures__name=sort)
    value = F("figures__value")
    head = list(
        with_figure.order_by(value.asc() if order == "asc" else value.desc(), "-created_at", "-id")[
            offset : offset + size
        ]
    )
    if len(head) == size:
        return head
    holding = offset + len(head) if head or offset == 0 else with_figure.count()
    skip = max(offset - holding, 0)
    lacking = qs.exclude(pk__in=RunFigure.objects.filter(name=sort).values("operation_id"))
    return head + list(_newest(lacking)[skip : skip + size - len(head)])


def figures_of(operations: list[Operation]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {op.pk: {} for op in operations}
    for figure in RunFigure.objects.filter(operation__in=[op.pk for op in operations]):
        out[figure.operation_id][figure.name] = figure.value
    return out


def run_list(q: dict[str, Any], *, page_size: int = PAGE_SIZE) -> RunPage:
    """One page of runs for a validated query (`parse_query`)."""
    qs = _filtered(q)
    offset = (q["page"] - 1) * page_size
    ops = _page(qs, q["sort"], q["order"], offset, page_size + 1)
    has_next = len(ops) > page_size
    ops = ops[:page_size]
    if offset == 0 and not has_next:
        total, exact = len(ops), True
    else:
        counted = qs.order_by()[: COUNT_LIMIT + 1].count()
        total, exact = min(counted, COUNT_LIMIT), counted <= COUNT_LIMIT
    figures = figures_of(ops)
    rows = [RunRow(op, kind_find(op.operation_type), figures[op.pk]) for op in ops]
    active = sum(1 for op in ops if op.is_active)
    return RunPage(rows, total, exact, active, q["page"], has_next)


def parse_ids(values: list[str]) -> list[str]:
    """The operation ids to compare: 2 to MAX_COMPARE distinct, well-formed ids."""
    ids: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if part and part not in ids:
                ids.append(part)
    if len(ids) < 2:
        raise InvalidInput("choose at least two runs to compare", field="ids")
    if len(ids) > MAX_COMPARE:
        raise InvalidInput(f"compare at most {MAX_COMPARE} runs at once", field="ids")
    for operation_id in ids:
        if len(operation_id) > 96 or not operation_id.replace("_", "").isalnum():
            raise InvalidInput(f"{operation_id[:100]!r} is not an operation id", field="ids")
    return ids


def runs_get(ids: list[str]) -> list[RunRow]:
    """The runs of `ids` in that order; `InvalidInput` naming `ids` for one that is not a run."""
    kinds = {k.name for k in run_kinds()}
    found = {op.operation_id: op for op in Operation.objects.filter(operation_id__in=ids)}
    missing = [i for i in ids if i not in found or found[i].operation_type not in kinds]
    if missing:
        raise InvalidInput(f"not a run: {', '.join(missing)}", field="ids")
    ops = [found[i] for i in ids]
    figures = figures_of(ops)
    return [RunRow(op, kind_find(op.operation_type), figures[op.pk]) for op in ops]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted keys (`strategy.model.dropout`); lists stay whole."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}
