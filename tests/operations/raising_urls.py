"""The site's URLconf plus a page and an API view that fail, to see the 500 answers (tests only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from ktrdr_site import urls as site_urls


def broken_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a page")


@api_view(["GET"])
@permission_classes([AllowAny])
def broken_api(request: Request) -> Response:
    raise RuntimeError("a bug in an API view")


handler404 = site_urls.handler404
handler500 = site_urls.handler500
urlpatterns = [
    path("broken/", broken_page),
    path("api/v1/broken/", broken_api),
    *site_urls.urlpatterns,
]
