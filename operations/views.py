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

import hmac
import math
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from operations import metrics, polling, readable, selectors, system
from operations.conf import ktrdr_setting
from operations.countdown import countdown_start
from operations.exceptions import InvalidInput, KtrdrError, OperationNotFound
from operations.execution import may_cancel, may_resume, rerun_edit_url, resumable
from operations.execution import operation_cancel as operation_cancel_service
from operations.execution import operation_rerun as operation_rerun_service
from operations.execution import operation_resume as operation_resume_service
from operations.kinds import kind_names
from operations.models import Operation, OperationStatus
from operations.serializers import is_stale

PAGE_SIZE = 25
# The list counts this many at most ("more than 1,000"): its cost does not grow with the table.
COUNT_LIMIT = 1_000
# Records one poll hands the page at most; a page further behind gets the rest at its next polls.
APPEND_LIMIT = 500
# Log lines: the page shows the newest LOG_KEEP (and links to older ones); one poll appends at
# most LOG_APPEND_LIMIT; the older-lines page shows LOG_PAGE_LINES at a time.
LOG_KEEP = 100
LOG_APPEND_LIMIT = 200
LOG_PAGE_LINES = 500
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


# The polled-fragment helpers the apps' pages share (operations.polling).
_etag = polling.etag_of
_not_modified = polling.not_modified
_fragment = polling.fragment
_is_poll = polling.is_poll


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
        readable.operation_outcome(op),
        op.executor,
        op.agent,
    )


@require_GET
@login_required
def operation_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    operation_type = request.GET.get("operation_type", "")
    search = request.GET.get("search", "").strip()
    offset = _int_param(request, "offset", 0, selectors.MAX_OFFSET)
    error = ""
    try:
        page = selectors.operation_list(
            status=status or None,
            operation_type=operation_type or None,
            search=search or None,
            limit=PAGE_SIZE,
            offset=offset,
            live=True,
            count_limit=COUNT_LIMIT,
        )
    except InvalidInput as exc:
        error = exc.message
        search = search[: selectors.MAX_SEARCH]
        page = selectors.operation_list(
            limit=PAGE_SIZE, offset=0, live=True, count_limit=COUNT_LIMIT
        )
    # "3 minutes ago" moves on its own: the ETag changes once a minute for it.
    etag = _etag(
        status,
        operation_type,
        search,
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
        "search": search,
        "max_search": selectors.MAX_SEARCH,
        "statuses": OperationStatus.choices,
        # The kinds this installation runs: a constant, whatever the table holds.
        "operation_types": sorted(set(kind_names()) | ({operation_type} - {""})),
        "offset": offset,
        "prev_offset": max(offset - PAGE_SIZE, 0) if offset else None,
        "next_offset": offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None,
        "error": error,
        "etag": etag,
        "poll_seconds": POLL_SECONDS,
        # "Edit and run" of a countdown pre-fills its form (shown only; checked when posted).
        "countdown": {k: v[:12] for k in ("steps", "step_seconds") if (v := request.GET.get(k))},
    }
    if poll:
        return _fragment(render(request, "operations/list.html#operations-table", context), etag)
    return render(request, "operations/list.html", context)


# --- One operation ----------------------------------------------------------------------------


def _live_state(op: Operation, cursor: int, log_cursor: int, user: Any) -> tuple:
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
        op.logs_cursor,
        log_cursor,
        bool(op.result_summary),
        # What the page says a finished run achieved (a remote run's summary grows after it ends).
        readable.operation_outcome(op),
        may_cancel(user, op),
        # The elapsed time shown moves on its own: a change every 10 s while nothing else does.
        None if duration is None else int(duration // 10),
    )


