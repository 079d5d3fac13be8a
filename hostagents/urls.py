"""Page routes of the hostagents app."""

from __future__ import annotations

app_name = "hostagents"
urlpatterns: list = []
