"""The ASGI application daphne serves (ktrdr_site.threaded_wsgi): each request whole in one thread
of a bounded pool, the WSGI contract kept (close(), request_finished), bodies capped, streams
streamed."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.core.signals import request_finished
from django.core.wsgi import get_wsgi_application

from ktrdr_site.threaded_wsgi import ThreadedWSGI


def _call(app, path: str = "/", *, body: bytes = b"", method: str = "GET") -> list[dict]:
    """One request through the ASGI app; the messages it sent back."""

    async def run() -> list[dict]:
        sent: list[dict] = []
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)
        return sent

    return asyncio.run(run())


class _Answer(list):
    """A WSGI iterable that records its close(), as a server must call it."""

    closed = 0
    streaming = False

    def close(self) -> None:
        type(self).closed += 1


def test_every_request_runs_in_one_thread_of_a_bounded_pool_and_is_closed():
    threads: list[str] = []

    def wsgi(environ, start_response):
        threads.append(threading.current_thread().name)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Answer([b"he", b"llo"])

    app = ThreadedWSGI(wsgi, max_body_bytes=1000, workers=3, name="t-http")
    _Answer.closed = 0
    for _ in range(20):
        sent = _call(app)
        assert sent[0]["status"] == 200
        assert (b"content-type", b"text/plain") in sent[0]["headers"]
        assert sent[1] == {"type": "http.response.body", "body": b"hello", "more_body": False}
    assert _Answer.closed == 20
    assert all(name.startswith("t-http") for name in threads)
    assert len(set(threads)) <= 3


def test_a_streaming_answer_is_sent_chunk_by_chunk():
    class Stream(_Answer):
        streaming = True

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Stream([b"a" * 10, b"", b"b" * 5])

    sent = _call(ThreadedWSGI(wsgi, max_body_bytes=1000))
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["type"] == "http.response.start"
    assert bodies == [b"a" * 10, b"b" * 5, b""]
    assert sent[-1]["more_body"] is False


def test_a_body_over_the_cap_is_refused_without_calling_the_application():
    called = []

    def wsgi(environ, start_response):
        called.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b""]

    app = ThreadedWSGI(wsgi, max_body_bytes=100)
    assert _call(app, method="POST", body=b"x" * 101)[0]["status"] == 413
    assert called == []
    assert _call(app, method="POST", body=b"x" * 100)[0]["status"] == 200
    assert called == [b"x" * 100]


@pytest.mark.django_db(transaction=True)
def test_django_answers_through_it_and_finishes_each_request():
    finished = []

    def on_finished(**kwargs) -> None:
        finished.append(threading.current_thread().name)

    request_finished.connect(on_finished)
    try:
        app = ThreadedWSGI(get_wsgi_application(), max_body_bytes=10_000, name="dj-http")
        sent = _call(app, "/login/")
    finally:
        request_finished.disconnect(on_finished)
    assert sent[0]["status"] == 200
    assert b"<form" in b"".join(m.get("body", b"") for m in sent)
    assert len(finished) == 1
    assert finished[0].startswith("dj-http")
