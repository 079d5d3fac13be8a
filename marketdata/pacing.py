"""PacingLimiter: IB's historical-data pacing rules, enforced by us before IB enforces them.

Rules: no more than 60 requests in any 10 minutes; no identical request within 15 s; fewer than
6 requests for the same contract within 2 s. IB answers a violation with error 162 and, when
repeated, a disconnect; the client library only throttles to 45 msg/s, so this limiter is the
only thing between a long load and a ban.

IB paces per session — per IB endpoint (host, port) — not per load or per process, so the
request history lives in a *ledger* every limiter of that endpoint reads and writes under one
lock: `MemoryLedger` (this process only), `FileLedger` (a JSON file guarded by `flock`, for the
processes of one host sharing a data home) or `RedisLedger` (WATCH/MULTI on one key, for every
process that shares the Redis). `shared_limiter((host, port), rules, ledger=...)` gives the one
limiter object per endpoint per process.

Two things keep jitter from turning into violations:

* **Stamped at send time.** `try_reserve()` takes a slot and returns a `PacingTicket`; until the
  ticket is settled the entry counts as sent at the latest moment it may still go out (its
  deadline), so nobody can slip in before it. The gateway notes the moment the request is handed
  to the socket (`ticket.mark_sent()`), and `ticket.settle()` re-stamps the entry with that time
  (or, for a gateway that cannot say, the time the call returned — an upper bound); a ticket whose
  request provably never left is released.
* **A margin on every window** (`PacingRules.margin`): IB measures when a request *arrives*, we
  when it *leaves*; the margin absorbs the difference, network jitter and small clock slews.

Plain Python with an injectable clock (`clock=`) and sleep, so tests drive it with a fake one.
Thread-safe. Stamps in a shared ledger come from `time.time` by default (comparable between
processes and hosts); a stamp in the future (the clock stepped back) is clamped to now, which
only ever makes the limiter wait longer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import redis

logger = logging.getLogger(__name__)

T = TypeVar("T")

# An entry of a ledger: [stamp, contract, request, ticket id, pending]. `stamp` is the send time,
# or for a pending entry (slot taken, not yet settled) the deadline by which it goes out or lapses.
Entry = list[Any]

# While a pending entry of someone else's holds us back, look again this often: it is normally
# settled within milliseconds, and its deadline is only the worst case.
PENDING_RECHECK = 0.1
# How long a reservation may stay unsent before it lapses (covers a reconnect: three client ids,
# each with its connect timeout, and a probe).
DEFAULT_HOLD = 120.0


class PacingBudgetUnavailable(RuntimeError):
    """The shared ledger (Redis, the lock file) cannot be read or written: nothing may be sent."""


@dataclass(frozen=True)
class PacingRules:
    max_requests: int = 60
    window_seconds: float = 600.0
    identical_interval: float = 15.0
    per_contract_max: int = 5  # "< 6 per contract per 2 s"
    per_contract_window: float = 2.0
    # Seconds added to every window (IB counts arrivals, we count departures; see above).
    margin: float = 0.5

    @classmethod
    def from_mapping(cls, data: dict | None) -> PacingRules:
        if not data:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def exact(self) -> PacingRules:
        """The same rules without our margin: what IB itself enforces (the simulator)."""
        return dataclasses.replace(self, margin=0.0)

    @property
    def horizon(self) -> float:
        """How long an entry can matter."""
        return max(self.window_seconds, self.identical_interval, self.per_contract_window) + (
            self.margin
        )


# --- ledgers ----------------------------------------------------------------------------------
class PacingLedger(Protocol):
    """Where an endpoint's request history lives. `update(fn)` runs `fn(entries)` under the
    ledger's lock on the current entries, stores what `fn` left in the list, returns its result."""

    location: str

    def update(self, fn: Callable[[list[Entry]], T]) -> T: ...


class MemoryLedger:
    """This process only."""

    def __init__(self) -> None:
        self.location = f"memory:{id(self)}"
        self._entries: list[Entry] = []
        self._lock = threading.Lock()

    def update(self, fn: Callable[[list[Entry]], T]) -> T:
        with self._lock:
            return fn(self._entries)


