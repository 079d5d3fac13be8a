"""Operations pages: server-rendered, polled by `static/ktrdr/live.js`.

One view serves the full page and, for a poll (an htmx-style request naming its target), only the
swapped fragment. A viewer costs one request per poll whatever the page shows
(docs/architecture.md §4, viewers):

* The list polls one fragment, the whole table; the detail page polls its live section, of a
  constant size: metric records come by cursor (`?cursor=N` asks for records with seq ≥ N; the
  page's tables and charts append them), never re-rendered from all records.
* Every fragment carries an ETag made from what it shows; a poll that sends it back and finds
  nothing changed gets 304 and no rendering, and the poller slows down while that lasts.
* A terminal fragment carries no poll URL, which is what stops the polling (§9).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET, require_POST

from operations import selectors
from operations.countdown import countdown_start
from operations.exceptions import InvalidInput, KtrdrError, OperationNotFound
from operations.execution import may_cancel
from operations.execution import operation_cancel as operation_cancel_service
from operations.kinds import kind_names
from operations.models import Operation, OperationStatus
from operations.serializers import is_stale

PAGE_SIZE = 25
# The list counts this many at most ("more than 1,000"): its cost does not grow with the table.
COUNT_LIMIT = 1_000
# Records one poll hands the page at most; a page further behind gets the rest at its next polls.
APPEND_LIMIT = 500
# How often pages poll while something changes (live.js slows down to 5× that while nothing does).
POLL_SECONDS = 1


def _get_or_404(operation_id: str, *, force_refresh: bool = False) -> Operation:
    try:
        return selectors.operation_get(operation_id=operation_id, force_refresh=force_refresh)
    except OperationNotFound as exc:
        raise Http404(exc.message) from None


def _int_param(request: HttpRequest, name: str, default: int, maximum: int) -> int:
    try:
        return min(max(int(request.GET.get(name, default)), 0), maximum)
    except (TypeError, ValueError):
        return default


def type_panel_template(operation: Operation) -> str | None:
    """The per-type panel (`operations/types/<type>.html`) an app may provide, if any."""
    try:
        return select_template([f"operations/types/{operation.operation_type}.html"]).template.name
    except TemplateDoesNotExist:
        return None


def _etag(*parts: Any) -> str:
    return '"' + hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest() + '"'


def _not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """304 when the poll sent back the ETag of what it shows (nothing to render)."""
    return get_conditional_response(request, etag=etag)


def _fragment(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response


def _is_poll(request: HttpRequest, target: str) -> bool:
    return bool(request.htmx) and request.htmx.target == target


# --- The list ---------------------------------------------------------------------------------


def _row_state(op: Operation) -> tuple:
    progress = op.progress or {}
    outcome = (op.result_summary or {}).get("outcome") if op.is_terminal else None
    return (
        op.operation_id,
        op.status,
        round(op.percentage or 0.0, 1),
        progress.get("message"),
        op.error_message,
        outcome,
        op.executor,
        op.agent,
    )


@require_GET
@login_required
def operation_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    operation_type = request.GET.get("operation_type", "")
    offset = _int_param(request, "offset", 0, selectors.MAX_OFFSET)
    error = ""
    try:
        page = selectors.operation_list(
            status=status or None,
            operation_type=operation_type or None,
            limit=PAGE_SIZE,
            offset=offset,
            live=True,
            count_limit=COUNT_LIMIT,
        )
    except InvalidInput as exc:
        error = exc.message
        page = selectors.operation_list(
            limit=PAGE_SIZE, offset=0, live=True, count_limit=COUNT_LIMIT
        )
    # "3 minutes ago" moves on its own: the ETag changes once a minute for it.
    etag = _etag(
        status,
        operation_type,
        offset,
        error,
        page.total,
        page.total_is_exact,
        page.active_count,
        [_row_state(op) for op in page.operations],
        int(time.time() // 60),
    )
    poll = _is_poll(request, "operations-table")
    if poll and (unchanged := _not_modified(request, etag)) is not None:
        return unchanged
    context = {
        "page": page,
        "operations": page.operations,
        "status": status,
        "operation_type": operation_type,
        "statuses": OperationStatus.choices,
        # The kinds this installation runs: a constant, whatever the table holds.
        "operation_types": sorted(set(kind_names()) | ({operation_type} - {""})),
        "offset": offset,
        "prev_offset": max(offset - PAGE_SIZE, 0) if offset else None,
        "next_offset": offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None,
        "error": error,
        "etag": etag,
        "poll_seconds": POLL_SECONDS,
    }
    if poll:
        return _fragment(render(request, "operations/list.html#operations-table", context), etag)
    return render(request, "operations/list.html", context)


# --- One operation ----------------------------------------------------------------------------


def _live_state(op: Operation, cursor: int, user: Any) -> tuple:
    """What the live section shows, for its ETag (without rendering it)."""
    duration = op.duration_seconds
    return (
        op.operation_id,
        op.status,
        op.percentage,
        repr(sorted((op.progress or {}).items())),
        op.error_message,
        op.cancel_requested_at,
        op.cancel_acknowledged_at,
        op.unreachable_since,
        is_stale(op),
        op.metrics_cursor,
        cursor,
        bool(op.result_summary),
        may_cancel(user, op),
        # The elapsed time shown moves on its own: a change every 10 s while nothing else does.
        None if duration is None else int(duration // 10),
    )


def _live_context(request: HttpRequest, op: Operation, cursor: int) -> dict[str, Any]:
    """The live section's context: the operation and the records the page lacks (seq ≥ cursor)."""
    new = selectors.operation_new_metrics(operation=op, cursor=cursor, limit=APPEND_LIMIT)
    panel = type_panel_template(op)
    return {
        "op": op,
        "urls": {
            "detail": reverse("operations:detail", args=[op.operation_id]),
            "cancel": reverse("operations:cancel", args=[op.operation_id]),
        },
        "type_panel": panel,
        "new_records": new.records,
        "cursor": new.new_cursor,
        # Further behind than one poll hands over: the page asks again at once.
        "behind": new.new_cursor < op.metrics_cursor,
        "etag": _etag(*_live_state(op, new.new_cursor, request.user)),
        "poll_seconds": POLL_SECONDS,
    }


