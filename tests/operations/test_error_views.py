"""Our 404 and 500 answers with DEBUG off: pages for people, the API's envelope under /api/."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import Client, override_settings

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.operations.raising_urls")]


@override_settings(DEBUG=False)
def test_an_unknown_page_is_our_404_page(logged_in):
    resp = logged_in.get("/no/such/page/")
    assert resp.status_code == 404
    assert [t.name for t in resp.templates][:1] == ["404.html"]
    html = resp.content.decode()
    assert "Page not found" in html
    assert "/no/such/page/" in html
    assert 'rel="icon"' in html  # the site's layout, with its navigation
    assert 'href="/operations/"' in html


@override_settings(DEBUG=False)
def test_a_missing_operation_is_our_404_page(logged_in):
    resp = logged_in.get("/operations/op_missing/")
    assert resp.status_code == 404
    assert "Page not found" in resp.content.decode()


@override_settings(DEBUG=False)
def test_a_failing_page_is_our_500_page(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    resp = client.get("/broken/")
    assert resp.status_code == 500
    assert [t.name for t in resp.templates] == ["500.html"]
    html = resp.content.decode()
    assert "Server error" in html
    assert "a bug in a page" not in html  # nothing of the internals


@override_settings(DEBUG=False)
def test_api_errors_stay_json_in_the_api_envelope(api):
    api.raise_request_exception = False
    resp = api.get("/api/v1/broken/")
    assert resp.status_code == 500
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {
        "error": {
            "code": "server_error",
            "message": "internal server error (logged on the server)",
            "details": {},
        }
    }
    missing = api.get("/api/v1/no-such-endpoint/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_500_page_renders_without_a_request_or_the_database(django_db_blocker):
    with django_db_blocker.block():  # any query would raise
        html = render_to_string("500.html")
    assert "Server error" in html
    assert "/static/ktrdr/app.css" in html
    assert "/static/ktrdr/favicon.svg" in html


@override_settings(DEBUG=False, ROOT_URLCONF="hostagents.agent_urls")
def test_an_agent_answers_json_on_any_unknown_path():
    resp = Client().get("/no/such/page/")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
