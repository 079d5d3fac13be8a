"""The site's edges: favicon, the API root, browsers sent to the login page, /api/ redirects."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from rest_framework.test import APIClient

from ktrdr_site.api_urls import API_ROOT

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_favicon_is_an_svg_linked_from_the_pages(client, logged_in):
    path = finders.find("ktrdr/favicon.svg")
    assert path is not None
    assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    login = client.get("/login/").content.decode()
    assert '<link rel="icon" href="/static/ktrdr/favicon.svg" type="image/svg+xml">' in login
    page = logged_in.get("/operations/").content.decode()
    assert 'href="/static/ktrdr/favicon.svg"' in page


def test_favicon_ico_redirects_to_the_svg_without_a_login(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 301
    assert resp["Location"] == "/static/ktrdr/favicon.svg"


def test_api_redirects_to_the_api_root(client):
    resp = client.get("/api/")
    assert resp.status_code == 302
    assert resp["Location"] == "/api/v1/"


def test_the_api_root_lists_every_endpoint_without_an_id(api):
    resp = api.get("/api/v1/")
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == list(API_ROOT)
    assert body["operations"] == "http://testserver/api/v1/operations/"
    assert body["data/series"] == "http://testserver/api/v1/data/series/"
    assert body["training/models"] == "http://testserver/api/v1/training/models/"
    assert body["agents"] == "http://testserver/api/v1/agents/"
    assert body["docs"] == "http://testserver/api/docs/"
    for url in body.values():
        if url.endswith(("/countdown/", "/loads/", "/imports/", "/runs/")):
            continue  # POST only
        if url.endswith("/validate/"):
            continue
        assert api.get(url).status_code == 200, url


def test_the_api_root_is_browsable_for_a_logged_in_user(logged_in):
    resp = logged_in.get("/api/v1/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "<h1>KTRDR API v1</h1>" in html
    assert 'href="http://testserver/api/v1/operations/"' in html


def test_browsable_breadcrumbs_lead_to_the_api_root_and_name_no_missing_page(logged_in):
    html = logged_in.get("/api/v1/operations/", HTTP_ACCEPT=BROWSER_ACCEPT).content.decode()
    crumbs = html.split('class="breadcrumb"')[1].split("</ul>")[0]
    assert '<a href="/api/v1/">KTRDR API v1</a>' in crumbs
    assert "Not Found" not in crumbs


def test_the_api_root_is_not_in_the_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    assert "/api/v1/" not in schema["paths"]
    assert "/api/v1/operations/" in schema["paths"]


@pytest.mark.parametrize("path", ["/api/v1/", "/api/docs/", "/api/schema/"])
def test_a_logged_out_browser_is_sent_to_the_login_page(client, path):
    resp = client.get(path, HTTP_ACCEPT=BROWSER_ACCEPT)
    assert resp.status_code == 302
    assert resp["Location"] == f"{reverse('login')}?next={path}"


@pytest.mark.parametrize("path", ["/api/v1/", "/api/docs/", "/api/schema/"])
@pytest.mark.parametrize("accept", ["application/json", "*/*", ""])
def test_a_logged_out_api_client_gets_the_401_envelope(path, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    resp = APIClient().get(path, **headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "not_authenticated"
    assert resp["WWW-Authenticate"] == "Token"


def test_a_browser_with_a_bad_token_gets_the_401_not_the_login_page():
    resp = APIClient().get(
        "/api/docs/", HTTP_ACCEPT=BROWSER_ACCEPT, HTTP_AUTHORIZATION="Token wrong"
    )
    assert resp.status_code == 401


def test_swagger_ui_and_schema_open_for_a_logged_in_browser(logged_in):
    assert logged_in.get("/api/docs/", HTTP_ACCEPT=BROWSER_ACCEPT).status_code == 200
    assert logged_in.get("/api/schema/", HTTP_ACCEPT=BROWSER_ACCEPT).status_code == 200
