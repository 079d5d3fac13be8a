"""Page routes of the marketdata app."""

from __future__ import annotations

app_name = "marketdata"
urlpatterns: list = []
