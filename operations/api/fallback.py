"""The API's answer for a path it does not have: a 404 in the error envelope, never a page.

Mounted last under `/api/`, so a malformed id (`/api/v1/training/models/abc/`) or a mistyped
route answers JSON whatever `DEBUG` says.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    body = {
        "error": {
            "code": "not_found",
            "message": f"no API endpoint at {request.path} (see /api/schema/)",
            "details": {"path": request.path[:300]},
        }
    }
    return JsonResponse(body, status=404)
