"""API routes of the hostagents app, mounted under /api/v1/."""

from __future__ import annotations

urlpatterns: list = []
