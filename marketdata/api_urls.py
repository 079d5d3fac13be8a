"""API routes of the marketdata app, mounted under /api/v1/data/."""

from __future__ import annotations

from django.urls import path

from marketdata.api import views

urlpatterns = [
    path("series/", views.series_list, name="api-data-series-list"),
    path("series/<str:symbol>/<str:timeframe>/", views.series_bars, name="api-data-series-bars"),
    path("loads/", views.load_create, name="api-data-load-create"),
    path("imports/", views.import_create, name="api-data-import-create"),
]
