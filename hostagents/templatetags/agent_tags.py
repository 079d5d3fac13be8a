"""Template filters of the agents page."""

from __future__ import annotations

from typing import Any

from django import template

from hostagents.errors import describe_agent_error

register = template.Library()


@register.filter
def agent_error(text: Any) -> str:
    """An agent's recorded error as a sentence (the raw text is shown folded away beside it)."""
    return describe_agent_error(text)
