"""Page routes of the marketdata app (mounted at /data/)."""

from __future__ import annotations

from django.urls import path

from marketdata import views

app_name = "marketdata"
urlpatterns = [
    path("", views.series_list, name="series-list"),
    path("loads/", views.load_create, name="load-create"),
    path("imports/", views.import_create, name="import-create"),
    path("<str:symbol>/<str:timeframe>/", views.series_detail, name="series-detail"),
]
