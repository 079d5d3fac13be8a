"""Operations pages: server-rendered, htmx-polled.

One view serves the full page and, for htmx requests, only the swapped fragment. Fragments of
active operations carry their own `hx-get`/`hx-trigger`; a terminal fragment carries none, which
is what stops the polling (docs/architecture.md §9, terminal-fragment rule).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.views.decorators.http import require_GET, require_POST

from operations import selectors
from operations.countdown import countdown_start
from operations.exceptions import InvalidInput, KtrdrError, OperationNotFound
from operations.execution import operation_cancel as operation_cancel_service
from operations.models import Operation, OperationStatus

PAGE_SIZE = 25


def _get_or_404(operation_id: str, *, force_refresh: bool = False) -> Operation:
    try:
        return selectors.operation_get(operation_id=operation_id, force_refresh=force_refresh)
    except OperationNotFound as exc:
        raise Http404(exc.message) from None


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    try:
        return min(max(int(request.GET.get(name, default)), 0), selectors.MAX_OFFSET)
    except (TypeError, ValueError):
        return default


def type_panel_template(operation: Operation) -> str | None:
    """The per-type panel (`operations/types/<type>.html`) an app may provide, if any."""
    try:
        return select_template([f"operations/types/{operation.operation_type}.html"]).template.name
    except TemplateDoesNotExist:
        return None


@require_GET
@login_required
def operation_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    operation_type = request.GET.get("operation_type", "")
    offset = _int_param(request, "offset", 0)
    error = ""
    try:
        page = selectors.operation_list(
            status=status or None,
            operation_type=operation_type or None,
            limit=PAGE_SIZE,
            offset=offset,
        )
    except InvalidInput as exc:
        error = exc.message
        page = selectors.operation_list(limit=PAGE_SIZE, offset=0)
    context = {
        "page": page,
        "operations": page.operations,
        "status": status,
        "operation_type": operation_type,
        "statuses": OperationStatus.choices,
        "operation_types": sorted(
            Operation.objects.values_list("operation_type", flat=True).distinct()
        ),
        "offset": offset,
        "prev_offset": max(offset - PAGE_SIZE, 0) if offset else None,
        "next_offset": offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None,
        "error": error,
    }
    if request.htmx and request.htmx.target == "operations-table":
        return render(request, "operations/list.html#operations-table", context)
    return render(request, "operations/list.html", context)


@require_GET
@login_required
def operation_row(request: HttpRequest, operation_id: str) -> HttpResponse:
    op = _get_or_404(operation_id)
    return render(request, "operations/list.html#operation-row", {"op": op})


@require_GET
@login_required
def operation_detail(request: HttpRequest, operation_id: str) -> HttpResponse:
    op = _get_or_404(operation_id)
    context = {
        "op": op,
        "metrics": selectors.operation_all_metrics(operation=op),
        "type_panel": type_panel_template(op),
    }
    if request.htmx and request.htmx.target == "operation-live":
        return render(request, "operations/detail.html#operation-live", context)
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
        context = {
            "op": op,
            "metrics": selectors.operation_all_metrics(operation=op),
            "type_panel": type_panel_template(op),
        }
        return render(request, "operations/detail.html#operation-live", context)
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
