"""`AgentClient`: the backend's one HTTP client per host agent.

* One pooled `requests.Session` per agent, kept in a module-level registry (`client_for`), so
  refreshes reuse a keep-alive connection instead of paying a TCP (and Django request) setup
  each time — the upstream project lost ~30 % of its remote latency to a client per request.
  The session reads the environment (proxies, CA bundle) once, when it is made, not on every
  request (`trust_env` off: requests would scan the whole environment and look for a `.netrc`,
  whose credentials would replace the bearer token, per call).
* A refresh is one request (`refresh`: `GET operations/{id}/refresh/?cursor=`, the operation and
  its new metric records together); an agent older than that endpoint answers its route with a
  404 that names no operation, and is then refreshed with the operation GET and metrics pages as
  before, and asked again after a while (it may have been upgraded).
* Every call has one overall wall deadline (`read_timeout` for a JSON exchange: connect, headers
  and the whole body), enforced while the body is read — not a per-socket-read timeout, which a
  slow-drip answer defeats. JSON answers are capped (`max_answer_bytes`); artifacts keep their
  own cap and get a deadline scaled by their size.
* No retry after a timeout: it already spent the budget. Idempotent requests (GETs, starts that
  carry an idempotency key, which the agent deduplicates) are retried only after a quick failure
  (refused or reset connection, 5xx), inside the same deadline. After a timeout the client backs
  off: for a while (doubling up to `backoff_max`) it does not contact the agent at all and answers
  `AgentUnreachable` at once, so readers get the last snapshot instead of waiting on a hung agent.
* Errors are translated once: 404 → `AgentNotFound`, connection failure / timeout / 5xx →
  `AgentUnreachable`, 401/403 → `AgentAuthError`, other 4xx → `AgentRejected`, a body that is not
  the contract → `AgentProtocolError`. An error message is the agent's JSON error envelope or a
  short status line — never the text of an HTML page. Nothing an agent sends is trusted: every
  answer is parsed through `hostagents.contract`, i.e. the serializers the API renders with.
* Input blobs go up as raw streamed bodies (`put_blob`), never inside a JSON body; artifacts are
  streamed to a temporary file, size-limited, sha256-verified and only then renamed into place
  (atomic), so a corrupted or truncated transfer never leaves a file behind.

The session/transport and the clock are injectable for tests.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import logging
import os
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from hostagents.conf import agent_setting
from hostagents.contract import (
    RefreshAnswer,
    parse_health,
    parse_logs_page,
    parse_metrics_page,
    parse_missing_blobs,
    parse_operation,
    parse_operation_list,
    parse_refresh_page,
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
from hostagents.metrics import (
    AGENT_REQUEST_SECONDS,
    AGENT_REQUESTS,
    ARTIFACT_BYTES,
    INPUT_BYTES,
    outcome_of_status,
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
# A file name an agent may list (the same rule as its artifact names).
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")

USER_AGENT = "ktrdr-backend/1"
CHUNK_BYTES = 1 << 20
# An error answer is read only this far: its envelope is small, a debug page is not wanted.
ERROR_BODY_BYTES = 64 * 1024
# Connection failures whose request certainly never reached the agent.
_NOT_DELIVERED = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
_READ_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException, OSError)
# Metric records per page: in the one-request refresh (its deadline is the short refresh one, so
# a long backlog is not squeezed into it), and in the metrics pages that fetch the rest.
REFRESH_PAGE = 1000
METRICS_PAGE = 5000
# Log lines per logs page; the backlog of an ended operation is read to at most this many pages
# (KTRDR_OPERATION_LOG_MAX_LINES bounds what is kept anyway).
LOGS_PAGE = 1000
MAX_LOG_PAGES = 20
_TERMINAL = frozenset({"completed", "failed", "cancelled"})
# An agent without the one-request refresh is asked for it again after this long.
REFRESH_RECHECK_SECONDS = 300.0


class _DeadlinePassed(Exception):
    """Raised inside a transfer when its wall deadline has passed (caught by the client)."""


def new_session(
    token: str, *, pool_maxsize: int = 8, base_url: str = "", ca_bundle: str = ""
) -> requests.Session:
    session = requests.Session()
    # The environment is read here, once: with `trust_env` on, requests merges proxies from the
    # whole environment and looks for a .netrc on every request (a third of a pooled refresh),
    # and a .netrc entry for the agent's host would replace our bearer token.
    session.trust_env = False
    session.proxies.update(get_environ_proxies(base_url) if base_url else {})
    bundle = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
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


def error_envelope(status: int, reason: str, body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of an error answer: the API's JSON envelope, else a short status
    line. The body of anything else (a Django debug page, a proxy's HTML) is never quoted."""
    try:
        parsed = jsonlib.loads(body) if body else None
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        details = error.get("details")
        return (
            str(error.get("code", ""))[:64],
            str(error.get("message", ""))[:500],
            details if isinstance(details, dict) else {},
        )
    return "", f"HTTP {status} {reason or ''}".strip()[:80], {}


