"""Operations API routes (identical on backend and agents)."""

from __future__ import annotations

from django.urls import path

from operations.api import views

urlpatterns = [
    path("operations/", views.operation_list, name="api-operation-list"),
    path("operations/countdown/", views.countdown_create, name="api-countdown-create"),
    path("operations/<str:operation_id>/", views.operation_detail, name="api-operation-detail"),
    path(
        "operations/<str:operation_id>/metrics/",
        views.operation_metrics,
        name="api-operation-metrics",
    ),
    path("operations/<str:operation_id>/logs/", views.operation_logs, name="api-operation-logs"),
    path(
        "operations/<str:operation_id>/cancel/", views.operation_cancel, name="api-operation-cancel"
    ),
    path("operations/<str:operation_id>/rerun/", views.operation_rerun, name="api-operation-rerun"),
    path(
        "operations/<str:operation_id>/resume/", views.operation_resume, name="api-operation-resume"
    ),
    path(
        "operations/<str:operation_id>/results/",
        views.operation_results,
        name="api-operation-results",
    ),
]