def _live_context(
    request: HttpRequest, op: Operation, cursor: int, log_cursor: int
) -> dict[str, Any]:
    """The live section's context: the operation, the records the page lacks (seq ≥ cursor)
    and the log lines it lacks (seq ≥ log_cursor)."""
    new = selectors.operation_new_metrics(operation=op, cursor=cursor, limit=APPEND_LIMIT)
    logs = selectors.operation_new_logs(operation=op, cursor=log_cursor, limit=LOG_APPEND_LIMIT)
    panel = type_panel_template(op)
    return {
        "op": op,
        "urls": {
            "detail": reverse("operations:detail", args=[op.operation_id]),
            "cancel": reverse("operations:cancel", args=[op.operation_id]),
            "logs": reverse("operations:logs", args=[op.operation_id]),
            "rerun": reverse("operations:rerun", args=[op.operation_id]),
            "resume": reverse("operations:resume", args=[op.operation_id])
            if resumable(op) and may_resume(request.user, op)
            else None,
            "edit": rerun_edit_url(op) if op.is_terminal else None,
        },
        "type_panel": panel,
        "new_records": new.records,
        "cursor": new.new_cursor,
        "new_log_lines": logs.lines,
        "log_cursor": logs.new_cursor,
        "log_first": logs.first_seq,
        "log_keep": LOG_KEEP,
        # Further behind than one poll hands over: the page asks again at once.
        "behind": new.new_cursor < op.metrics_cursor or logs.new_cursor < op.logs_cursor,
        "etag": _etag(*_live_state(op, new.new_cursor, logs.new_cursor, request.user)),
        "poll_seconds": POLL_SECONDS,
    }


@require_GET
@login_required
def operation_detail(request: HttpRequest, operation_id: str) -> HttpResponse:
    op = _get_or_404(operation_id)
    if _is_poll(request, "operation-live"):
        cursor = _int_param(request, "cursor", op.metrics_cursor, selectors.MAX_CURSOR)
        log_cursor = _int_param(request, "log_cursor", op.logs_cursor, selectors.MAX_CURSOR)
        etag = _etag(
            *_live_state(
                op, min(cursor, op.metrics_cursor), min(log_cursor, op.logs_cursor), request.user
            )
        )
        if (unchanged := _not_modified(request, etag)) is not None:
            return unchanged
        context = _live_context(request, op, cursor, log_cursor)
        response = render(request, "operations/detail.html#operation-live", context)
        return _fragment(response, context["etag"])
    # The full page: its panel shows the records before the cursor, the live section polls on.
    context = _live_context(request, op, op.metrics_cursor, op.logs_cursor)
    return render(request, "operations/detail.html", context)


@require_GET
@login_required
def operation_logs(request: HttpRequest, operation_id: str) -> HttpResponse:
    """Older log lines, `LOG_PAGE_LINES` at a time: the lines before `?before=N` (default: the
    end), with a link to the ones before those. A plain page: nothing here is live."""
    op = _get_or_404(operation_id)
    before = _int_param(request, "before", op.logs_cursor, selectors.MAX_CURSOR)
    before = min(before, op.logs_cursor)
    lines = selectors.operation_recent_logs(operation=op, before=before, last=LOG_PAGE_LINES)
    first = selectors.operation_new_logs(operation=op, cursor=op.logs_cursor, limit=1).first_seq
    older = lines[0]["seq"] if lines and lines[0]["seq"] > first else None
    context = {
        "op": op,
        "lines": lines,
        "older": older,
        "newer": before + LOG_PAGE_LINES if before < op.logs_cursor else None,
        "detail_url": reverse("operations:detail", args=[op.operation_id]),
        "page_lines": LOG_PAGE_LINES,
    }
    return render(request, "operations/logs.html", context)


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
        try:
            log_cursor = min(max(int(request.POST.get("log_cursor", "")), 0), op.logs_cursor)
        except ValueError:
            log_cursor = op.logs_cursor
        context = _live_context(request, op, cursor, log_cursor)
        # The message goes out with this answer (and is consumed by it), not with a later page.
        return render(request, "operations/_cancel_answer.html", context)
    return redirect("operations:detail", operation_id=operation_id)


