"""Browser navigation to an API page while logged out: the login page, not a bare 401.

For the pages a person opens in a browser tab (the API root, Swagger UI, the schema). Only a
request that names `text/html` in its `Accept` header and carries no `Authorization` header is
redirected; an API client (JSON, `*/*`, or a token) gets the API's 401 envelope as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse


def wants_html(request: HttpRequest) -> bool:
    """A browser's page load: it asks for `text/html` by name (`*/*` alone is not asking)."""
    return any(t.main_type == "text" and t.sub_type == "html" for t in request.accepted_types)


def login_redirect_for_browsers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if (
            not request.user.is_authenticated
            and "HTTP_AUTHORIZATION" not in request.META
            and wants_html(request)
        ):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
