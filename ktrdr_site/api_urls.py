"""The v1 API of the backend: every app mounts its API here."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("operations.api.urls")),
    path("data/", include("marketdata.api_urls")),
    path("training/", include("training.api_urls")),
    path("", include("hostagents.api_urls")),
]
