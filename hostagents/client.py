"""`AgentClient`: the backend's one HTTP client per host agent.

* One pooled `requests.Session` per agent, kept in a module-level registry (`client_for`), so
  refreshes reuse a keep-alive connection instead of paying a TCP (and Django request) setup
  each time — the upstream project lost ~30 % of its remote latency to a client per request.
* Connect and read timeouts on every request; retries with exponential backoff for idempotent
  requests only (GETs, and starts that carry an idempotency key, which the agent deduplicates).
* Errors are translated once: 404 → `AgentNotFound`, connection failure / timeout / 5xx →
  `AgentUnreachable`, 401/403 → `AgentAuthError`, other 4xx → `AgentRejected`, a body that is not
  the contract → `AgentProtocolError`. Nothing an agent sends is trusted: every answer is parsed
  through `hostagents.contract`, i.e. the serializers the API itself renders with.
* Artifacts are streamed to a temporary file, size-limited, sha256-verified and only then renamed
  into place (atomic), so a corrupted or truncated transfer never leaves a file behind.

The session/transport is injectable for tests; answers are parsed with the serializers of
`hostagents.contract`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from hostagents.conf import agent_setting
from hostagents.contract import (
    parse_health,
    parse_metrics_page,
    parse_missing_blobs,
    parse_operation,
    parse_operation_list,
    parse_results,
)
from hostagents.errors import (
    AgentAuthError,
    AgentError,
    AgentNotFound,
    AgentProtocolError,
    AgentRejected,
    AgentUnreachable,
    ArtifactIntegrityError,
)
from operations.conf import ktrdr_setting
from operations.kinds import FetchedArtifact

__all__ = [
    "AgentAuthError",
    "AgentClient",
    "AgentError",
    "AgentNotFound",
    "AgentProtocolError",
    "AgentRejected",
    "AgentUnreachable",
    "ArtifactIntegrityError",
    "FetchedArtifact",
    "client_for",
    "reset_clients",
]

logger = logging.getLogger(__name__)

USER_AGENT = "ktrdr-backend/1"
CHUNK_BYTES = 1 << 20


def new_session(token: str, *, pool_maxsize: int = 8) -> requests.Session:
    session = requests.Session()
    # Our own retry loop decides what may be retried; urllib3's must not retry POSTs behind it.
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
    )
    return session


def _error_envelope(response: requests.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) from the agent's error body, tolerating any garbage."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            details = error.get("details")
            return (
                str(error.get("code", ""))[:64],
                str(error.get("message", ""))[:500],
                details if isinstance(details, dict) else {},
            )
    except ValueError:
        pass
    return "", (response.text or "")[:200].strip(), {}


class AgentClient:
    """HTTP client for one agent. Thread-safe as far as `requests.Session` pools are."""

    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        pooled: bool = True,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.pooled = pooled
        self.session = session if session is not None else new_session(token)
        self.timeout = (connect_timeout, read_timeout)
        self.retries = max(int(retries), 0)
        self.backoff = backoff
        self._sleep = sleep
        # Requests sent, by (method, kind): tests and benchmarks count agent round trips here.
        self.requests_sent: Counter[tuple[str, str]] = Counter()

    def close(self) -> None:
        self.session.close()

    # --- transport -------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}api/v1/{path}"

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self.pooled:
            return self.session.request(method, url, **kwargs)
        # Benchmark baseline: a fresh session (new TCP connection) for every request. A streamed
        # answer keeps its session open until the response is closed and collected.
        session = new_session(self.token)
        response = session.request(method, url, **kwargs)
        if not kwargs.get("stream"):
            _ = response.content
            session.close()
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        idempotent: bool,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        attempts = 1 + (self.retries if idempotent else 0)
        last: AgentError | None = None
        for attempt in range(attempts):
            self.requests_sent[(method, kind)] += 1
            try:
                response = self._send(
                    method,
                    self._url(path),
                    params=params,
                    json=json,
                    headers=headers,
                    stream=stream,
                    timeout=timeout or self.timeout,
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                last = AgentUnreachable(self.name, f"timed out ({kind}): {exc}")
            except requests.RequestException as exc:
                last = AgentUnreachable(self.name, f"unreachable ({kind}): {exc}")
            else:
                if response.status_code < 500:
                    return response
                code, message, _ = _error_envelope(response)
                response.close()
                last = AgentUnreachable(
                    self.name,
                    f"answered {response.status_code} to {kind}: {message or code or 'no detail'}",
                    status=response.status_code,
                )
            if attempt + 1 < attempts:
                # Backoff doubles: a restarting agent gets a moment, a dead one costs little.
                self._sleep(self.backoff * (2**attempt))
        assert last is not None
        raise last

    def _check(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        code, message, details = _error_envelope(response)
        response.close()
        text = message or code or f"HTTP {status}"
        if status == 404:
            raise AgentNotFound(self.name, f"{what}: not found ({text})", status=status)
        if status in (401, 403):
            raise AgentAuthError(
                self.name,
                f"{what}: token rejected ({text}); check KTRDR_AGENT_TOKEN on both sides",
                status=status,
            )
        raise AgentRejected(self.name, f"{what}: {text}", status=status, code=code, details=details)

    def _json(self, response: requests.Response, what: str) -> Any:
        self._check(response, what)
        try:
            return response.json()
        except ValueError:
            raise AgentProtocolError(
                self.name, f"{what}: the answer is not JSON ({response.text[:80]!r})"
            ) from None

    # --- API -------------------------------------------------------------------------------
    def health(self, *, retries: bool = False) -> dict[str, Any]:
        response = self._request("GET", "health", kind="health", idempotent=retries)
        return parse_health(self._json(response, "health"), agent=self.name)

    def get_operation(self, remote_id: str, *, force_refresh: bool = False) -> dict[str, Any]:
        params = {"force_refresh": "true"} if force_refresh else None
        response = self._request(
            "GET",
            f"operations/{quote(remote_id)}/",
            kind="operation",
            idempotent=True,
            params=params,
        )
        return parse_operation(self._json(response, f"operation {remote_id}"), agent=self.name)

    def get_metrics(
        self, remote_id: str, *, cursor: int, limit: int = 5000
    ) -> tuple[list[dict[str, Any]], int]:
        response = self._request(
            "GET",
            f"operations/{quote(remote_id)}/metrics/",
            kind="metrics",
            idempotent=True,
            params={"cursor": cursor, "limit": limit},
        )
        body = self._json(response, f"metrics of {remote_id}")
        return parse_metrics_page(body, cursor=cursor, agent=self.name)

    def get_results(self, remote_id: str) -> dict[str, Any]:
        response = self._request(
            "GET", f"operations/{quote(remote_id)}/results/", kind="results", idempotent=True
        )
        return parse_results(self._json(response, f"results of {remote_id}"), agent=self.name)

    def list_operations(self, **params: Any) -> dict[str, Any]:
        response = self._request(
            "GET", "operations/", kind="list", idempotent=True, params=params or None
        )
        return parse_operation_list(self._json(response, "operation list"), agent=self.name)

    def start(self, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """POST a start (`{operation_type, params, inputs}`); retried on transport errors because
        the key makes it idempotent."""
        operation_type = body.get("operation_type", "?")
        response = self._request(
            "POST",
            "starts/",
            kind="start",
            idempotent=True,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return parse_operation(self._json(response, f"start of {operation_type}"), agent=self.name)

    def find_start(self, idempotency_key: str) -> dict[str, Any] | None:
        """The operation a start with this key created, or None if the agent never saw it."""

        response = self._request(
            "GET", f"starts/{quote(idempotency_key)}", kind="find_start", idempotent=True
        )
        try:
            body = self._json(response, f"start {idempotency_key}")
        except AgentNotFound:
            return None
        return parse_operation(body, agent=self.name)

    def cancel(self, remote_id: str, reason: str) -> dict[str, Any]:
        # Not retried: a cancel is repeatable, but a retry storm is the wrong answer to an agent
        # that is down; the next refresh re-forwards it when the agent is back.
        response = self._request(
            "POST",
            f"operations/{quote(remote_id)}/cancel/",
            kind="cancel",
            idempotent=False,
            json={"reason": reason},
        )
        return parse_operation(self._json(response, f"cancel of {remote_id}"), agent=self.name)

    def blobs_missing(self, hashes: list[str]) -> list[str]:
        response = self._request(
            "POST", "blobs/missing", kind="blobs", idempotent=True, json={"sha256": hashes}
        )
        return parse_missing_blobs(self._json(response, "blob check"), agent=self.name)

    def download_artifact(
        self,
        remote_id: str,
        name: str,
        dest: Path,
        *,
        expected_sha256: str,
        expected_size: int,
        max_bytes: int,
    ) -> FetchedArtifact:
        """Stream one artifact into `dest`: verified size and sha256, atomic rename, or nothing."""
        if expected_size > max_bytes:
            raise ArtifactIntegrityError(
                self.name, f"artifact {name} is {expected_size} bytes, over the {max_bytes} limit"
            )
        response = self._request(
            "GET",
            f"operations/{quote(remote_id)}/artifacts/{quote(name)}",
            kind="artifact",
            idempotent=True,
            stream=True,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with response:
                self._check(response, f"artifact {name} of {remote_id}")
                header_sha = (response.headers.get("X-Content-SHA256") or "").lower()
                if header_sha != expected_sha256.lower():
                    raise ArtifactIntegrityError(
                        self.name,
                        f"artifact {name}: X-Content-SHA256 {header_sha or 'missing'} differs "
                        f"from the manifest's {expected_sha256}",
                    )
                try:
                    length = int(response.headers.get("Content-Length", ""))
                except ValueError:
                    raise ArtifactIntegrityError(
                        self.name, f"artifact {name}: no usable Content-Length"
                    ) from None
                if length != expected_size:
                    raise ArtifactIntegrityError(
                        self.name,
                        f"artifact {name}: Content-Length {length} differs from the manifest's "
                        f"{expected_size}",
                    )
                digest = hashlib.sha256()
                received = 0
                with open(tmp, "wb") as fh:
                    try:
                        for chunk in response.iter_content(CHUNK_BYTES):
                            received += len(chunk)
                            if received > expected_size:
                                raise ArtifactIntegrityError(
                                    self.name,
                                    f"artifact {name}: more than the announced "
                                    f"{expected_size} bytes",
                                )
                            digest.update(chunk)
                            fh.write(chunk)
                    except requests.RequestException as exc:
                        raise ArtifactIntegrityError(
                            self.name,
                            f"artifact {name}: transfer broke off after {received} of "
                            f"{expected_size} bytes ({exc})",
                        ) from None
                    fh.flush()
                    os.fsync(fh.fileno())
                if received != expected_size:
                    raise ArtifactIntegrityError(
                        self.name,
                        f"artifact {name}: truncated, {received} of {expected_size} bytes",
                    )
                actual = digest.hexdigest()
                if actual != expected_sha256.lower():
                    raise ArtifactIntegrityError(
                        self.name,
                        f"artifact {name}: sha256 {actual} does not match {expected_sha256}",
                    )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return FetchedArtifact(name=name, path=dest, size=received, sha256=actual)


# --- the per-agent registry -------------------------------------------------------------------
_clients: dict[str, AgentClient] = {}
_clients_lock = threading.Lock()


def client_for(agent: Any) -> AgentClient:
    """The shared pooled client of a registry `Agent` (re-created if its URL or token changed)."""
    token = str(ktrdr_setting("AGENT_TOKEN") or "")
    client = _clients.get(agent.name)
    if (
        client is not None
        and client.base_url == agent.base_url.rstrip("/") + "/"
        and (client.token == token)
    ):
        return client
    with _clients_lock:
        client = _clients.get(agent.name)
        if (
            client is None
            or client.base_url != agent.base_url.rstrip("/") + "/"
            or (client.token != token)
        ):
            if client is not None:
                client.close()
            client = AgentClient(
                agent.name,
                agent.base_url,
                token,
                connect_timeout=float(agent_setting("AGENT_CONNECT_TIMEOUT")),
                read_timeout=float(agent_setting("AGENT_READ_TIMEOUT")),
                retries=int(agent_setting("AGENT_RETRIES")),
                backoff=float(agent_setting("AGENT_RETRY_BACKOFF")),
            )
            _clients[agent.name] = client
        return client


def reset_clients() -> None:
    """Close and forget every client (tests simulate a backend restart with it)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
