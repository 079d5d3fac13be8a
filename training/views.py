"""Training pages: strategies (list, detail, start form) and trained models (list, detail).

Small function views over the selectors and services; they work without JavaScript. Live
progress of a run is the operations detail page (with this app's panel,
templates/operations/types/training.html); the models list is a polled fragment
(`operations.polling`) where new models appear.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from operations import polling
from operations.exceptions import KtrdrError, NotFound
from operations.placement import EXECUTION_MODES
from training import selectors, services
from training.strategy import TIMEFRAME_MINUTES

PAGE_SIZE = 50
# The models list polls for new models this often (slower while none appear).
MODELS_POLL_SECONDS = 5


def _strategy_or_404(name: str):
    try:
        return selectors.strategy_get(name)
    except KtrdrError as exc:
        raise Http404(exc.message) from None


@require_GET
@login_required
def strategy_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "training/strategy_list.html",
        {
            "strategies": selectors.strategy_list(),
            "recent_models": selectors.trained_model_list(limit=10).models,
        },
    )


@require_GET
@login_required
def strategy_detail(request: HttpRequest, name: str) -> HttpResponse:
    found = _strategy_or_404(name)
    models = selectors.trained_model_list(strategy=name, limit=20).models
    # "Edit and run" of a finished training opens this form pre-filled with its inputs; they are
    # only shown here, and checked when the form is posted.
    prefill = {
        k: request.GET[k][:400]
        for k in ("symbols", "timeframes", "start", "end", "execution_mode")
        if request.GET.get(k)
    }
    return render(
        request,
        "training/strategy_detail.html",
        {
            "strategy": found,
            "config": found.config,
            "range": selectors.suggested_training_range(found.config) if found.config else None,
            "models": models,
            "timeframes": TIMEFRAME_MINUTES,
            "prefill": prefill,
            "form": {
                "symbols": prefill.get("symbols")
                or ",".join(found.config["training_data"]["symbols"] if found.config else []),
                "timeframes": prefill.get("timeframes")
                or ",".join(found.config["training_data"]["timeframes"] if found.config else []),
            },
            "execution_modes": EXECUTION_MODES,
        },
    )


@require_POST
@login_required
def training_start(request: HttpRequest, name: str) -> HttpResponse:
    """The start form: errors come back as a message naming the field, never a 500."""
    _strategy_or_404(name)
    try:
        op = services.training_start(
            strategy=name,
            symbols=request.POST.get("symbols", ""),
            timeframes=request.POST.get("timeframes", ""),
            start=request.POST.get("start", ""),
            end=request.POST.get("end", ""),
            execution_mode=request.POST.get("execution_mode") or None,
            user=request.user,
        )
    except KtrdrError as exc:
        field = getattr(exc, "field", None)
        messages.error(request, f"{field}: {exc.message}" if field else exc.message)
        return redirect("training:strategy-detail", name=name)
    messages.success(request, f"Training of {name} started: {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)


@require_GET
@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    strategy = request.GET.get("strategy", "")[:120]
    page = selectors.trained_model_list(strategy=strategy or None, limit=PAGE_SIZE)
    # A model is written once: new ones (and deleted ones) are what changes the list.
    etag = polling.etag_of(strategy, page.total, [m.pk for m in page.models])
    context = {
        "page": page,
        "models": page.models,
        "strategy": strategy,
        "etag": etag,
        "poll_seconds": MODELS_POLL_SECONDS,
    }
    if polling.is_poll(request, "models-live"):
        if (unchanged := polling.not_modified(request, etag)) is not None:
            return unchanged
        response = render(request, "training/model_list.html#models-live", context)
        return polling.fragment(response, etag)
    return render(request, "training/model_list.html", context)


@require_GET
@login_required
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    try:
        model = selectors.trained_model_get(model_id=model_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        selectors.trained_model_file(model)
        file_present = True
    except NotFound:
        file_present = False
    return render(
        request, "training/model_detail.html", {"model": model, "file_present": file_present}
    )
