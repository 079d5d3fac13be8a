"""The agents page: the registry with each agent's pulled health (pulled when someone looks)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hostagents import selectors
from hostagents.serializers import agent_payload


@require_GET
@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    agents = [agent_payload(a) for a in selectors.agent_list()]
    return render(request, "hostagents/agent_list.html", {"agents": agents})
