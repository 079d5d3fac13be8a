"""API routes of the training app, mounted under /api/v1/."""

from __future__ import annotations

urlpatterns: list = []