class FileLedger:
    """A JSON file shared by the processes of one host, guarded by `flock` on a lock file beside
    it; written to a temporary file and renamed, so a reader never sees half a history."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.location = f"file:{self.path}"
        self._lock = threading.Lock()  # threads of this process queue here, not on the flock

    def _load(self) -> list[Entry]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            # Only our own writes (temp file + rename) produce it, so this is a damaged disk or a
            # foreign file; an empty history may let one burst through, never more.
            logger.warning("IB pacing ledger %s unreadable (%s); starting empty", self.path, exc)
            return []
        return [e for e in data if isinstance(e, list) and len(e) == 5]

    def update(self, fn: Callable[[list[Entry]], T]) -> T:
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise PacingBudgetUnavailable(f"IB pacing ledger {self.path}: {exc}") from exc
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                entries = self._load()
                result = fn(entries)
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(entries))
                os.replace(tmp, self.path)
                return result
            except OSError as exc:
                raise PacingBudgetUnavailable(f"IB pacing ledger {self.path}: {exc}") from exc
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()


class RedisLedger:
    """One Redis key (a JSON list) per endpoint, updated with WATCH/MULTI: a concurrent writer
    makes the transaction retry, so check-and-record stays one atomic step across processes."""

    def __init__(
        self, url: str, key: str, *, ttl: float = 900.0, client: redis.Redis | None = None
    ) -> None:
        self.key = key
        self.location = f"redis:{url}/{key}"
        self.ttl = int(ttl)
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0
        )

    def update(self, fn: Callable[[list[Entry]], T]) -> T:
        for _ in range(200):
            try:
                with self._client.pipeline() as pipe:
                    pipe.watch(self.key)
                    raw = pipe.get(self.key)
                    entries = json.loads(raw) if raw else []
                    result = fn(entries)
                    pipe.multi()
                    pipe.set(self.key, json.dumps(entries), ex=self.ttl)
                    pipe.execute()
                    return result
            except redis.WatchError:
                continue  # someone else wrote between our read and our write: do it again
            except (redis.RedisError, ValueError) as exc:
                raise PacingBudgetUnavailable(f"IB pacing budget in Redis: {exc}") from exc
        raise PacingBudgetUnavailable("IB pacing budget in Redis: too much contention")


# --- tickets -----------------------------------------------------------------------------------
class PacingTicket:
    """A slot taken for one request. The gateway calls `mark_sent()` when it hands the request
    to the socket (no I/O: safe on an event loop); the loader calls `settle()` once the call is
    over."""

    __slots__ = ("deadline", "entry_id", "limiter", "reports_send", "sent_at")

    def __init__(self, limiter: PacingLimiter | None, entry_id: str, deadline: float) -> None:
        self.limiter = limiter
        self.entry_id = entry_id
        self.deadline = deadline
        self.sent_at: float | None = None
        # True when the gateway says when it sends: then no mark means "never sent".
        self.reports_send = False

    @property
    def lapsed(self) -> bool:
        """Past its deadline: it must not be sent any more (others assume it went out by then)."""
        return self.limiter is not None and self.limiter.clock() > self.deadline

    def mark_sent(self) -> None:
        if self.limiter is not None and self.sent_at is None:
            self.sent_at = self.limiter.clock()

    def settle(self) -> None:
        """Stamp the entry with its send time, or release it if the request never left."""
        limiter, self.limiter = self.limiter, None
        if limiter is None:
            return
        if self.sent_at is None and self.reports_send:
            limiter._release(self.entry_id)
        else:
            limiter._confirm(self.entry_id, self.sent_at)


class PacingLimiter:
    """Say how long until a request may go out, and keep the ledger of the ones that did."""

    def __init__(
        self,
        rules: PacingRules | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        ledger: PacingLedger | None = None,
        hold: float = DEFAULT_HOLD,
    ) -> None:
        self.rules = rules or PacingRules()
        self.clock = clock
        self.ledger: PacingLedger = ledger or MemoryLedger()
        self.hold = float(hold)
        self.total_waited = 0.0
        self.requests_sent = 0
        self._ids = itertools.count()
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()

    # --- the rules, on a list of entries (pure) -------------------------------------------------
    def _tidy(self, entries: list[Entry], now: float) -> None:
        """Drop entries too old to matter; clamp stamps a stepped-back clock put in the future."""
        keep = []
        for entry in entries:
            limit = now + self.hold if entry[4] else now
            entry[0] = min(entry[0], limit)
            if entry[0] > now - self.rules.horizon:
                keep.append(entry)
        entries[:] = keep

    def _wait(self, entries: list[Entry], now: float, contract: str, request: str) -> float:
        worst = self._wait_on(entries, now, contract, request)
        if worst <= 0 or not any(e[4] for e in entries):
            return worst
        # A pending entry counts at its deadline, the worst case; it is normally settled within
        # milliseconds, so when only that holds us back, look again soon.
        best = self._wait_on(
            [[min(e[0], now), *e[1:]] if e[4] else e for e in entries], now, contract, request
        )
        return max(best, min(worst, PENDING_RECHECK))

    def _wait_on(self, entries: list[Entry], now: float, contract: str, request: str) -> float:
        r = self.rules
        waits = [0.0]
        window = r.window_seconds + r.margin
        recent = sorted(e[0] for e in entries if e[0] > now - window)
        if len(recent) >= r.max_requests:
            # The oldest request in the window must age out; with n over the limit, the n-th.
            waits.append(recent[len(recent) - r.max_requests] + window - now)
        short = r.per_contract_window + r.margin
        same_contract = sorted(e[0] for e in entries if e[1] == contract and e[0] > now - short)
        if len(same_contract) >= r.per_contract_max:
            waits.append(same_contract[len(same_contract) - r.per_contract_max] + short - now)
        identical = r.identical_interval + r.margin
        same = [e[0] for e in entries if e[2] == request and e[0] > now - identical]
        if same:
            waits.append(max(same) + identical - now)
        return max(waits)

    # --- the ledger -----------------------------------------------------------------------------
    def delay(self, contract: Hashable, request: Hashable) -> float:
        """Seconds until a request (`request` identifies it exactly) for `contract` is allowed."""
        c, q = _key(contract), _key(request)

        def look(entries: list[Entry]) -> float:
            now = self.clock()  # inside the ledger's lock, as in try_reserve
            self._tidy(entries, now)
            return self._wait(entries, now, c, q)

        with self._lock:
            return self.ledger.update(look)

    def try_reserve(
        self, contract: Hashable, request: Hashable
    ) -> tuple[PacingTicket | None, float]:
        """`(ticket, 0.0)` with a slot taken if the request may go out now, else `(None, wait)`.
        Check and record happen in one ledger update: two loads (or processes) never both take
        the last slot of a window."""
        c, q = _key(contract), _key(request)
        entry_id = f"{self._prefix}-{next(self._ids)}"
        deadline = 0.0

        def take(entries: list[Entry]) -> float:
            nonlocal deadline
            # The clock is read here, inside the ledger's lock (and again on every retry): a
            # `now` read before waiting for the lock would be stale under load, and stamps other
            # processes wrote meanwhile would look like the future (and be clamped back).
            now = self.clock()
            deadline = now + self.hold
            self._tidy(entries, now)
            wait = self._wait(entries, now, c, q)
            if wait <= 0:
                entries.append([deadline, c, q, entry_id, True])
            return wait

        with self._lock:
            wait = self.ledger.update(take)
            if wait > 0:
                return None, wait
            self.requests_sent += 1
            return PacingTicket(self, entry_id, deadline), 0.0

    def _confirm(self, entry_id: str, sent_at: float | None) -> None:
        stamp = self.clock() if sent_at is None else sent_at

        def confirm(entries: list[Entry]) -> None:
            for entry in entries:
                if entry[3] == entry_id:
                    entry[0], entry[4] = stamp, False

        with self._lock:
            self.ledger.update(confirm)

    def _release(self, entry_id: str) -> None:
        def release(entries: list[Entry]) -> None:
            entries[:] = [e for e in entries if e[3] != entry_id]

        with self._lock:
            self.ledger.update(release)
            self.requests_sent -= 1

    def record(self, contract: Hashable, request: Hashable) -> None:
        """A request went out now (the simulator's bookkeeping; loads use tickets)."""
        now = self.clock()
        entry = [now, _key(contract), _key(request), f"{self._prefix}-{next(self._ids)}", False]

        def add(entries: list[Entry]) -> None:
            self._tidy(entries, now)
            entries.append(entry)

        with self._lock:
            self.ledger.update(add)
            self.requests_sent += 1

    def reserve(self, contract: Hashable, request: Hashable) -> float:
        """0.0 and the request recorded as sent now if it may go out; else the seconds to wait."""
        ticket, wait = self.try_reserve(contract, request)
        if ticket is not None:
            ticket.settle()
        return wait

    def add_waited(self, seconds: float) -> None:
        with self._lock:
            self.total_waited += seconds

    def acquire(
        self, contract: Hashable, request: Hashable, sleep: Callable[[float], bool]
    ) -> PacingTicket:
        """Wait (through `sleep`, which returns True to abort) until allowed; the ticket of the
        slot taken. Raises InterruptedError when `sleep` reports an abort."""
        waited = 0.0
        while True:
            ticket, wait = self.try_reserve(contract, request)
            if ticket is not None:
                self.add_waited(waited)
                return ticket
            if sleep(wait):
                raise InterruptedError("pacing wait aborted")
            waited += wait

    def budget(self) -> dict[str, int]:
        """Requests used in the current 10-minute window, for the progress context."""
        now = self.clock()
        window = self.rules.window_seconds + self.rules.margin

        def count(entries: list[Entry]) -> int:
            self._tidy(entries, now)
            return sum(1 for e in entries if e[0] > now - window)

        with self._lock:
            return {"used": self.ledger.update(count), "limit": self.rules.max_requests}


class UnlimitedPacing(PacingLimiter):
    """For sources without pacing rules (synthetic, benchmarks with pacing off)."""

    def try_reserve(
        self, contract: Hashable, request: Hashable
    ) -> tuple[PacingTicket | None, float]:
        return PacingTicket(None, "", 0.0), 0.0

    def delay(self, contract: Hashable, request: Hashable) -> float:
        return 0.0

    def budget(self) -> dict[str, int]:
        return {"used": 0, "limit": 0}


def _key(value: Hashable) -> str:
    # Ledgers are shared between processes as JSON: keys travel as their repr.
    return value if isinstance(value, str) else repr(value)


# --- one limiter per IB endpoint per process --------------------------------------------------
_shared: dict[Hashable, PacingLimiter] = {}
_shared_lock = threading.Lock()
_shared_pid = os.getpid()


def shared_limiter(
    key: Hashable,
    rules: PacingRules | None = None,
    *,
    ledger: Callable[[], PacingLedger] | None = None,
    clock: Callable[[], float] = time.time,
) -> PacingLimiter:
    """The process-wide limiter for `key` (an IB endpoint, `(host, port)`), created on first use.

    Every load in the process that talks to that endpoint gets this same object; `ledger` makes
    the ledger it keeps its history in (default: memory), so other processes share it too. When
    the configured rules differ from the limiter's (settings changed), the rules are replaced and
    the history is kept; a ledger at another location replaces the limiter.
    """
    global _shared_pid
    rules = rules or PacingRules()
    with _shared_lock:
        if _shared_pid != os.getpid():  # a forked child starts with its own limiters
            _shared.clear()
            _shared_pid = os.getpid()
        limiter = _shared.get(key)
        made = ledger() if ledger is not None else None
        if limiter is None or (made is not None and made.location != limiter.ledger.location):
            limiter = _shared[key] = PacingLimiter(rules, ledger=made, clock=clock)
        elif limiter.rules != rules:
            with limiter._lock:
                limiter.rules = rules
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests)."""
    with _shared_lock:
        _shared.clear()
