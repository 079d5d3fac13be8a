"""The v1 API of the backend: every app mounts its API here."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import APIRootView

from operations.api.browser import login_redirect_for_browsers

# The API root (`GET /api/v1/`, DRF's root view): a link to each endpoint that takes no id, by
# URL name; the rest are reached from these (or the schema).
API_ROOT = {
    "operations": "api-operation-list",
    "operations/countdown": "api-countdown-create",
    "data/series": "api-data-series-list",
    "data/loads": "api-data-load-create",
    "data/imports": "api-data-import-create",
    "training/runs": "api-training-run-create",
    "training/strategies": "api-training-strategy-list",
    "training/strategies/validate": "api-training-strategy-validate",
    "training/models": "api-training-model-list",
    "backtests": "api-backtest-create",
    "evaluations": "api-evaluation-create",
    "agents": "api-agent-list",
    "health": "api-health",
    "schema": "api-schema",
    "docs": "api-docs",
}


class KtrdrApiRoot(APIRootView):
    """The endpoints of the KTRDR Operations API v1 that take no id; the others are reached from
    their answers, the schema and Swagger UI (the last two links)."""

    def get_view_name(self) -> str:
        return "KTRDR API v1"


urlpatterns = [
    path(
        "",
        login_redirect_for_browsers(KtrdrApiRoot.as_view(api_root_dict=API_ROOT)),
        name="api-root",
    ),
    path("", include("operations.api.urls")),
    path("data/", include("marketdata.api_urls")),
    path("training/", include("training.api_urls")),
    path("backtests/", include("backtest.api_urls")),
    path("evaluations/", include("evaluation.api_urls")),
    path("", include("hostagents.api_urls")),
]
