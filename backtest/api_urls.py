"""API routes of the backtest app, mounted under /api/v1/backtests/."""

from __future__ import annotations

from django.urls import path

from backtest import api

urlpatterns = [
    path("", api.backtest_create, name="api-backtest-create"),
    path("<str:operation_id>/trades/", api.backtest_trades, name="api-backtest-trades"),
]