def _socket_of(raw: Any) -> Any:
    connection = getattr(raw, "connection", None)
    return getattr(connection, "sock", None)


def _delivered(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, _NOT_DELIVERED)


def _ssl_reason(exc: requests.exceptions.SSLError) -> BaseException:
    """The innermost cause of a TLS failure (urllib3 wraps the `ssl` error twice)."""
    reason: BaseException = exc
    while True:
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException):
            args = reason.args
            inner = args[0] if args and isinstance(args[0], BaseException) else None
        if inner is None or inner is reason:
            return reason
        reason = inner


class _Upload:
    """A request body read from bytes in blocks, refusing to go on past its deadline (a
    `sendall` of the whole body would not look at the clock)."""

    def __init__(self, data: bytes, deadline: float, clock: Callable[[], float]) -> None:
        self._view = memoryview(data)
        self._pos = 0
        self._deadline = deadline
        self._clock = clock

    def __len__(self) -> int:
        return len(self._view) - self._pos

    def read(self, size: int = -1) -> bytes:
        if self._clock() > self._deadline:
            raise _DeadlinePassed("upload")
        end = len(self._view) if size is None or size < 0 else self._pos + min(size, CHUNK_BYTES)
        chunk = self._view[self._pos : end].tobytes()
        self._pos += len(chunk)
        return chunk


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
        clock: Callable[[], float] = time.monotonic,
        max_answer_bytes: int = 8 * 1024**2,
        quiet_base: float = 1.0,
        quiet_max: float = 30.0,
        min_transfer_rate: float = 1024**2,
        refresh_timeout: float | None = None,
        ca_bundle: str = "",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token
        self.pooled = pooled
        # What an https agent's certificate is verified against ("" : the system's CAs).
        self.ca_bundle = ca_bundle
        self.session = (
            session
            if session is not None
            else new_session(token, base_url=self.base_url, ca_bundle=ca_bundle)
        )
        self.connect_timeout = connect_timeout
        # The overall deadline of one JSON exchange, and the longest a transfer may stall.
        self.read_timeout = read_timeout
        # The deadline of the small operation GET a reader's refresh makes: a hung agent costs
        # that first reader at most this, and the backoff spares the ones after it.
        self.refresh_timeout = min(refresh_timeout or read_timeout, read_timeout)
        self.retries = max(int(retries), 0)
        self.backoff = backoff
        self.max_answer_bytes = int(max_answer_bytes)
        self.quiet_base = quiet_base
        self.quiet_max = quiet_max
        self.min_transfer_rate = float(min_transfer_rate)
        self._sleep = sleep
        self._clock = clock
        self._quiet_lock = threading.Lock()
        self._timeouts = 0
        # Until then (clock time) the agent is not contacted: it timed out recently, or nothing
        # answered at its address (`_quiet_why` says which).
        self.quiet_until = 0.0
        self._quiet_why = ""
        # Until then (clock time) refreshes use the two older GETs: the agent lacked the
        # one-request refresh when it was last asked.
        self.refresh_legacy_until = 0.0
        # Requests sent, by (method, kind): tests and benchmarks count agent round trips here.
        self.requests_sent: Counter[tuple[str, str]] = Counter()

    def close(self) -> None:
        self.session.close()

    # --- backing off -----------------------------------------------------------------------
    def _check_quiet(self, kind: str) -> None:
        wait = self.quiet_until - self._clock()
        if wait > 0:
            AGENT_REQUESTS.labels(self.name, kind, "skipped").inc()
            raise AgentUnreachable(
                self.name,
                f"not contacted ({kind}): {self._quiet_why}; next try in {wait:.1f} s",
                delivered=False,
            )

    def _note_timeout(self) -> None:
        with self._quiet_lock:
            self._timeouts += 1
            delay = min(self.quiet_max, self.quiet_base * 2 ** (self._timeouts - 1))
            self.quiet_until = self._clock() + delay
            self._quiet_why = f"it timed out {self._timeouts} time(s) in a row"

    def _note_down(self, error: AgentUnreachable) -> None:
        """Nothing answered at the agent's address after the retries (refused, no route): the
        next `quiet_base` seconds fail at once. A page listing N of its operations would
        otherwise pay the retries' backoff N times per TTL window, in every server thread that
        polls it. Not doubled: a restarted agent is found again within `quiet_base`."""
        text = error.message.lower()
        why = "connection refused" if "refused" in text else "no connection"
        with self._quiet_lock:
            if self.quiet_until < self._clock() + self.quiet_base:
                self.quiet_until = self._clock() + self.quiet_base
                self._quiet_why = f"nothing answered at its last try ({why})"

    def _note_answer(self) -> None:
        if self.quiet_until:
            with self._quiet_lock:
                self._timeouts = 0
                self.quiet_until = 0.0

    # --- transport -------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}api/v1/{path}"

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self.pooled:
            return self.session.request(method, url, **kwargs)
        # Benchmark baseline: a fresh session (new TCP connection) for every request. The
        # answer keeps its session open until the response is closed and collected.
        session = new_session(self.token, base_url=self.base_url, ca_bundle=self.ca_bundle)
        return session.request(method, url, **kwargs)

    def _timed_out(self, kind: str, what: str) -> AgentUnreachable:
        self._note_timeout()
        return AgentUnreachable(self.name, f"timed out ({kind}): {what}")

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        idempotent: bool,
        budget: float | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[requests.Response, float]:
        """Send one request; returns the response (headers read, body not) and the deadline the
        body must be read by. Retries quick failures of idempotent requests inside it."""
        self._check_quiet(kind)
        budget = self.read_timeout if budget is None else budget
        deadline = self._clock() + budget
        attempts = 1 + (self.retries if idempotent else 0)
        last: AgentError | None = None
        for attempt in range(attempts):
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self.requests_sent[(method, kind)] += 1
            sent_at = self._clock()
            try:
                response = self._send(
                    method,
                    self._url(path),
                    params=params,
                    json=json,
                    data=_Upload(data, deadline, self._clock) if data is not None else None,
                    headers=headers,
                    stream=True,
                    # After an upload the agent hashes and stores it before it answers: that wait
                    # may take the rest of the transfer's deadline, not one read's timeout.
                    timeout=(
                        min(self.connect_timeout, remaining),
                        remaining if data is not None else min(self.read_timeout, remaining),
                    ),
                    allow_redirects=False,
                )
            except (requests.Timeout, _DeadlinePassed) as exc:
                self._observe(kind, "timeout", sent_at)
                # A timeout is not retried: it spent the budget, and the agent may be hung.
                error = self._timed_out(kind, str(exc) or "no answer within the deadline")
                error.delivered = not isinstance(exc, requests.ConnectTimeout)
                raise error from None
            except requests.exceptions.SSLError as exc:
                self._observe(kind, "unreachable", sent_at)
                reason = _ssl_reason(exc)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    # Refused in the handshake, before the request (and its token) went out;
                    # it will not pass by itself, so it is not retried.
                    raise AgentUnreachable(
                        self.name,
                        f"TLS handshake failed ({kind}): {reason} — is the agent's certificate "
                        "trusted here (KTRDR_AGENT_CA_BUNDLE) and valid for its URL?",
                        delivered=False,
                    ) from None
                # Any other TLS failure (an http:// agent registered as https://, a connection
                # cut mid-answer) may come after the request was sent: as any connection error.
                last = AgentUnreachable(
                    self.name, f"TLS error ({kind}): {reason}", delivered=_delivered(exc)
                )
            except requests.RequestException as exc:
                self._observe(kind, "unreachable", sent_at)
                last = AgentUnreachable(
                    self.name, f"unreachable ({kind}): {exc}", delivered=_delivered(exc)
                )
            else:
                self._observe(kind, outcome_of_status(response.status_code), sent_at)
                if response.status_code < 500:
                    self._note_answer()
                    return response, deadline
                body = self._read_error_body(response, deadline)
                code, message, _ = error_envelope(response.status_code, response.reason, body)
                last = AgentUnreachable(
                    self.name,
                    f"answered {response.status_code} to {kind}: {message or code}",
                    status=response.status_code,
                    code=code,
                )
            if attempt + 1 < attempts:
                # Backoff doubles: a restarting agent gets a moment, a dead one costs little.
                self._sleep(self.backoff * (2**attempt))
        if last is None:
            raise self._timed_out(kind, f"no answer within {budget:.1f} s")
        if isinstance(last, AgentUnreachable) and not last.delivered:
            self._note_down(last)
        raise last

    def _observe(self, kind: str, outcome: str, sent_at: float) -> None:
        AGENT_REQUESTS.labels(self.name, kind, outcome).inc()
        AGENT_REQUEST_SECONDS.labels(self.name, kind).observe(max(self._clock() - sent_at, 0.0))

    def _chunks(self, response: requests.Response, deadline: float, kind: str) -> Iterator[bytes]:
        """The body as it arrives, one socket read at a time, each bounded by what is left of
        the deadline (a slow drip cannot hold a call past it)."""
        raw = response.raw
        read1 = getattr(raw, "read1", None)
        if read1 is None:  # a transport that already holds the body (test fakes)
            if response.content:
                yield response.content
            return
        sock = _socket_of(raw)
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                response.close()
                raise self._timed_out(kind, "the answer did not arrive within the deadline")
            if sock is not None:
                sock.settimeout(min(self.read_timeout, remaining))
            try:
                chunk = read1(CHUNK_BYTES)
            except _READ_ERRORS as exc:
                response.close()
                if "timed out" in str(exc).lower():
                    raise self._timed_out(kind, f"the answer stalled: {exc}") from None
                raise AgentUnreachable(
                    self.name, f"the answer to {kind} broke off: {exc}"
                ) from None
            if not chunk:
                release = getattr(raw, "release_conn", None)
                if release is not None:
                    release()  # read to the end: the connection goes back to the pool
                return
            yield chunk

    def _read_body(
        self, response: requests.Response, deadline: float, kind: str, cap: int
    ) -> bytes:
        try:
            announced = int(response.headers.get("Content-Length", ""))
        except ValueError:
            announced = -1
        if announced > cap:
            response.close()
            raise AgentProtocolError(
                self.name, f"{kind}: an answer of {announced} bytes is over the {cap}-byte limit"
            )
        parts: list[bytes] = []
        size = 0
        for chunk in self._chunks(response, deadline, kind):
            size += len(chunk)
            if size > cap:
                response.close()
                raise AgentProtocolError(
                    self.name, f"{kind}: the answer is over the {cap}-byte limit"
                )
            parts.append(chunk)
        return b"".join(parts)

    def _read_error_body(self, response: requests.Response, deadline: float) -> bytes:
        try:
            return self._read_body(response, deadline, "error answer", ERROR_BODY_BYTES)
        except AgentError:
            return b""

    def _check(self, response: requests.Response, deadline: float, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        body = self._read_error_body(response, deadline)
        code, message, details = error_envelope(status, response.reason, body)
        text = message or code
        if status == 404:
            raise AgentNotFound(
                self.name, f"{what}: not found ({text})", status=status, details=details
            )
        if status in (401, 403):
            raise AgentAuthError(
                self.name,
                f"{what}: token rejected ({text}); check KTRDR_AGENT_TOKEN on both sides",
                status=status,
            )
        raise AgentRejected(self.name, f"{what}: {text}", status=status, code=code, details=details)

    def _json(self, answer: tuple[requests.Response, float], what: str) -> Any:
        response, deadline = answer
        self._check(response, deadline, what)
        body = self._read_body(response, deadline, what, self.max_answer_bytes)
        try:
            return jsonlib.loads(body)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise AgentProtocolError(
                self.name, f"{what}: the answer is not JSON ({kind[:40]}, {len(body)} bytes)"
            ) from None

    def _transfer_budget(self, size: int) -> float:
        """A deadline for moving `size` bytes: the JSON budget plus the time at the slowest rate
        we accept, so a big file gets long enough and a stalled one not forever."""
        return self.read_timeout + size / max(self.min_transfer_rate, 1.0)

    # --- API -------------------------------------------------------------------------------
    def health(self, *, retries: bool = False) -> dict[str, Any]:
        answer = self._request("GET", "health", kind="health", idempotent=retries)
        return parse_health(self._json(answer, "health"), agent=self.name)

    def get_operation(self, remote_id: str, *, force_refresh: bool = False) -> dict[str, Any]:
        params = {"force_refresh": "true"} if force_refresh else None
        answer = self._request(
            "GET",
            f"operations/{quote(remote_id)}/",
            kind="operation",
            idempotent=True,
            params=params,
            budget=self.refresh_timeout,
        )
        return parse_operation(self._json(answer, f"operation {remote_id}"), agent=self.name)

    def refresh(
        self, remote_id: str, *, cursor: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        """(operation, every metric record with seq ≥ cursor, the cursor after them): a refresh
        without log lines (`refresh_with_logs` says the rest)."""
        answer = self.refresh_with_logs(remote_id, cursor=cursor)
        return answer.operation, answer.records, answer.new_cursor

    def refresh_with_logs(
        self, remote_id: str, *, cursor: int, log_cursor: int | None = None
    ) -> RefreshAnswer:
        """What one refresh of a remote operation pulls: the operation, every metric record with
        seq ≥ cursor and the cursor after them, parsed through the contract; with `log_cursor`,
        also the agent's log lines from there (a page per refresh while it runs; once it has
        ended, the rest of its log, in pages, since nobody refreshes it again).

        One request (`GET operations/{id}/refresh/`); a longer backlog than `REFRESH_PAGE`
        continues with metrics pages. An agent that lacks the endpoint (a 404 naming no
        operation) is refreshed as before — the operation GET, then metrics pages, no log lines —
        and asked for it again after `REFRESH_RECHECK_SECONDS`."""
        if self._clock() >= self.refresh_legacy_until:
            try:
                answer = self._refresh_page(remote_id, cursor, log_cursor)
            except AgentNotFound as exc:
                if "operation_id" in exc.details:
                    raise  # the agent has the endpoint and does not know the operation
                self.refresh_legacy_until = self._clock() + REFRESH_RECHECK_SECONDS
                logger.info(
                    "agent %s has no one-request refresh (%s); using the two GETs for %.0f s",
                    self.name,
                    exc.message,
                    REFRESH_RECHECK_SECONDS,
                )
            else:
                records, new_cursor = answer.records, answer.new_cursor
                if len(records) == REFRESH_PAGE:
                    more, new_cursor = self._metrics_from(remote_id, new_cursor)
                    records = records + more
                logs, logs_cursor = answer.logs, answer.logs_cursor
                ended = answer.operation.get("status") in _TERMINAL
                if logs is not None and ended and logs:
                    more_logs, logs_cursor = self._logs_from(remote_id, logs_cursor)
                    logs = logs + more_logs
                return RefreshAnswer(answer.operation, records, new_cursor, logs, logs_cursor)
        operation = self.get_operation(remote_id)
        records, new_cursor = self._metrics_from(remote_id, cursor)
        return RefreshAnswer(operation, records, new_cursor)

    def _refresh_page(self, remote_id: str, cursor: int, log_cursor: int | None) -> RefreshAnswer:
        params: dict[str, Any] = {"cursor": cursor, "limit": REFRESH_PAGE}
        if log_cursor is not None:
            params["log_cursor"] = log_cursor
        answer = self._request(
            "GET",
            f"operations/{quote(remote_id)}/refresh/",
            kind="refresh",
            idempotent=True,
            params=params,
            budget=self.refresh_timeout,
        )
        body = self._json(answer, f"refresh of {remote_id}")
        return parse_refresh_page(body, cursor=cursor, agent=self.name, log_cursor=log_cursor)

    def _logs_from(self, remote_id: str, cursor: int) -> tuple[list[dict[str, Any]], int]:
        """The log lines with seq ≥ cursor of an ended operation, at most `MAX_LOG_PAGES` pages."""
        lines: list[dict[str, Any]] = []
        for _page in range(MAX_LOG_PAGES):
            page, new_cursor = self.get_logs(remote_id, cursor=cursor, limit=LOGS_PAGE)
            lines.extend(page)
            done = len(page) < LOGS_PAGE or new_cursor == cursor
            cursor = new_cursor
            if done:
                break
        return lines, cursor

    def get_logs(
        self, remote_id: str, *, cursor: int, limit: int = LOGS_PAGE
    ) -> tuple[list[dict[str, Any]], int]:
        answer = self._request(
            "GET",
            f"operations/{quote(remote_id)}/logs/",
            kind="logs",
            idempotent=True,
            params={"cursor": cursor, "limit": limit},
        )
        body = self._json(answer, f"logs of {remote_id}")
        return parse_logs_page(body, cursor=cursor, agent=self.name)

    def _metrics_from(self, remote_id: str, cursor: int) -> tuple[list[dict[str, Any]], int]:
        """Every record with seq ≥ cursor, in as many metrics pages as it takes."""
        records: list[dict[str, Any]] = []
        while True:
            page, new_cursor = self.get_metrics(remote_id, cursor=cursor, limit=METRICS_PAGE)
            records.extend(page)
            if len(page) < METRICS_PAGE or new_cursor == cursor:
                return records, new_cursor
            cursor = new_cursor

    def get_metrics(
        self, remote_id: str, *, cursor: int, limit: int = METRICS_PAGE
    ) -> tuple[list[dict[str, Any]], int]:
        answer = self._request(
            "GET",
            f"operations/{quote(remote_id)}/metrics/",
            kind="metrics",
            idempotent=True,
            params={"cursor": cursor, "limit": limit},
        )
        body = self._json(answer, f"metrics of {remote_id}")
        return parse_metrics_page(body, cursor=cursor, agent=self.name)

    def get_results(self, remote_id: str) -> dict[str, Any]:
        answer = self._request(
            "GET", f"operations/{quote(remote_id)}/results/", kind="results", idempotent=True
        )
        return parse_results(self._json(answer, f"results of {remote_id}"), agent=self.name)

    def resume_files(self, remote_id: str) -> list[dict[str, Any]]:
        """The files a run left for its resume: `[{name, size, sha256}]`, each checked."""
        answer = self._request(
            "GET",
            f"operations/{quote(remote_id)}/resume-files/",
            kind="resume-files",
            idempotent=True,
        )
        body = self._json(answer, f"resume files of {remote_id}")
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise AgentUnreachable(self.name, f"resume files of {remote_id}: not a file list")
        checked = []
        for item in files:
            ok = (
                isinstance(item, dict)
                and isinstance(item.get("name"), str)
                and _FILE_NAME_RE.match(item["name"])
                and isinstance(item.get("size"), int)
                and item["size"] >= 0
                and isinstance(item.get("sha256"), str)
                and len(item["sha256"]) == 64
            )
            if not ok:
                raise AgentUnreachable(self.name, f"resume files of {remote_id}: a bad entry")
            checked.append({k: item[k] for k in ("name", "size", "sha256")})
        return checked

    def list_operations(self, **params: Any) -> dict[str, Any]:
        answer = self._request(
            "GET", "operations/", kind="list", idempotent=True, params=params or None
        )
        return parse_operation_list(self._json(answer, "operation list"), agent=self.name)

    def start(self, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """POST a start (`{operation_type, params, inputs}`); a quick failure is retried because
        the key makes it idempotent. A timeout is not: the caller adopts the start by its key."""
        operation_type = body.get("operation_type", "?")
        answer = self._request(
            "POST",
            "starts/",
            kind="start",
            idempotent=True,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return parse_operation(self._json(answer, f"start of {operation_type}"), agent=self.name)

    def find_start(self, idempotency_key: str) -> dict[str, Any] | None:
        """The operation a start with this key created, or None if the agent never saw it."""

        answer = self._request(
            "GET", f"starts/{quote(idempotency_key)}", kind="find_start", idempotent=True
        )
        try:
            body = self._json(answer, f"start {idempotency_key}")
        except AgentNotFound:
            return None
        return parse_operation(body, agent=self.name)

    def cancel(self, remote_id: str, reason: str) -> dict[str, Any]:
        # Not retried: a cancel is repeatable, but a retry storm is the wrong answer to an agent
        # that is down; the next refresh re-forwards it when the agent is back.
        answer = self._request(
            "POST",
            f"operations/{quote(remote_id)}/cancel/",
            kind="cancel",
            idempotent=False,
            json={"reason": reason},
        )
        return parse_operation(self._json(answer, f"cancel of {remote_id}"), agent=self.name)

    def blobs_missing(self, hashes: list[str]) -> list[str]:
        answer = self._request(
            "POST", "blobs/missing", kind="blobs", idempotent=True, json={"sha256": hashes}
        )
        return parse_missing_blobs(self._json(answer, "blob check"), agent=self.name)

    def put_blob(self, sha256: str, data: bytes) -> dict[str, Any]:
        """Upload one input blob as a raw body (`PUT blobs/{sha256}`); the agent verifies the
        hash and stores it atomically. Idempotent: a blob it has already is a no-op there."""
        answer = self._request(
            "PUT",
            f"blobs/{quote(sha256)}",
            kind="blob_put",
            idempotent=True,
            budget=self._transfer_budget(len(data)),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        body = self._json(answer, f"blob {sha256[:12]}")
        if not isinstance(body, dict) or body.get("sha256") != sha256:
            raise AgentProtocolError(self.name, f"blob {sha256[:12]}: unexpected answer")
        INPUT_BYTES.labels("sent").inc(len(data))
        return body

    def download_artifact(
        self,
        remote_id: str,
        name: str,
        dest: Path,
        *,
        expected_sha256: str,
        expected_size: int,
        max_bytes: int,
        route: str = "artifacts",
    ) -> FetchedArtifact:
        """Stream one artifact into `dest`: verified size and sha256, atomic rename, or nothing.
        (`route="resume-files"`: one of the files a run left for its resume, the same way.)

        A transfer that stalls or runs past its deadline is an `ArtifactIntegrityError` like a
        truncated one: nothing is stored, and the fetch is tried again."""
        if expected_size > max_bytes:
            raise ArtifactIntegrityError(
                self.name, f"artifact {name} is {expected_size} bytes, over the {max_bytes} limit"
            )
        response, deadline = self._request(
            "GET",
            f"operations/{quote(remote_id)}/{route}/{quote(name)}",
            kind="artifact",
            idempotent=True,
            budget=self._transfer_budget(expected_size),
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with response:
                self._check(response, deadline, f"artifact {name} of {remote_id}")
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
                        for chunk in self._chunks(response, deadline, "artifact"):
                            received += len(chunk)
                            if received > expected_size:
                                raise ArtifactIntegrityError(
                                    self.name,
                                    f"artifact {name}: more than the announced "
                                    f"{expected_size} bytes",
                                )
                            digest.update(chunk)
                            fh.write(chunk)
                    except AgentUnreachable as exc:
                        raise ArtifactIntegrityError(
                            self.name,
                            f"artifact {name}: transfer broke off after {received} of "
                            f"{expected_size} bytes ({exc.message})",
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
            ARTIFACT_BYTES.labels("received").inc(received)
        finally:
            tmp.unlink(missing_ok=True)
        return FetchedArtifact(name=name, path=dest, size=received, sha256=actual)


# --- the per-agent registry -------------------------------------------------------------------
_clients: dict[str, AgentClient] = {}
_clients_lock = threading.Lock()


def client_for(agent: Any) -> AgentClient:
    """The shared pooled client of a registry `Agent` (re-created if its URL or token changed)."""
    token = str(ktrdr_setting("AGENT_TOKEN") or "")
    ca_bundle = str(agent_setting("AGENT_CA_BUNDLE") or "")
    client = _clients.get(agent.name)
    if (
        client is not None
        and client.base_url == agent.base_url.rstrip("/") + "/"
        and (client.token == token)
        and client.ca_bundle == ca_bundle
    ):
        return client
    with _clients_lock:
        client = _clients.get(agent.name)
        if (
            client is None
            or client.base_url != agent.base_url.rstrip("/") + "/"
            or (client.token != token)
            or client.ca_bundle != ca_bundle
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
                max_answer_bytes=int(agent_setting("AGENT_MAX_ANSWER_BYTES")),
                quiet_base=float(agent_setting("AGENT_BACKOFF_BASE")),
                quiet_max=float(agent_setting("AGENT_BACKOFF_MAX")),
                min_transfer_rate=float(agent_setting("AGENT_MIN_TRANSFER_RATE")),
                refresh_timeout=float(agent_setting("AGENT_REFRESH_TIMEOUT")),
                ca_bundle=ca_bundle,
            )
            _clients[agent.name] = client
        return client


def reset_clients() -> None:
    """Close and forget every client (tests simulate a backend restart with it)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
