"""The project's URLs plus the floor the viewer benchmarks compare against.

The floor is the cheapest authenticated answer Django can give behind the project's own
middleware: a logged-in check and a two-key `JsonResponse`. Every page and API answer pays at least
that, so "N× the floor" says what a view adds on top.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from ktrdr_site.urls import urlpatterns as project_urlpatterns


def floor(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "login"}, status=401)
    return JsonResponse({"ok": True, "user": request.user.pk})


@api_view(["GET"])
def drf_floor(request: Request) -> Response:
    """The same answer through DRF (its authentication, permission and rendering): what any API
    view pays beyond the floor."""
    return Response({"ok": True, "user": request.user.pk})


urlpatterns = [
    path("bench/floor/", floor, name="bench-floor"),
    path("bench/drf-floor/", drf_floor, name="bench-drf-floor"),
    *project_urlpatterns,
]
