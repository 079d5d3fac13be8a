"""The short path of the API's content negotiation picks what DRF's own would, for every Accept
a client may send, and the API still answers HTML to browsers and 406 to the unacceptable."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory

from operations.api.negotiation import JSONFirstNegotiation

ACCEPTS = [
    None,
    "*/*",
    " */* ",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "application/json;q=0.5, text/html",
    "image/png",
]


def _request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().get(f"/api/v1/operations/{query}", **headers))


def _pick(negotiation, request: Request, suffix: str | None = None):
    renderers = [cls() for cls in api_settings.DEFAULT_RENDERER_CLASSES]
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?limit=5"])
def test_it_picks_what_drf_picks(accept, query):
    assert _pick(JSONFirstNegotiation(), _request(accept, query)) == _pick(
        DefaultContentNegotiation(), _request(accept, query)
    )


@pytest.mark.parametrize("suffix", ["json", "api"])
def test_a_format_suffix_goes_through_drf(suffix):
    assert _pick(JSONFirstNegotiation(), _request("*/*"), suffix) == _pick(
        DefaultContentNegotiation(), _request("*/*"), suffix
    )


@pytest.mark.django_db
def test_the_api_answers_json_html_and_406(client, django_user_model):
    user = django_user_model.objects.create_user(username="n", password="x")
    client.force_login(user)
    assert client.get("/api/v1/operations/").headers["Content-Type"] == "application/json"
    html = client.get("/api/v1/operations/", headers={"Accept": "text/html"})
    assert html.headers["Content-Type"].startswith("text/html")
    assert client.get("/api/v1/operations/", headers={"Accept": "image/png"}).status_code == 406
