"""Backend API routes of the hostagents app, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from hostagents import api_views

urlpatterns = [
    path("agents/", api_views.agent_list, name="api-agent-list"),
    path("agents/<str:name>/", api_views.agent_detail, name="api-agent-detail"),
    path("agents/<str:name>/countdown/", api_views.agent_countdown, name="api-agent-countdown"),
    path("health", api_views.health, name="api-health"),
    path(
        "operations/<str:operation_id>/artifacts/<str:name>",
        api_views.artifact_download,
        name="api-operation-artifact",
    ),
]
