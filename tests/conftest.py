"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from operations.execution import owner_refresh
from operations.local import local_runs


@pytest.fixture(autouse=True)
def _clean_cache_and_runs():
    """Each test starts with an empty operations cache and leaves no worker running."""
    cache.clear()
    yield
    for operation_id in local_runs.active_ids():
        local_runs.cancel(operation_id, "test finished")
    local_runs.wait_idle(timeout=30)
    # The next test's runs start with a fresh owner refresh (its first pull one TTL after start).
    owner_refresh.stop_when_idle()
    cache.clear()


@pytest.fixture
def tmpfs(tmp_path):
    """A real 1 MiB file system (tmpfs) to fill up or make read-only; skipped, saying why, where
    this machine allows no mounting."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_up(folder) -> None:
    """Write zeros into `folder` until its file system is full."""
    import os

    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full now
    finally:
        os.close(fd)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="s3cret-pass!")


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated with a DRF token (as scripts use it)."""
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    """An API client of a staff user (who may cancel anyone's operation)."""
    staff = django_user_model.objects.create_user(
        username="sam", password="s3cret-staff!", is_staff=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


@pytest.fixture
def logged_in(client, user):
    """The Django test client with a session (as the pages use it)."""
    client.force_login(user)
    return client


@pytest.fixture
def fast_ttl(settings):
    """A short cache TTL so tests can step past the window without long sleeps."""
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 0.2}
    return 0.2
