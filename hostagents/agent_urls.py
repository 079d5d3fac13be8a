"""Root URLconf of a host agent (`KTRDR_URLCONF=hostagents.agent_urls`, set by run_agent).

The same operations API views as the backend, plus the agent's start endpoint, the backend's
one-request refresh, health, artifacts and the deprecated training status. No pages and no admin:
an agent serves the backend only, every endpoint behind the bearer token.
"""

from __future__ import annotations

from django.urls import URLPattern, include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from hostagents import agent_views, api_views
from hostagents.agent_views import counted
from operations import error_views
from operations.api import urls as operations_api_urls
from operations.api.fallback import api_not_found
from operations.views import metrics_endpoint

# No pages on an agent: a 404 or a 500 on any path is the API's JSON envelope.
handler404 = error_views.api_page_not_found
handler500 = error_views.api_server_error


def _counted_operations_api() -> list[URLPattern]:
    patterns = []
    for pattern in operations_api_urls.urlpatterns:
        route = str(pattern.pattern)
        if route in (
            "operations/countdown/",
            "operations/<str:operation_id>/rerun/",
            "operations/<str:operation_id>/resume/",
        ):
            continue  # every start on an agent goes through the idempotent `starts/`
        patterns.append(path(route, counted(route, pattern.callback), name=pattern.name))
    return patterns


REFRESH_ROUTE = "operations/<str:operation_id>/refresh/"

api_patterns = [
    *_counted_operations_api(),
    path(
        REFRESH_ROUTE,
        counted(REFRESH_ROUTE, agent_views.operation_refresh),
        name="agent-operation-refresh",
    ),
    path(
        "operations/<str:operation_id>/artifacts/<str:name>",
        counted("artifacts", api_views.artifact_download),
        name="api-operation-artifact",
    ),
    path(
        "operations/<str:operation_id>/resume-files/",
        counted("resume-files", api_views.resume_files_list),
        name="agent-operation-resume-files",
    ),
    path(
        "operations/<str:operation_id>/resume-files/<str:name>",
        counted("resume-files", api_views.resume_file_download),
        name="agent-operation-resume-file",
    ),
    path("health", counted("health", api_views.health), name="api-health"),
    path("starts/", counted("starts/", agent_views.start), name="agent-start"),
    path("starts/<str:key>", agent_views.start_lookup, name="agent-start-lookup"),
    path("blobs/missing", agent_views.blobs_missing_view, name="agent-blobs-missing"),
    path("blobs/<str:sha256>", counted("blobs", agent_views.blob_put_view), name="agent-blob-put"),
]

urlpatterns = [
    path("api/v1/", include(api_patterns)),
    # Prometheus: the metrics token or the agent token (docs/monitoring.md).
    path("metrics", metrics_endpoint, name="metrics"),
    # The agent's own OpenAPI schema (behind the token like everything else).
    path("api/schema/", SpectacularJSONAPIView.as_view(), name="api-schema"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found, name="api-not-found"),
    path(
        "training/status/<str:session_id>",
        agent_views.deprecated_training_status,
        name="agent-training-status-deprecated",
    ),
]
