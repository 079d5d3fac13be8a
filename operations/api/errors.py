"""One mapping from errors to the API's error envelope: `{"error": {code, message, details}}`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from operations.api.parsers import BodyTooLarge, body_limit
from operations.exceptions import KtrdrError
from operations.outages import describe, is_outage, log_outage, service_of

logger = logging.getLogger(__name__)


MAX_MESSAGE_CHARS = 2000
MAX_DETAIL_CHARS = 500
MAX_DETAIL_ITEMS = 50


def _bounded(value: Any, depth: int = 0) -> Any:
    """Details as the client gets them: however much a client sent, an answer stays small."""
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_CHARS else value[:MAX_DETAIL_CHARS] + "…"
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_DETAIL_ITEMS]
        return {str(k)[:100]: _bounded(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_bounded(v, depth + 1) for v in list(value)[:MAX_DETAIL_ITEMS]]
    return value


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    message = str(message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return {"error": {"code": code, "message": message, "details": _bounded(details or {})}}


def _validation_message(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            first = errors[0] if isinstance(errors, list) and errors else errors
            if isinstance(first, dict):
                first = _validation_message(first)
            parts.append(f"{field}: {first}")
        return "; ".join(parts) or "invalid input"
    if isinstance(detail, list):
        return "; ".join(str(d) for d in detail) or "invalid input"
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, KtrdrError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if is_outage(exc):
        set_rollback()
        log_outage(exc, f"API {context.get('request') and context['request'].path}")
        body = error_body("service_unavailable", describe(exc), {"service": service_of(exc)})
        return Response(body, status=503, headers={"Retry-After": "5"})
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(f"the request body is larger than {body_limit():,} bytes")
    if isinstance(exc, drf_exceptions.ParseError):
        set_rollback()
        return Response(error_body("invalid", str(exc.detail), {"body": [str(exc.detail)]}), 400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    if isinstance(exc, drf_exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = error_body("invalid", _validation_message(details), details)
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)
