"""API routes of the training app, mounted under /api/v1/training/."""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from training import api

urlpatterns = [
    path("runs/", api.training_run_create, name="api-training-run-create"),
    path("strategies/", api.strategy_list, name="api-training-strategy-list"),
    path("strategies/validate/", api.strategy_validate, name="api-training-strategy-validate"),
    path("strategies/<str:name>/", api.strategy_get, name="api-training-strategy-detail"),
    path("models/", api.model_list, name="api-training-model-list"),
    path("models/<int:model_id>/", api.model_get, name="api-training-model-detail"),
    path("models/<int:model_id>/download", api.model_download, name="api-training-model-download"),
    # The trailing-slash spelling redirects (kept out of the schema, one documented route).
    path(
        "models/<int:model_id>/download/",
        RedirectView.as_view(pattern_name="api-training-model-download", query_string=True),
    ),
]
