"""API routes of the evaluation app, mounted under /api/v1/evaluations/."""

from __future__ import annotations

from django.urls import path

from evaluation import api

urlpatterns = [path("", api.evaluation_create, name="api-evaluation-create")]
