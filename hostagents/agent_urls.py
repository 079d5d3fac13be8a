"""Root URLconf of a host agent (`KTRDR_URLCONF=hostagents.agent_urls`, set by run_agent).

The same operations API views as the backend, plus the agent's start endpoints, health,
artifacts and the deprecated training status. No pages and no admin: an agent serves the
backend only, every endpoint behind the bearer token.
"""

from __future__ import annotations

from django.urls import URLPattern, include, path

from hostagents import agent_views, api_views
from hostagents.agent_views import counted
from operations.api import urls as operations_api_urls


def _counted_operations_api() -> list[URLPattern]:
    patterns = []
    for pattern in operations_api_urls.urlpatterns:
        route = str(pattern.pattern)
        if route == "operations/countdown/":
            continue  # replaced below by the idempotent agent start
        patterns.append(path(route, counted(route, pattern.callback), name=pattern.name))
    return patterns


api_patterns = [
    path(
        "operations/countdown/",
        counted("operations/countdown/", agent_views.countdown_start),
        name="agent-countdown-start",
    ),
    *_counted_operations_api(),
    path(
        "operations/<str:operation_id>/artifacts/<str:name>",
        counted("artifacts", api_views.artifact_download),
        name="api-operation-artifact",
    ),
    path("health", counted("health", api_views.health), name="api-health"),
    path("training/runs/", agent_views.training_start, name="agent-training-start"),
    path("data/loads/", agent_views.data_load_start, name="agent-data-load-start"),
    path("starts/<str:key>", agent_views.start_lookup, name="agent-start-lookup"),
    path("blobs/missing", agent_views.blobs_missing_view, name="agent-blobs-missing"),
]

urlpatterns = [
    path("api/v1/", include(api_patterns)),
    path(
        "training/status/<str:session_id>",
        agent_views.deprecated_training_status,
        name="agent-training-status-deprecated",
    ),
]
