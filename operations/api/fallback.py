"""The API's answer for a path it does not have: a 404 in the error envelope, never a page.

Mounted last under `/api/` on the backend and on agents, so a malformed id
(`/api/v1/training/models/abc/`) or a mistyped route answers JSON whatever `DEBUG` says. It is an
API view like the others: without credentials the answer is the same 401 as everywhere.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from operations.exceptions import NotFound


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE"])
def api_not_found(request: Request, rest: str = "") -> Response:
    raise NotFound(
        f"no API endpoint at {request.path} (see /api/schema/)",
        details={"path": request.path[:300]},
    )
