"""The BarSeries admin lists series and cannot create one by hand."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from marketdata import services

pytestmark = pytest.mark.django_db


def test_admin_lists_series_and_offers_no_add(client, data_dir):
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client.force_login(admin)
    services.seed_demo_data()
    page = client.get("/admin/marketdata/barseries/")
    assert page.status_code == 200
    assert "EURUSD" in page.content.decode()
    assert client.get("/admin/marketdata/barseries/add/").status_code == 403
