"""`search` on the operations list page and API: part of the id or the strategy, bounded."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from operations.countdown import countdown_start
from operations.local import local_runs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_countdowns(user):
    ops = [countdown_start(steps=1, step_seconds=0, user=user) for _ in range(2)]
    assert local_runs.wait_idle(10)
    return ops


def test_api_search_finds_by_part_of_the_id(api, two_countdowns):
    wanted = two_countdowns[1].operation_id
    body = api.get("/api/v1/operations/", {"search": wanted[-8:]}).json()
    assert [op["operation_id"] for op in body["operations"]] == [wanted]
    assert body["total"] == 1
    assert api.get("/api/v1/operations/", {"search": "nothing-like-it"}).json()["total"] == 0


def test_api_search_is_bounded(api):
    resp = api.get("/api/v1/operations/", {"search": "x" * 101})
    assert resp.status_code == 400
    assert "search" in resp.json()["error"]["details"]


def test_page_search_filters_the_table_and_keeps_the_term(logged_in, two_countdowns):
    wanted, other = (op.operation_id for op in reversed(two_countdowns))
    html = logged_in.get("/operations/", {"search": wanted[-8:]}).content.decode()
    assert f'id="row-{wanted}"' in html
    assert f'id="row-{other}"' not in html
    assert f'name="search" value="{wanted[-8:]}"' in html


def test_page_search_too_long_says_so_and_never_500s(logged_in, two_countdowns):
    resp = logged_in.get("/operations/", {"search": "y" * 500})
    assert resp.status_code == 200
    assert "search is at most 100 characters" in resp.content.decode()


def test_ops_list_search(two_countdowns):
    out = io.StringIO()
    wanted = two_countdowns[0].operation_id
    call_command("ops", "list", "--search", wanted[-8:], stdout=out)
    assert out.getvalue().splitlines()[0] == "1 operations, 0 active"
    assert wanted in out.getvalue()
