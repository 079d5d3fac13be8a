"""Request bodies with bounds: size and nesting of JSON are capped before they cost memory.

A body larger than `DATA_UPLOAD_MAX_MEMORY_SIZE` is refused after reading at most one byte past
the cap (never the whole of what a client claims to send); JSON nested deeper than
`MAX_JSON_DEPTH` is refused instead of reaching Python's recursion limit. Both are 400s in the
error envelope naming `body`.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 64


class BodyTooLarge(ParseError):
    default_code = "too_large"


def body_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440)


def json_depth(value: Any) -> int:
    """How deeply `value` nests (an iterative walk: any depth is measured safely)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node)
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return {}
        limit = body_limit()
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise BodyTooLarge(f"the request body is larger than {limit:,} bytes")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_no_constants)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"the body is not valid JSON: {str(exc)[:200]}") from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def body_object(request: Any) -> Any:
    """The request's body as an object (a JSON object or form fields); no body is `{}`.

    A JSON array, string or number where an object is expected is a 400 naming `body`, never read
    as "no parameters"."""
    data = request.data
    if data is None:
        return {}
    if isinstance(data, dict):  # a parsed JSON object, or form fields (a QueryDict)
        return data
    raise ParseError(f"the body must be a JSON object, not {type(data).__name__}")
