"""The agents page: the registry with each agent's pulled health (pulled when someone looks).

Its table is a polled fragment (`operations.polling`): reachability and running work stay
current while the page is open, 304 while nothing changed."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hostagents import selectors
from hostagents.serializers import agent_payload
from operations import polling

# How often the page polls: agents' health is cached a few seconds, so faster shows nothing new.
POLL_SECONDS = 5


def _agent_state(a: dict) -> tuple:
    """What a row shows, for the table's ETag (not its rendering)."""
    health = a["health"] or {}
    gpu = health.get("gpu") or {}
    return (a["name"], a["base_url"], a["enabled"], a["reachable"], tuple(a["capabilities"]),
            gpu.get("available"), gpu.get("device_name"), health.get("running_count"),
            health.get("version"), a["last_error"], _minute(a["health_pulled_at"]))  # fmt: skip


def _minute(moment) -> int | None:
    """The pull time to the minute: each agent's health is pulled every few seconds, and the page
    shows how long ago ("a minute ago", kept current by live.js), which a new pull moves little."""
    return None if moment is None else int(moment.timestamp() // 60)


@require_GET
@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    agents = [agent_payload(a) for a in selectors.agent_list()]
    etag = polling.etag_of([_agent_state(a) for a in agents])
    context = {"agents": agents, "etag": etag, "poll_seconds": POLL_SECONDS}
    if polling.is_poll(request, "agents-table"):
        if (unchanged := polling.not_modified(request, etag)) is not None:
            return unchanged
        response = render(request, "hostagents/agent_list.html#agents-table", context)
        return polling.fragment(response, etag)
    return render(request, "hostagents/agent_list.html", context)
