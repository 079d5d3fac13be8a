"""The backtests page: start form (model, range, costs, sizing) and the latest backtests.

A started backtest is followed on its operation page, whose backtest panel
(`templates/operations/types/backtest.html`) draws the equity and drawdown and lists the trades.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from backtest import selectors, services
from backtest.params import ON_HOLD, SIGNAL_SOURCES, SIZING_METHODS
from operations.exceptions import KtrdrError
from training import selectors as training_selectors

FORM_FIELDS = ("model_id", "symbol", "start", "end", "cost_bps", "cost_pips", "slippage_bps")
FORM_FIELDS += ("slippage_pips", "signals", "on_hold")


@require_GET
@login_required
def backtest_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "backtest/backtest_list.html",
        {
            "backtests": selectors.backtest_list(),
            "models": training_selectors.trained_model_list(limit=200).models,
            "sizing_methods": SIZING_METHODS,
            "signal_sources": SIGNAL_SOURCES,
            "on_hold_choices": ON_HOLD,
            "form": {k: request.GET.get(k, "") for k in (*FORM_FIELDS, "sizing", "target_vol")},
        },
    )


@require_POST
@login_required
def backtest_start(request: HttpRequest) -> HttpResponse:
    """The start form: errors come back as a message naming the field, never a 500."""
    body = {k: request.POST.get(k, "") for k in FORM_FIELDS}
    body["sizing"] = {"method": request.POST.get("sizing") or "fixed"}
    if request.POST.get("target_vol"):
        body["sizing"]["target_vol"] = request.POST["target_vol"]
    try:
        op = services.backtest_start(body=body, user=request.user)
    except KtrdrError as exc:
        field = getattr(exc, "field", None)
        messages.error(request, f"{field}: {exc.message}" if field else exc.message)
        return redirect("backtest:list")
    messages.success(request, f"Backtest started: {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)
