"""Page routes of the backtest app (mounted at /backtests/)."""

from __future__ import annotations

from django.urls import path

from backtest import views

app_name = "backtest"
urlpatterns = [
    path("", views.backtest_list, name="list"),
    path("start/", views.backtest_start, name="start"),
]
