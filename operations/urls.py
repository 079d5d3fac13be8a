"""Operations pages: the live list, and the detail page."""

from __future__ import annotations

from django.urls import path

from operations import views

app_name = "operations"
urlpatterns = [
    path("", views.operation_list, name="list"),
    path("countdown/", views.countdown_create, name="countdown-create"),
    path("<str:operation_id>/", views.operation_detail, name="detail"),
    path("<str:operation_id>/cancel/", views.operation_cancel, name="cancel"),
    path("<str:operation_id>/rerun/", views.operation_rerun, name="rerun"),
    path("<str:operation_id>/resume/", views.operation_resume, name="resume"),
    path("<str:operation_id>/logs/", views.operation_logs, name="logs"),
]
