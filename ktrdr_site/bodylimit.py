"""ASGI middleware: a request body larger than the site takes is refused before it is read.

Django's ASGI handler reads the whole body (to a spooled file) before any view or middleware runs,
so a client announcing a gigabyte would hold a connection and disk for as long as it sends. Here the
`Content-Length` is checked first and an oversized request is answered at once — 400 with the API's
error envelope under `/api/`, a short page elsewhere — and a body sent without a length is cut off
once it passes the cap. daphne itself buffers a body before calling the application, so
`install_in_daphne` also makes its requests refuse an announced body over the cap as soon as the
headers are in. The cap is `KTRDR_MAX_REQUEST_BYTES` (the largest CSV upload plus room for the form,
by default).
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from daphne import http_protocol

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestBodyLimit:
    def __init__(self, app: Callable[..., Awaitable[None]], limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(self.limit())
        announced = _content_length(scope)
        if announced is not None and (announced < 0 or announced > limit):
            await _refuse(scope, send, limit)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django treats a disconnect while reading as an aborted request.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, bounded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


def _refusal(path: str, limit: int) -> tuple[bytes, bytes]:
    message = f"the request body is larger than {limit:,} bytes"
    if path.startswith("/api/"):
        body = json.dumps(
            {"error": {"code": "too_large", "message": message, "details": {"body": [message]}}}
        ).encode()
        return b"application/json", body
    return b"text/html; charset=utf-8", (
        f"<!doctype html><title>Too large</title><p>{message}.</p>".encode()
    )


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    content_type, body = _refusal(str(scope.get("path", "")), limit)
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BoundedWebRequest(http_protocol.WebRequest):
    """daphne's request, refusing an announced body over the cap as soon as the headers are in.

    daphne (twisted) buffers the whole body before the ASGI application sees the request, so the
    check above alone would still let a client hold the connection while it sends a gigabyte.
    """

    max_body = 0
    _refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django parses form bodies itself: twisted's own pass would hold a second copy of every
        # upload in memory and answer a malformed one with a bare 400 before Django could say why.
        self._parsePOSTFormSubmission = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted's name
        if length is not None and self.max_body and length > self.max_body:
            self._refused = True
            self.content = io.BytesIO()  # never filled: what follows is dropped
            self._answer_too_large()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        if not self._refused:
            super().handleContentChunk(data)

    def process(self) -> Any:
        if self._refused:
            return None
        return super().process()

    def _answer_too_large(self) -> None:
        # The request line is parsed but not yet handed to this request: the channel has it.
        path = bytes(getattr(self.channel, "_path", b"") or b"").decode("latin-1")
        content_type, body = _refusal(path, self.max_body)
        head = (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        # As twisted answers a malformed request: straight to the transport, then hang up.
        self.channel.transport.write(head + body)
        self.channel.transport.loseConnection()


def install_in_daphne(limit: int) -> None:
    """Make daphne build its requests with the cap (its factory reads the class at each
    connection)."""
    BoundedWebRequest.max_body = int(limit)
    http_protocol.WebRequest = BoundedWebRequest
