"""An oversized request is refused before its body is read (ktrdr_site.bodylimit), through a
real daphne backend on loopback: a client announcing a gigabyte gets its 400 without sending it."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.processes import backend_process, process_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backend():
    with backend_process(process_env(KTRDR_MAX_REQUEST_BYTES="100000")) as url:
        yield int(url.rsplit(":", 1)[1])


def announce(port: int, path: str, length: int) -> bytes:
    """Send headers claiming `length` bytes and no body; return whatever the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith((b"}", b">", b".")):
            chunk = sock.recv(65536)  # a server waiting for the body would time out here
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_gigabyte_announced_to_the_api_is_refused_before_the_body(backend):
    answer = announce(backend, "/api/v1/data/imports/", 1_073_741_824)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b'"code": "too_large"' in body
    assert b"larger than 100,000 bytes" in body


def test_a_page_post_over_the_cap_gets_a_short_page(backend):
    answer = announce(backend, "/data/imports/", 5_000_000)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"larger than 100,000 bytes" in answer


def test_bodies_under_the_cap_pass(backend):
    response = requests.post(
        f"http://127.0.0.1:{backend}/api/v1/operations/countdown/", json={"steps": 1}, timeout=30
    )
    assert response.status_code == 401  # reached the API (which wants a login)
