"""The runs table and the comparison page (`operations.runs`): server-rendered, plain GET forms
and links, enhanced by htmx (the table swaps on change and is polled while a run on it is
active, with an ETag like the operations list)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from operations import runs, selectors
from operations.exceptions import InvalidInput
from operations.models import OperationStatus
from operations.views import POLL_SECONDS, _etag, _fragment, _is_poll, _not_modified

TABLE = "runs-table"


def _query_string(q: dict[str, Any], **changes: Any) -> str:
    """The page's query with `changes`, empty values left out (links keep every choice)."""
    merged = {**q, **changes}
    params: list[tuple[str, str]] = []
    for key in ("search", "kind", "strategy", "symbol", "timeframe", "status"):
        if merged.get(key):
            params.append((key, str(merged[key])))
    for key in ("created_from", "created_to"):
        if merged.get(key):
            params.append((key, merged[key].isoformat()))
    if merged.get("sort") and merged["sort"] != "created":
        params.append(("sort", merged["sort"]))
    if merged.get("order") and merged["order"] != "desc":
        params.append(("order", merged["order"]))
    params.extend(("columns", c) for c in merged.get("columns") or [])
    if merged.get("page", 1) != 1:
        params.append(("page", str(merged["page"])))
    return urlencode(params)


def _row_state(row: runs.RunRow) -> tuple:
    op = row.operation
    return (op.operation_id, op.status, round(op.percentage, 1), sorted(row.figures.items()))


@require_GET
@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    error = ""
    status = 200
    try:
        q = runs.parse_query(request.GET)
    except InvalidInput as exc:
        error, status = exc.message, 400
        q = runs.parse_query({})
    page = runs.run_list(q)
    # A page's active runs come through the read path (a snapshot at most one TTL old).
    rows = [
        runs.RunRow(
            selectors.operation_get(operation_id=r.operation.operation_id), r.kind, r.figures
        )
        if r.operation.is_active
        else r
        for r in page.rows
    ]
    active = any(r.operation.is_active for r in rows)
    etag = _etag(
        _query_string(q),
        error,
        page.total,
        [_row_state(r) for r in rows],
        int(time.time() // 60),
    )
    poll = _is_poll(request, TABLE)
    if poll and (unchanged := _not_modified(request, etag)) is not None:
        return unchanged
    figure_columns = runs.run_columns()
    chosen = q.get("columns") or runs.default_columns()
    sort_links = {
        key: "?"
        + _query_string(
            q,
            sort=key,
            order="asc" if q["sort"] == key and q["order"] == "desc" else "desc",
            page=1,
        )
        for key in runs.sort_keys()
    }
    context = {
        "q": q,
        "rows": rows,
        "page": page,
        "error": error,
        "etag": etag,
        "active": active,
        "poll_seconds": POLL_SECONDS,
        "kinds": [k.name for k in runs.run_kinds()],
        "statuses": OperationStatus.choices,
        "base_columns": runs.BASE_COLUMNS,
        "figure_columns": figure_columns,
        "shown_figures": [c for c in figure_columns if c.key in chosen],
        "chosen": chosen,
        "sort_links": sort_links,
        "prev_url": "?" + _query_string(q, page=q["page"] - 1) if q["page"] > 1 else None,
        "next_url": "?" + _query_string(q, page=q["page"] + 1) if page.has_next else None,
        "self_url": request.path + ("?" + _query_string(q) if _query_string(q) else ""),
        "max_compare": runs.MAX_COMPARE,
    }
    if poll:
        return _fragment(
            render(request, "operations/runs.html#runs-table", context, status=status), etag
        )
    return render(request, "operations/runs.html", context, status=status)


def _merged_curves(rows: list[runs.RunRow]) -> list[dict[str, Any]]:
    """One chart per curve the kinds declare: the runs' records merged by x (`r0_key`, …)."""
    charts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        for curve in row.kind.run_curves if row.kind else ():
            if curve.key in seen:
                continue
            seen.add(curve.key)
            by_x: dict[Any, dict[str, Any]] = {}
            series = []
            for i, other in enumerate(rows):
                kind_curves = {c.key: c for c in (other.kind.run_curves if other.kind else ())}
                mine = kind_curves.get(curve.key)
                if mine is None:
                    continue
                records = selectors.operation_all_metrics(
                    operation=other.operation, kind=mine.metric_kind
                )
                for record in records:
                    x = record.get(mine.x)
                    if isinstance(x, (int, float)):
                        by_x.setdefault(x, {mine.x: x})[f"r{i}"] = record.get(curve.key)
                series.append(f"r{i}:#{i + 1} {other.operation.operation_id[-8:]}")
            if by_x:
                charts.append(
                    {
                        "name": f"compare-{curve.key}",
                        "title": curve.label,
                        "x": curve.x,
                        "percent": curve.percent,
                        "series": ",".join(series),
                        "records": [by_x[x] for x in sorted(by_x)],
                    }
                )
    return charts


@require_GET
@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    try:
        ids = runs.parse_ids(request.GET.getlist("ids"))
        rows = runs.runs_get(ids)
    except InvalidInput as exc:
        return render(
            request,
            "operations/runs_compare.html",
            {"error": exc.message, "rows": [], "max_compare": runs.MAX_COMPARE},
            status=400,
        )
    params = []
    for row in rows:
        hook = row.kind.run_params if row.kind else None
        raw = hook(dict(row.operation.metadata or {})) if hook else dict(row.operation.metadata)
        params.append(runs.flatten(raw))
    keys: list[str] = []
    for p in params:
        keys.extend(k for k in p if k not in keys)
    param_rows = []
    for key in keys:
        values = [p.get(key) for p in params]
        param_rows.append(
            {"key": key, "values": values, "differs": any(v != values[0] for v in values)}
        )
    figure_columns = [c for c in runs.run_columns() if any(c.key in r.figures for r in rows)]
    figure_rows = []
    for column in figure_columns:
        values = [r.figures.get(column.key) for r in rows]
        present = [v for v in values if v is not None]
        figure_rows.append(
            {
                "column": column,
                "values": values,
                "best": max(present) if present and column.percent else None,
            }
        )
    context = {
        "rows": rows,
        "param_rows": param_rows,
        "differing": sum(1 for r in param_rows if r["differs"]),
        "same": sum(1 for r in param_rows if not r["differs"]),
        "figure_rows": figure_rows,
        "charts": _merged_curves(rows),
        "max_compare": runs.MAX_COMPARE,
        "error": "",
    }
    return render(request, "operations/runs_compare.html", context)
