"""The project's settings with the benchmarks' URLs (the floor beside the real pages)."""

from ktrdr_site.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
