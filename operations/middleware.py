"""Pages and API answers when the database or the cache is down (`operations.outages`).

DRF views answer an outage themselves (`operations.api.errors`); this catches it for every other
view: the API's JSON envelope under `/api/`, a readable page elsewhere — never Django's debug
page or a bare 500.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from operations.outages import describe, is_outage, log_outage, service_of


class OutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        log_outage(exception, request.path)
        message = describe(exception)
        if request.path.startswith("/api/"):
            body = {
                "error": {
                    "code": "service_unavailable",
                    "message": message,
                    "details": {"service": service_of(exception)},
                }
            }
            return JsonResponse(body, status=503, headers={"Retry-After": "5"})
        # A standalone template: the normal layout reads the user, i.e. the database.
        html = render_to_string("503.html", {"message": message, "path": request.path})
        return HttpResponse(html, status=503, headers={"Retry-After": "5"})