@require_POST
@login_required
def operation_rerun(request: HttpRequest, operation_id: str) -> HttpResponse:
    """ "Run again": a new operation of this user with the same inputs; its page on success."""
    _get_or_404(operation_id)
    try:
        op = operation_rerun_service(operation_id=operation_id, user=request.user)
    except KtrdrError as exc:
        field = getattr(exc, "field", None)
        messages.error(request, f"{field}: {exc.message}" if field else exc.message)
        return redirect("operations:detail", operation_id=operation_id)
    messages.success(request, f"Started again as {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)


@require_POST
@login_required
def operation_resume(request: HttpRequest, operation_id: str) -> HttpResponse:
    """ "Resume": a new operation going on from where this one stopped; its page on success."""
    _get_or_404(operation_id)
    try:
        op = operation_resume_service(operation_id=operation_id, user=request.user)
    except KtrdrError as exc:
        field = getattr(exc, "field", None)
        messages.error(request, f"{field}: {exc.message}" if field else exc.message)
        return redirect("operations:detail", operation_id=operation_id)
    messages.success(request, f"Resumed as {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)


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


# --- Metrics and the System page (docs/monitoring.md) -----------------------------------------

# How often the System page polls (its figures move once per sample, KTRDR_SYSTEM_SAMPLE_SECONDS).
SYSTEM_POLL_SECONDS = 2


def _bearer_matches(request: HttpRequest) -> bool | None:
    """None without an Authorization header; else whether it carries a scrape token: the
    metrics token, or on an agent its agent token (whoever holds that may do anything there)."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, presented = header.partition(" ")
    if scheme != "Bearer" or not presented.strip():
        return False
    tokens = [str(ktrdr_setting("METRICS_TOKEN", "") or "")]
    if ktrdr_setting("ROLE") == "agent":
        tokens.append(str(ktrdr_setting("AGENT_TOKEN") or ""))
    given = presented.strip().encode("utf-8", "replace")
    # Constant time, and every token compared: the timing says nothing about which one matched.
    matched = [hmac.compare_digest(given, t.encode()) for t in tokens if t]
    return any(matched)


def _unauthorized(message: str) -> HttpResponse:
    response = HttpResponse(message, status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="ktrdr-metrics"'
    return response


@require_GET
def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    """`/metrics` in the Prometheus text format, summed over this home's processes, for a
    scrape token (`Authorization: Bearer …`) or a staff session; 401 without, 403 for others."""
    bearer = _bearer_matches(request)
    if bearer is False:
        return _unauthorized("Authorization: the scrape token is not valid")
    if bearer is None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _unauthorized(
                "Authorization: send 'Bearer <KTRDR_METRICS_TOKEN>', or log in as staff"
            )
        if not user.is_staff:
            return HttpResponse(
                "user: the metrics are for staff and scrape tokens only",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
    scrape = metrics.Scrape()
    # A scrape is someone looking: the System page's history gets a sample of it.
    system.history.observe(scrape.values())
    response = HttpResponse(scrape.text(), content_type=CONTENT_TYPE_LATEST)
    patch_cache_control(response, private=True, no_store=True)
    return response


def _since_param(request: HttpRequest) -> float | None:
    raw = request.GET.get("since")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput("must be a number of seconds (a sample time)", field="since") from None
    if not math.isfinite(value) or not 0 <= value <= system.history.clock() + system.HOUR:
        raise InvalidInput("must be a sample time, from 0 up to now", field="since")
    return value


def _system_state(figures: system.SystemFigures, since: float | None) -> tuple:
    def r(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    return (
        r(figures.hit_rate),
        figures.lookups,
        r(figures.refresh_rate),
        r(figures.refreshes_per_op_per_ttl),
        repr(
            [
                (x["place"], x["count"], r(x["p50_ms"], 1), r(x["p95_ms"], 1))
                for x in figures.latency
            ]
        ),
        repr(
            [
                (a["name"], a["up"], a["requests"], a["errors"], r(a["mean_ms"], 1))
                for a in figures.agents
            ]
        ),
        repr(sorted((k, v) for k, v in figures.levels.items() if k != "agents")),
        figures.points[-1]["t"] if figures.points else None,
        since,
    )


@require_GET
@login_required
def system_page(request: HttpRequest) -> HttpResponse:
    """The System page: the engine's figures for people without Prometheus, polled live."""
    try:
        since = _since_param(request)
    except InvalidInput as exc:
        return HttpResponseBadRequest(f"{exc.field}: {exc.message}", content_type="text/plain")
    figures = system.figures(metrics.Scrape(memo=True).values())
    etag = _etag(*_system_state(figures, since))
    poll = _is_poll(request, "system-live")
    if poll and (unchanged := _not_modified(request, etag)) is not None:
        return unchanged
    last = figures.points[-1]["t"] if figures.points else (since or 0)
    new_points = [p for p in figures.points if since is None or p["t"] > since]
    context = {
        "f": figures,
        "levels": figures.levels,
        "points": figures.points,
        "new_points": new_points if poll else [],
        "since": last,
        "etag": etag,
        "poll_seconds": SYSTEM_POLL_SECONDS,
        "sample_seconds": system.history.interval(),
    }
    if poll:
        return _fragment(render(request, "operations/system.html#system-live", context), etag)
    return render(request, "operations/system.html", context)
