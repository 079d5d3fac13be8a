"""The ASGI application daphne serves, for the backend and for agents: Django's WSGI handler
run in a small pool of threads, one thread hop per request.

Django's own ASGI handler runs every sync middleware through `sync_to_async` — a dozen or more
thread hops per request, and each hop costs more than the floor view itself (bench_load: 3.3 ms
of server CPU per floor request through Django's ASGI handler, 1.2 ms through this, 0.6 ms for
the same request in-process). Every view here is sync, so the whole request runs in one worker
thread instead: the same views, middleware and URLconf. Unlike `asgiref.wsgi.WsgiToAsgi` it
calls the response's `close()` (the WSGI contract: request_finished fires, database connections
and files are closed) and runs requests in a bounded pool, so a long download does not hold up
the polls beside it — and a thread's database connection can persist between requests
(`KTRDR_DB_CONN_MAX_AGE`) without leaking, since the threads live as long as the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from asgiref.wsgi import WsgiToAsgiInstance

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
# Larger request bodies are spooled to disk (CSV uploads, an agent's input blobs).
SPOOL_BYTES = 1 << 20


class ThreadedWSGI:
    def __init__(
        self,
        wsgi_application: Callable[..., Iterable[bytes]],
        *,
        max_body_bytes: int,
        workers: int = 8,
        name: str = "http",
    ) -> None:
        self.wsgi_application = wsgi_application
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        with SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    await _plain(send, 413, b"request body too large")
                    return
                body.write(chunk)
                if not message.get("more_body"):
                    break
            body.seek(0)

            def send_sync(msg: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(send(msg), loop).result()

            buffered = await loop.run_in_executor(self.executor, self._run, scope, body, send_sync)
        # A plain (non-streaming) answer comes back whole and is sent from here: no cross-thread
        # hop per message, which is most of what is left of the per-request overhead.
        for msg in buffered:
            await send(msg)

    def _run(
        self, scope: dict[str, Any], body: Any, send_sync: Callable[..., None]
    ) -> list[dict[str, Any]]:
        adapter = WsgiToAsgiInstance(self.wsgi_application)
        adapter.scope = scope  # build_environ reads the headers from the instance
        try:
            environ = adapter.build_environ(scope, body)
        except ValueError:
            return _plain_messages(400, b"bad request headers")
        start: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            start["status"] = int(status.split(" ", 1)[0])
            start["headers"] = [
                (k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers
            ]

        result = self.wsgi_application(environ, start_response)
        try:
            if not getattr(result, "streaming", False):
                content = b"".join(result)
                return [
                    {"type": "http.response.start", **start},
                    {"type": "http.response.body", "body": content, "more_body": False},
                ]
            started = False
            for chunk in result:
                if not chunk:
                    continue
                if not started:
                    send_sync({"type": "http.response.start", **start})
                    started = True
                send_sync({"type": "http.response.body", "body": chunk, "more_body": True})
            if not started:
                send_sync({"type": "http.response.start", **start})
            send_sync({"type": "http.response.body", "body": b"", "more_body": False})
            return []
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"text/plain")]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": text})


def _plain_messages(status: int, text: bytes) -> list[dict[str, Any]]:
    return [
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"text/plain")]},
        {"type": "http.response.body", "body": text},
    ]  # fmt: skip
