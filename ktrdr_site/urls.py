"""Backend URLconf: pages, admin, the v1 API and its schema."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from operations import error_views, runs_views
from operations import views as operations_views
from operations.api.browser import login_redirect_for_browsers
from operations.api.fallback import api_not_found

# DEBUG off: our pages, and the API's error envelope under /api/.
handler404 = error_views.page_not_found
handler500 = error_views.server_error

urlpatterns = [
    # First: API clients poll it most, and each pattern tried before it costs every answer.
    path("api/v1/", include("ktrdr_site.api_urls")),
    path("", RedirectView.as_view(pattern_name="operations:list", permanent=False)),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin, the browsable API).
    path("favicon.ico", RedirectView.as_view(url=static("ktrdr/favicon.svg"), permanent=True)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("operations/", include("operations.urls")),
    path("data/", include("marketdata.urls")),
    path("training/", include("training.urls")),
    path("backtests/", include("backtest.urls")),
    path("evaluations/", include("evaluation.urls")),
    path("agents/", include("hostagents.urls")),
    path("runs/", runs_views.run_list, name="runs"),
    path("runs/compare/", runs_views.run_compare, name="runs-compare"),
    path("system/", operations_views.system_page, name="system"),
    # Prometheus: a scrape token or a staff session (docs/monitoring.md).
    path("metrics", operations_views.metrics_endpoint, name="metrics"),
    path("api/", RedirectView.as_view(pattern_name="api-root", permanent=False)),
    path(
        "api/schema/",
        login_redirect_for_browsers(SpectacularAPIView.as_view()),
        name="api-schema",
    ),
    # The split view serves Swagger UI's start script as a file, so the page needs no inline
    # script; Swagger UI does add <style> elements, which only this page allows.
    path(
        "api/docs/",
        login_redirect_for_browsers(
            csp_update({"style-src": ["'unsafe-inline'"]})(
                SpectacularSwaggerSplitView.as_view(url_name="api-schema")
            )
        ),
        name="api-docs",
    ),
    re_path(r"^api/(?P<rest>.*)$", api_not_found, name="api-not-found"),
]
