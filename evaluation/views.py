"""The evaluations page: the start form (strategy, range, folds, seeds) and the latest ones.

A started evaluation is followed on its operation page, whose evaluation panel
(`templates/operations/types/evaluation.html`) charts the lift per fold and lists every fold
with the aggregate and its interval.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from evaluation import selectors, services
from evaluation.folds import SCHEMES
from operations.exceptions import KtrdrError
from training import selectors as training_selectors

FORM_FIELDS = ("strategy", "symbol", "start", "end", "folds", "scheme", "train_bars")
FORM_FIELDS += ("test_bars", "purge_bars", "embargo_bars", "seeds", "epochs", "execution_mode")


@require_GET
@login_required
def evaluation_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "evaluation/evaluation_list.html",
        {
            "evaluations": selectors.evaluation_list(),
            "strategies": [s for s in training_selectors.strategy_list() if s.is_valid],
            "schemes": SCHEMES,
            "form": {k: request.GET.get(k, "") for k in FORM_FIELDS},
        },
    )


@require_POST
@login_required
def evaluation_start(request: HttpRequest) -> HttpResponse:
    """The start form: errors come back as a message naming the field, never a 500."""
    body = {k: request.POST.get(k, "").strip() for k in FORM_FIELDS}
    body = {k: v for k, v in body.items() if v}
    try:
        op = services.evaluation_start(body=body, user=request.user)
    except KtrdrError as exc:
        field = getattr(exc, "field", None)
        messages.error(request, f"{field}: {exc.message}" if field else exc.message)
        return redirect("evaluation:list")
    messages.success(request, f"Evaluation started: {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)
