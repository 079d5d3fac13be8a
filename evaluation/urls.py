"""Page routes of the evaluation app (mounted at /evaluations/)."""

from __future__ import annotations

from django.urls import path

from evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("", views.evaluation_list, name="list"),
    path("start/", views.evaluation_start, name="start"),
]
