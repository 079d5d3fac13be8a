"""Least privilege at the door: logins are throttled with a clear lockout, every page carries a
Content-Security-Policy (the browser tests check the pages work under it)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_repeated_wrong_passwords_lock_that_login_out_with_a_message(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 5
    for _ in range(5):
        wrong = client.post("/login/", {"username": "alice", "password": "not-it"})
        assert wrong.status_code in (200, 429)
    locked = client.post("/login/", {"username": "alice", "password": "s3cret-pass!"})

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session  # the right password does not get in now


def test_a_good_login_is_not_locked_by_someone_elses_failures(client, user, django_user_model):
    django_user_model.objects.create_user("mallory", password="mallory-pw-1")
    for _ in range(10):
        client.post("/login/", {"username": "mallory", "password": "guess"})
    ok = client.post("/login/", {"username": "alice", "password": "s3cret-pass!"})
    assert ok.status_code == 302


def test_pages_and_the_api_carry_a_strict_content_security_policy(logged_in, api):
    page = logged_in.get("/operations/")
    answer = api.get("/api/v1/operations/")
    for response in (page, answer):
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "object-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy.split("style-src-attr")[0]
