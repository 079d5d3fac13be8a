"""The browsable API without inline styles, so it passes the site's Content-Security-Policy.

DRF adds pygments' colours as an inline `<style>` when pygments is installed; the policy forbids
inline style elements, so the browsable API shows JSON without colours instead.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer


class StrictBrowsableAPIRenderer(BrowsableAPIRenderer):
    def get_context(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context(*args, **kwargs)
        context["code_style"] = None
        return context