@require_GET
@login_required
def operation_detail(request: HttpRequest, operation_id: str) -> HttpResponse:
    op = _get_or_404(operation_id)
    if _is_poll(request, "operation-live"):
        cursor = _int_param(request, "cursor", op.metrics_cursor, selectors.MAX_CURSOR)
        etag = _etag(*_live_state(op, min(cursor, op.metrics_cursor), request.user))
        if (unchanged := _not_modified(request, etag)) is not None:
            return unchanged
        context = _live_context(request, op, cursor)
        response = render(request, "operations/detail.html#operation-live", context)
        return _fragment(response, context["etag"])
    # The full page: its panel shows the records before the cursor, the live section polls on.
    context = _live_context(request, op, op.metrics_cursor)
    return render(request, "operations/detail.html", context)


@require_POST
@login_required
def operation_cancel(request: HttpRequest, operation_id: str) -> HttpResponse:
    _get_or_404(operation_id)
    reason = (request.POST.get("reason") or "cancelled from the dashboard")[:500]
    try:
        operation_cancel_service(operation_id=operation_id, reason=reason, user=request.user)
    except KtrdrError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Cancel requested for {operation_id}")
    if request.htmx:
        op = _get_or_404(operation_id, force_refresh=True)
        try:
            cursor = min(max(int(request.POST.get("cursor", "")), 0), op.metrics_cursor)
        except ValueError:
            cursor = op.metrics_cursor
        context = _live_context(request, op, cursor)
        # The message goes out with this answer (and is consumed by it), not with a later page.
        return render(request, "operations/_cancel_answer.html", context)
    return redirect("operations:detail", operation_id=operation_id)


@require_POST
@login_required
def countdown_create(request: HttpRequest) -> HttpResponse:
    try:
        op = countdown_start(
            steps=request.POST.get("steps", 10),
            step_seconds=request.POST.get("step_seconds", 0.5),
            user=request.user,
        )
    except InvalidInput as exc:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
        return redirect("operations:list")
    return redirect("operations:detail", operation_id=op.operation_id)
