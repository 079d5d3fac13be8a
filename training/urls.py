"""Page routes of the training app (mounted at /training/)."""

from __future__ import annotations

from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.strategy_list, name="strategy-list"),
    path("strategies/<str:name>/", views.strategy_detail, name="strategy-detail"),
    path("strategies/<str:name>/train/", views.training_start, name="training-start"),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:model_id>/", views.model_detail, name="model-detail"),
]
