"""Page routes of the training app."""

from __future__ import annotations

app_name = "training"
urlpatterns: list = []
