"""PacingLimiter: IB's historical-data pacing rules, enforced by us before IB enforces them.

Rules: no more than 60 requests in any 10 minutes; no identical request
within 15 s; fewer than 6 requests for the same contract within 2 s. IB answers a violation with
error 162 and, when repeated, a disconnect; the client library only throttles to 45 msg/s, so
this limiter is the only thing between a long load and a ban.

Plain Python with an injectable clock, so tests drive it with a fake one. Thread-safe: IB counts
requests per session, not per load, so every load in a process that talks to one IB endpoint
shares one limiter (`shared_limiter((host, port), rules)`), from its own worker thread. A
request passes with `reserve()` (check and record in one step under the lock, so two loads can
never both take the last slot of a window).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class PacingRules:
    max_requests: int = 60
    window_seconds: float = 600.0
    identical_interval: float = 15.0
    per_contract_max: int = 5  # "< 6 per contract per 2 s"
    per_contract_window: float = 2.0

    @classmethod
    def from_mapping(cls, data: dict | None) -> PacingRules:
        if not data:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class PacingLimiter:
    """Say how long until a request may go out, and record the ones that did."""

    def __init__(
        self, rules: PacingRules | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rules = rules or PacingRules()
        self.clock = clock
        self._sent: deque[float] = deque()
        self._per_contract: dict[Hashable, deque[float]] = {}
        self._identical: dict[Hashable, float] = {}
        self.total_waited = 0.0
        self.requests_sent = 0
        self._lock = threading.RLock()

    def _expire(self, now: float) -> None:
        horizon = now - self.rules.window_seconds
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
        short = now - self.rules.per_contract_window
        for key in list(self._per_contract):
            times = self._per_contract[key]
            while times and times[0] <= short:
                times.popleft()
            if not times:
                del self._per_contract[key]
        stale = now - self.rules.identical_interval
        for key in [k for k, t in self._identical.items() if t <= stale]:
            del self._identical[key]

    def delay(self, contract: Hashable, request: Hashable) -> float:
        """Seconds until a request (`request` identifies it exactly) for `contract` is allowed."""
        with self._lock:
            return self._delay(contract, request)

    def _delay(self, contract: Hashable, request: Hashable) -> float:
        now = self.clock()
        self._expire(now)
        r = self.rules
        waits = [0.0]
        if len(self._sent) >= r.max_requests:
            # The oldest request in the window must age out; with n over the limit, the n-th.
            waits.append(self._sent[len(self._sent) - r.max_requests] + r.window_seconds - now)
        times = self._per_contract.get(contract)
        if times and len(times) >= r.per_contract_max:
            waits.append(times[len(times) - r.per_contract_max] + r.per_contract_window - now)
        last = self._identical.get(request)
        if last is not None:
            waits.append(last + r.identical_interval - now)
        return max(waits)

    def record(self, contract: Hashable, request: Hashable) -> None:
        """A request went out now."""
        with self._lock:
            self._record(contract, request)

    def _record(self, contract: Hashable, request: Hashable) -> None:
        now = self.clock()
        self._sent.append(now)
        self._per_contract.setdefault(contract, deque()).append(now)
        self._identical[request] = now
        self.requests_sent += 1

    def reserve(self, contract: Hashable, request: Hashable) -> float:
        """0.0 and the request recorded if it may go out now; else the seconds to wait (nothing
        recorded). Check and record happen under one lock: the way to pass when loads share the
        limiter."""
        with self._lock:
            wait = self.delay(contract, request)
            if wait <= 0:
                self._record(contract, request)
                return 0.0
            return wait

    def add_waited(self, seconds: float) -> None:
        with self._lock:
            self.total_waited += seconds

    def acquire(
        self, contract: Hashable, request: Hashable, sleep: Callable[[float], bool]
    ) -> float:
        """Wait (through `sleep`, which returns True to abort) until allowed, then record.

        Returns the seconds waited; raises InterruptedError when `sleep` reports an abort.
        A small epsilon is added to each wait so float rounding never lands a request exactly on
        the edge of a window.
        """
        waited = 0.0
        while (wait := self.reserve(contract, request)) > 0:
            if sleep(wait + 1e-3):
                raise InterruptedError("pacing wait aborted")
            waited += wait
        self.add_waited(waited)
        return waited

    def budget(self) -> dict[str, int]:
        """Requests used in the current 10-minute window, for the progress context."""
        with self._lock:
            self._expire(self.clock())
            return {"used": len(self._sent), "limit": self.rules.max_requests}


class UnlimitedPacing(PacingLimiter):
    """For sources without pacing rules (synthetic, benchmarks with pacing off)."""

    def delay(self, contract: Hashable, request: Hashable) -> float:
        return 0.0


# --- one limiter per IB endpoint per process --------------------------------------------------
_shared: dict[Hashable, PacingLimiter] = {}
_shared_lock = threading.Lock()
_shared_pid = os.getpid()


def shared_limiter(key: Hashable, rules: PacingRules | None = None) -> PacingLimiter:
    """The process-wide limiter for `key` (an IB endpoint, `(host, port)`), created on first use.

    Every load in the process that talks to that endpoint gets this same object. When the
    configured rules differ from the limiter's (settings changed), the rules are replaced and
    the request history is kept.
    """
    global _shared_pid
    rules = rules or PacingRules()
    with _shared_lock:
        if _shared_pid != os.getpid():  # a forked child starts with its own history
            _shared.clear()
            _shared_pid = os.getpid()
        limiter = _shared.get(key)
        if limiter is None:
            limiter = _shared[key] = PacingLimiter(rules)
        elif limiter.rules != rules:
            with limiter._lock:
                limiter.rules = rules
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests)."""
    with _shared_lock:
        _shared.clear()
