"""The browsable API without inline styles, so it passes the site's Content-Security-Policy.

DRF adds pygments' colours as an inline `<style>` when pygments is installed; the policy forbids
inline style elements, so the browsable API shows JSON without colours instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.urls import Resolver404, get_script_prefix, resolve
from rest_framework.renderers import BrowsableAPIRenderer

# The URL name the URLconfs give the catch-all 404 (`operations.api.fallback`). By name: that
# module imports DRF's views, which import the renderers named in the settings, i.e. this one.
FALLBACK_URL_NAME = "api-not-found"


def _is_endpoint(url: str) -> bool:
    path = urlsplit(url).path
    prefix = get_script_prefix().rstrip("/")
    try:
        return resolve(path[len(prefix) :]).url_name != FALLBACK_URL_NAME
    except Resolver404:
        return False


class StrictBrowsableAPIRenderer(BrowsableAPIRenderer):
    def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context(*args, **kwargs)
        context["code_style"] = None
        return context

    def get_breadcrumbs(self, request: Any) -> list[tuple[str, str]]:
        # The API's catch-all 404 (`operations.api.fallback`) answers every path under /api/, so
        # DRF would list each slashless prefix (`/api/v1`) as an "Api Not Found" crumb.
        return [crumb for crumb in super().get_breadcrumbs(request) if _is_endpoint(crumb[1])]
