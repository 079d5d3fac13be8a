"""Logged-out requests to the API's page-like views: a browser to the login page, a client a 401.

For the pages a person opens in a browser tab (the API root, Swagger UI, the schema). A request
that names `text/html` in its `Accept` header and carries no credentials is sent to the login
page (and back after it). Any other request without credentials gets the API's 401 envelope in
JSON, as from every API view — Swagger UI and the schema would render their 401 as HTML or YAML.
Requests with an `Authorization` header, or a session, reach the view, which authenticates them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response


def wants_html(request: HttpRequest) -> bool:
    """A browser's page load: it asks for `text/html` by name (`*/*` alone is not asking)."""
    return any(t.main_type == "text" and t.sub_type == "html" for t in request.accepted_types)


@extend_schema(exclude=True)
@api_view(["GET"])
def credentials_required(request: Request) -> Response:
    """The API's 401 (the default permission refuses an anonymous request before this runs)."""
    raise NotAuthenticated()


def login_redirect_for_browsers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated or "HTTP_AUTHORIZATION" in request.META:
            return view(request, *args, **kwargs)
        if wants_html(request):
            return redirect_to_login(request.get_full_path())
        return credentials_required(request)

    return wrapped
