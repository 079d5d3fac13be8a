"""Page routes of the hostagents app (mounted at /agents/)."""

from __future__ import annotations

from django.urls import path

from hostagents import views

app_name = "hostagents"
urlpatterns = [
    path("", views.agent_list, name="list"),
]
