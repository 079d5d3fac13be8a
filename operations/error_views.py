"""The 404 and 500 answers: our own pages, and under `/api/` the API's error envelope.

Django calls these (`handler404`, `handler500` in the URLconfs) when `DEBUG` is off. Under
`/api/` a client gets JSON whatever went wrong, as from every API view
(`operations.api.errors`); elsewhere `templates/404.html` and `templates/500.html`. The 500 page
is rendered without a context or the database: whatever failed may be the database. An agent
serves no pages (`hostagents.agent_urls`): it answers JSON on every path.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from operations.api.errors import error_body


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def api_page_not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    body = error_body(
        "not_found",
        f"no API endpoint at {request.path} (see /api/schema/)",
        {"path": request.path[:300]},
    )
    return JsonResponse(body, status=404)


def api_server_error(request: HttpRequest) -> JsonResponse:
    # What failed is in the server's log; the client learns nothing of the internals.
    body = error_body("server_error", "internal server error (logged on the server)")
    return JsonResponse(body, status=500)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return api_page_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return api_server_error(request)
    return defaults.server_error(request)
