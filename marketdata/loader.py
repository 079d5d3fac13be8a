"""The data-load worker: `run_data_load(ctx)` does a whole load from `ctx.metadata` alone.

Parameters are JSON-able (symbol, timeframe, ISO start/end, mode, source), so the same function
can run in a host agent. Steps: open the gateway (where the connection lives is decided by
`open_gateway`, one small function), qualify the contract, read the head timestamp, plan the
fetch ranges for the mode and cut them into IB-sized segments, then fetch segment by segment:

* cancellation is checked before every segment and during every wait (pacing, backoff);
* each request first passes the PacingLimiter — one per IB endpoint per process, shared by every
  load in it (IB paces per session, not per load); a wait is shown as its own phase with the time
  it ends, and feeds the ETA;
* a retryable failure is retried with exponential backoff (after a reconnect for a lost
  connection, after IB's pause for a pacing violation); a segment that still fails is reported
  and the load goes on; a fatal error (unknown symbol, no permission) ends the load;
* fetched bars are merge-saved every few segments and at the end, and before the load stops for
  a cancel or an error, so nothing fetched is lost.

IB loads in one process share one long-lived connection per endpoint
(`marketdata.gateways.ib.shared_connection`); each load gets its own thin `IBGateway` on it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings

from marketdata import store
from marketdata.bars import concat_bars, empty_bars
from marketdata.calendar import expected_bar_times
from marketdata.conf import md_setting
from marketdata.gaps import analyze_gaps
from marketdata.gateways.base import (
    BarGateway,
    ConnectionLost,
    GatewayError,
    InvalidRequest,
    NoData,
    PacingViolation,
    RequestCancelled,
    TransientError,
)
from marketdata.gateways.ib import IBGateway, shared_connection
from marketdata.gateways.synthetic import SyntheticGateway
from marketdata.metrics import IB_PACING_WAIT_SECONDS, IB_PACING_WAITS
from marketdata.pacing import (
    FileLedger,
    PacingBudgetUnavailable,
    PacingLedger,
    PacingLimiter,
    PacingRules,
    PacingTicket,
    RedisLedger,
    UnlimitedPacing,
    shared_limiter,
)
from marketdata.planner import Segment, fetch_ranges, index_from_runs, plan_segments
from marketdata.progress import DataLoadingProgressBridge
from marketdata.symbols import SymbolSpec, parse_symbol
from marketdata.timeframes import Timeframe, get_timeframe
from operations.cancellation import OperationCancelled
from operations.conf import ktrdr_setting
from operations.local import WorkContext

logger = logging.getLogger(__name__)

OPERATION_TYPE = "data_load"
# Loads overwrite stored bars that the source now answers differently (docs/marketdata.md).
LOAD_ON_CONFLICT = "replace"


class DataLoadError(RuntimeError):
    """The load cannot go on (unknown symbol, no permission, range before the head timestamp)."""


class IBNotConfigured(DataLoadError):
    pass


def ib_location() -> dict[str, Any] | None:
    """Where this process reaches IB: host/port/client id from its settings, or None.

    The one place that decides it. The backend uses KTRDR_IB_HOST/PORT; an `ib` host agent runs
    this same worker with its own settings, so routing IB loads to an agent later changes the
    *caller*, not this function.
    """
    host = str(ktrdr_setting("IB_HOST") or "").strip()
    if not host:
        return None
    return {
        "host": host,
        "port": int(ktrdr_setting("IB_PORT")),
        "client_id": int(ktrdr_setting("IB_CLIENT_ID")),
    }


def open_gateway(source: str) -> BarGateway:
    """The gateway for `source` in this process (for "ib": a view of the process's one
    connection to the configured endpoint, which opens on first use)."""
    if source == "synthetic":
        return SyntheticGateway(seed=int(md_setting("SYNTHETIC_SEED")))
    if source == "ib":
        location = ib_location()
        if location is None:
            raise IBNotConfigured(
                "this process has no IB connection configured (KTRDR_IB_HOST is empty)"
            )
        # One connection (one client id) per endpoint, shared by every load in the process;
        # 326 handling covers a clash with another process.
        connect_timeout = float(md_setting("IB_CONNECT_TIMEOUT"))
        connection = shared_connection(
            location["host"],
            location["port"],
            location["client_id"],
            connect_timeout=connect_timeout,
        )
        return IBGateway(
            host=location["host"],
            port=location["port"],
            client_id=location["client_id"],
            request_timeout=float(md_setting("IB_REQUEST_TIMEOUT")),
            connect_timeout=connect_timeout,
            connection=connection,
        )
    raise DataLoadError(f"unknown source {source!r}")


def pacing_ledger(key: tuple[str, int]) -> PacingLedger:
    """Where the pacing history of IB endpoint `key` lives, shared by every process that uses
    it: a lock-guarded file in `KTRDR_IB_PACING_DIR` when that is set (one folder for the backend
    and the IB agents of one host: agents keep their own home and no Redis), else Redis when
    REDIS_URL is set, else a file under the data home (`KTRDR_HOME/ib-pacing/HOST_PORT.json`)."""
    host, port = key
    name = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in f"{host}_{port}")
    folder = str(md_setting("IB_PACING_DIR") or "")
    if folder:
        return FileLedger(Path(folder) / f"{name}.json")
    redis_url = str(getattr(settings, "REDIS_URL", "") or "")
    if redis_url:
        return RedisLedger(redis_url, f"ktrdr:ib-pacing:{host}:{port}")
    return FileLedger(Path(settings.DATA_ROOT) / "ib-pacing" / f"{name}.json")


def _pacing_for(gateway: BarGateway) -> PacingLimiter:
    """The limiter a load's requests pass: the process-wide one for the gateway's endpoint
    (`pacing_key`), its history in the endpoint's shared ledger, so concurrent loads — of this
    process and of the others on that endpoint — share IB's budget; a private one for a gateway
    without a key."""
    rules = md_setting("IB_PACING")
    if not gateway.needs_pacing or rules is False:
        return UnlimitedPacing()
    parsed = PacingRules.from_mapping(rules or None)
    key = getattr(gateway, "pacing_key", None)
    if key is None:
        return PacingLimiter(parsed)
    return shared_limiter(key, parsed, ledger=lambda: pacing_ledger(key))


def ib_pacing_budget() -> tuple[str, int, int] | None:
    """("host:port", requests in the current window, its limit) of this process's IB endpoint
    (`KTRDR_IB_HOST`), from its shared ledger; None without one or with pacing off. For the
    metrics (`marketdata.metrics.IBPacingCollector`)."""
    host = str(ktrdr_setting("IB_HOST") or "")
    rules = md_setting("IB_PACING")
    if not host or rules is False:
        return None
    key = (host, int(ktrdr_setting("IB_PORT")))
    limiter = shared_limiter(
        key, PacingRules.from_mapping(rules or None), ledger=lambda: pacing_ledger(key)
    )
    budget = limiter.budget()
    return f"{host}:{key[1]}", int(budget["used"]), int(budget["limit"])


def _budget(limiter: PacingLimiter) -> dict[str, int]:
    """The pacing budget for the progress context; nothing when the shared ledger is away."""
    try:
        return limiter.budget()
    except PacingBudgetUnavailable:
        return {}


def _ts(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass
class LoadState:
    """What the load has done so far: the base of the summary and of partial results."""

    started: float = field(default_factory=time.monotonic)
    segments: list[dict[str, Any]] = field(default_factory=list)
    pending: list[pd.DataFrame] = field(default_factory=list)
    bars_received: int = 0
    bars_saved: int = 0
    bars_added: int = 0
    bars_replaced: int = 0
    bars_unchanged: int = 0
    # Bars merged into a series that held other sources (the summary's warning).
    mixed_sources: list[str] = field(default_factory=list)
    mixed_added: int = 0
    mixed_replaced: int = 0
    no_data_ranges: list[dict[str, str]] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pacing_wait_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    segment_seconds: list[float] = field(default_factory=list)
    fetched: list[pd.DatetimeIndex] = field(default_factory=list)

    def eta(self, remaining: int, extra_wait: float = 0.0) -> float | None:
        if not self.segment_seconds:
            return round(extra_wait, 1) if extra_wait else None
        avg = sum(self.segment_seconds) / len(self.segment_seconds)
        return round(avg * remaining + extra_wait, 1)


class DataLoader:
    """One load. Built from metadata; `run()` returns the result summary."""

    def __init__(self, ctx: WorkContext) -> None:
        meta = ctx.metadata
        self.ctx = ctx
        self.bridge = ctx.bridge
        self.spec: SymbolSpec = parse_symbol(meta["symbol"])
        self.tf: Timeframe = get_timeframe(meta["timeframe"])
        self.mode: str = meta.get("mode", "tail")
        self.source: str = meta.get("source", "synthetic")
        self.start = _ts(meta["start"])
        self.end = _ts(meta["end"])
        self.state = LoadState()
        self.contract: dict[str, Any] = {}
        self.max_attempts = max(int(md_setting("DATA_LOAD_MAX_ATTEMPTS")), 1)
        self.backoff = float(md_setting("DATA_LOAD_RETRY_BACKOFF"))
        self.max_backoff = float(md_setting("DATA_LOAD_MAX_BACKOFF"))
        self.pacing_backoff = float(md_setting("IB_PACING_BACKOFF"))
        self.save_every = max(int(md_setting("DATA_LOAD_SAVE_EVERY")), 1)
        # On an agent: what the backend's store already holds (planner.coverage_runs); the
        # load plans against that instead of this process's own store.
        self.planned_against = meta.get("stored_ranges")

    def fetched_index(self) -> pd.DatetimeIndex:
        """The timestamps of every bar this load fetched (what an agent sends back)."""
        if not self.state.fetched:
            return pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
        return self.state.fetched[0].append(self.state.fetched[1:]).unique().sort_values()

    # --- helpers -------------------------------------------------------------------------------
    def _progress(self, message: str, fraction: float) -> None:
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_prepare(message, fraction)
        else:
            self.bridge.update(message=message)

    def _flush(self) -> None:
        """Merge-save what was fetched since the last save (never raises over a failed save
        of zero bars)."""
        if not self.state.pending:
            return
        frame = concat_bars(self.state.pending)
        self.state.pending = []
        # Loads replace: fetching a range again overwrites a stored bar only where the source
        # now answers differently (IB corrected it); equal bars count as unchanged.
        result = store.write_bars(
            self.spec.symbol,
            self.tf.name,
            frame,
            source=self.source,
            contract=self.contract,
            on_conflict=LOAD_ON_CONFLICT,
        )
        self.state.bars_saved += result.bars_written
        self.state.bars_added += result.bars_added
        self.state.bars_replaced += result.bars_replaced
        self.state.bars_unchanged += result.bars_unchanged
        if result.other_sources:
            self.state.mixed_sources = sorted({*self.state.mixed_sources, *result.other_sources})
            self.state.mixed_added += result.bars_added
            self.state.mixed_replaced += result.bars_replaced

    def _stop(self, stop_point: str) -> OperationCancelled:
        self._flush()
        partial = self.summary(status="cancelled")
        self.bridge.final_result = partial
        return OperationCancelled(stop_point, partial)

    def _wait(self, seconds: float, stop_point: str) -> None:
        """Sleep that a cancel cuts short (and then stops the load)."""
        if seconds > 0 and self.ctx.token.wait(seconds):
            raise self._stop(stop_point)

    # --- the load ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._progress(f"opening the {self.source} source", 0.0)
        gateway = open_gateway(self.source)
        self.gateway = gateway
        bind_cancel = getattr(gateway, "bind_cancel", None)
        if bind_cancel is not None:
            bind_cancel(self.ctx.token)
        try:
            return self._run(gateway)
        except RequestCancelled:
            if not self.ctx.token.is_cancelled:
                raise
            raise self._stop("waiting for IB") from None
        except GatewayError as exc:
            self._flush()
            self.bridge.final_result = self.summary(status="failed")
            raise DataLoadError(f"{self.spec.symbol} {self.tf.name}: {exc.message}") from exc
        except OperationCancelled:
            raise
        except BaseException:
            # Whatever went wrong, bars already fetched are worth keeping.
            try:
                self._flush()
            except Exception:
                logger.exception("saving fetched bars after a failure failed")
            self.bridge.final_result = self.summary(status="failed")
            raise
        finally:
            try:
                gateway.close()
            except Exception:
                logger.exception("closing the %s gateway failed", self.source)

    def _connect(self, gateway: BarGateway) -> None:
        for attempt in range(1, self.max_attempts + 1):
            self.ctx.token.raise_if_cancelled("connecting", self.summary(status="cancelled"))
            try:
                gateway.connect()
                return
            except ConnectionLost as exc:
                if attempt == self.max_attempts:
                    raise
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                self._progress(f"connect failed ({exc.message}); retrying in {wait:.0f} s", 0.1)
                self._wait(wait, "connecting")
            except RequestCancelled:
                if not self.ctx.token.is_cancelled:
                    raise
                raise self._stop("connecting") from None

    def _run(self, gateway: BarGateway) -> dict[str, Any]:
        if self.planned_against is not None:
            stored = index_from_runs(self.planned_against, self.tf)
            self.state.notes.append(f"planned against the backend's store ({len(stored)} bars)")
        else:
            stored = store.read_index(self.spec.symbol, self.tf.name)
        if self.mode == "local":
            return self._local_summary(stored)
        self._progress(f"connecting to the {self.source} source", 0.1)
        self._connect(gateway)
        self._progress(f"qualifying {self.spec.symbol}", 0.3)
        info = gateway.qualify(self.spec)
        self.contract = info.as_dict()
        self._progress("reading the head timestamp", 0.6)
        head = gateway.head_timestamp(self.spec, self.tf)
        start = self.start
        if head is not None:
            if self.end <= head:
                raise DataLoadError(
                    f"the requested range ends {self.end.isoformat()}, before the first data "
                    f"{self.source} has for {self.spec.symbol} ({head.isoformat()})"
                )
            if start < head:
                self.state.notes.append(
                    f"start moved from {start.isoformat()} to the head timestamp {head.isoformat()}"
                )
                start = head
        ranges = fetch_ranges(
            mode=self.mode,
            start=start,
            end=self.end,
            stored=stored,
            timeframe=self.tf,
            asset_class=self.spec.asset_class,
            head=head,
        )
        segments = plan_segments(ranges, self.tf, self.spec.asset_class, head=head)
        if not segments:
            self.state.notes.append(self._nothing_to_fetch(stored, start))
        self.gaps_before = self._unexpected(stored, start)
        expected = sum(s.expected_bars for s in segments)
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_plan(len(segments), expected)
        self._fetch_all(gateway, segments)
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_saving(sum(len(f) for f in self.state.pending))
        self._flush()
        if self.planned_against is not None:
            # What the backend will hold once it merged what we send back.
            final_index = stored.union(self.fetched_index())
        else:
            final_index = store.read_index(self.spec.symbol, self.tf.name)
        failed = [seg for seg in self.state.segments if seg["status"] == "failed"]
        if failed and not any(seg["status"] == "ok" for seg in self.state.segments):
            # Nothing came back and something went wrong: that is no completed load.
            summary = self.summary(status="failed", final_index=final_index, start=start)
            self.bridge.final_result = summary
            reasons = "; ".join(dict.fromkeys(seg["error"] or "no reason given" for seg in failed))
            raise DataLoadError(
                f"{self.spec.symbol} {self.tf.name}: nothing was loaded: {len(failed)} of "
                f"{len(self.state.segments)} segments failed ({reasons})"
            )
        summary = self.summary(status="completed", final_index=final_index, start=start)
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_saved(len(final_index))
        return summary

    def _nothing_to_fetch(self, stored: pd.DatetimeIndex, start: pd.Timestamp) -> str:
        """Why a load planned no request: its summary says so, "0 bars received" alone does not."""

        def at(stamp: pd.Timestamp) -> str:
            return f"{stamp:%Y-%m-%d %H:%M} UTC"

        closed = (
            f"the market has no {self.tf.name} bars to fetch between {at(start)} and {at(self.end)}"
        )
        if len(stored) == 0:
            return f"nothing to fetch: {closed}"
        last_needed = self.end - pd.Timedelta(self.tf.step)
        if self.mode == "tail" and stored[-1] >= last_needed:
            return (
                f"already up to date: the stored bars reach {at(stored[-1])}, the requested range "
                f"ends {at(self.end)} (--mode full fills holes inside it)"
            )
        if self.mode == "backfill" and stored[0] <= start:
            return (
                f"already complete: the stored bars start {at(stored[0])}, the requested range "
                f"starts {at(start)} (--mode full fills holes inside it)"
            )
        if self.mode == "full":
            return (
                f"already complete: every bar the market calendar expects between {at(start)} "
                f"and {at(self.end)} is stored"
            )
        return f"nothing to fetch beyond the stored bars: {closed}"

    def _fetch_all(self, gateway: BarGateway, segments: list[Segment]) -> None:
        limiter = _pacing_for(gateway)
        total = len(segments)
        contract_key = (self.spec.symbol, self.spec.what_to_show)
        since_save = 0
        for seg in segments:
            # Stop point before every segment: what was fetched so far is saved first.
            if self.ctx.token.is_cancelled:
                raise self._stop(f"before segment {seg.index + 1}/{total}")
            seg_started = time.monotonic()
            if isinstance(self.bridge, DataLoadingProgressBridge):
                self.bridge.on_segment_start(
                    seg.index,
                    total,
                    start=seg.start.isoformat(),
                    end=seg.end.isoformat(),
                    pacing=_budget(limiter),
                    eta=self.state.eta(total - seg.index),
                )
            bars, status, attempts, error = self._fetch_segment(
                gateway, limiter, seg, total, contract_key
            )
            duration = time.monotonic() - seg_started
            self.state.segment_seconds.append(duration)
            self.state.bars_received += len(bars)
            if len(bars):
                self.state.pending.append(bars)
                self.state.fetched.append(bars.index)
                since_save += 1
            record = {
                "symbol": self.spec.symbol,
                "timeframe": self.tf.name,
                "segment_index": seg.index,
                "segments_total": total,
                "start": seg.start.isoformat(),
                "end": seg.end.isoformat(),
                "bars_received": len(bars),
                "attempts": attempts,
                "duration_seconds": round(duration, 3),
                "status": status,
            }
            self.state.segments.append(
                {
                    **record,
                    "bars_expected": seg.expected_bars,
                    "error": error,
                    "adjacent": seg.adjacent,
                }
            )
            if isinstance(self.bridge, DataLoadingProgressBridge):
                self.bridge.on_segment(
                    record,
                    done=seg.index + 1,
                    total=total,
                    bars_so_far=self.state.bars_received,
                    pacing=_budget(limiter),
                    eta=self.state.eta(total - seg.index - 1),
                )
            if since_save >= self.save_every:
                self._flush()
                since_save = 0
        self.state.pacing_wait_seconds = round(self.state.pacing_wait_seconds, 3)

    def _fetch_segment(
        self,
        gateway: BarGateway,
        limiter: PacingLimiter,
        seg: Segment,
        total: int,
        contract_key: tuple,
    ) -> tuple[pd.DataFrame, str, int, str]:
        """(bars, status, attempts, last error) for one segment; fatal errors propagate."""
        stop_point = f"segment {seg.index + 1}/{total}"
        request_key = (contract_key, seg.start.value, seg.end.value, self.tf.name)
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                ticket = self._await_pacing(
                    limiter, contract_key, request_key, total - seg.index, stop_point
                )
                try:
                    bars = self._fetch(gateway, seg, ticket)
                finally:
                    # At once, not after a retry's backoff: others wait on an unsettled slot.
                    self._settle(ticket)
            except NoData as exc:
                self.state.no_data_ranges.append(
                    {
                        "start": seg.start.isoformat(),
                        "end": seg.end.isoformat(),
                        "reason": exc.message,
                    }
                )
                return empty_bars(), "no_data", attempt, ""
            except InvalidRequest as exc:
                self.state.failed.append(seg.index)
                return empty_bars(), "failed", attempt, exc.message
            except RequestCancelled:
                if not self.ctx.token.is_cancelled:
                    raise
                raise self._stop(stop_point) from None
            except GatewayError as exc:
                if not exc.retryable:
                    raise
                last_error = exc.message
                if attempt == self.max_attempts:
                    break
                if seg.index not in self.state.retried:
                    self.state.retried.append(seg.index)
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                if isinstance(exc, PacingViolation):
                    wait = max(wait, self.pacing_backoff)
                self._retry_wait(exc, wait, attempt, total - seg.index, stop_point)
                if isinstance(exc, ConnectionLost):
                    self._reconnect(gateway, stop_point)
                continue
            return bars, "ok", attempt, ""
        self.state.failed.append(seg.index)
        return empty_bars(), "failed", self.max_attempts, last_error

    def _retry_wait(
        self, exc: GatewayError, wait: float, attempt: int, remaining: int, stop_point: str
    ) -> None:
        message = (
            f"{stop_point}: {exc.message}; retry {attempt + 1}/{self.max_attempts} in {wait:.1f} s"
        )
        logger.warning("%s %s: %s", self.spec.symbol, self.tf.name, message)
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_retry(message, self.state.eta(remaining, wait))
        self._wait(wait, stop_point)

    def _reconnect(self, gateway: BarGateway, stop_point: str) -> None:
        reconnect = getattr(gateway, "reconnect", None)
        try:
            if reconnect is not None:
                reconnect()
            else:
                gateway.connect()
        except ConnectionLost as exc:
            # The next attempt will try again (and fail the segment if IB stays away).
            logger.warning("reconnect at %s failed: %s", stop_point, exc.message)

    def _fetch(self, gateway: BarGateway, seg: Segment, ticket: PacingTicket) -> pd.DataFrame:
        if getattr(gateway, "reports_send_time", False):
            # The gateway marks the send; a ticket it never marked was never sent.
            ticket.reports_send = True
            return gateway.fetch_bars(  # type: ignore[call-arg]
                self.spec, self.tf, seg.start, seg.end, pacing_ticket=ticket
            )
        # Without that, the end of the call is the stamp: the latest the request can have left.
        return gateway.fetch_bars(self.spec, self.tf, seg.start, seg.end)

    @staticmethod
    def _settle(ticket: PacingTicket) -> None:
        try:
            ticket.settle()
        except PacingBudgetUnavailable as exc:
            # The entry stays pending until its deadline: others only wait longer.
            logger.warning("settling an IB pacing slot failed: %s", exc)

    def _await_pacing(
        self,
        limiter: PacingLimiter,
        contract_key: tuple,
        request_key: tuple,
        remaining: int,
        stop_point: str,
    ) -> PacingTicket:
        """The slot for one request, after waiting (visibly, cancellably) for it. Check and take
        are one step on the endpoint's shared ledger, so loads sharing it — in this process or
        another — never both take the last slot of a window; the margin is in the rules."""
        while True:
            try:
                ticket, delay = limiter.try_reserve(contract_key, request_key)
            except PacingBudgetUnavailable as exc:
                raise TransientError(str(exc)) from exc
            if ticket is not None:
                return ticket
            until = datetime.now(UTC).timestamp() + delay
            hhmmss = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S")
            if isinstance(self.bridge, DataLoadingProgressBridge):
                self.bridge.on_pacing_wait(
                    hhmmss, self.state.eta(remaining, delay), _budget(limiter)
                )
            IB_PACING_WAITS.inc()
            IB_PACING_WAIT_SECONDS.inc(delay)
            self._wait(delay, f"{stop_point} (waiting for IB pacing window)")
            self.state.pacing_wait_seconds += delay
            limiter.add_waited(delay)

    # --- summaries -----------------------------------------------------------------------------
    def _unexpected(self, index: pd.DatetimeIndex, start: pd.Timestamp) -> int:
        inside = index[(index >= start) & (index < self.end)]
        return len(analyze_gaps(inside, self.tf, self.spec.asset_class).unexpected)

    def _local_summary(self, stored: pd.DatetimeIndex) -> dict[str, Any]:
        inside = stored[(stored >= self.start) & (stored < self.end)]
        report = analyze_gaps(inside, self.tf, self.spec.asset_class)
        expected = len(expected_bar_times(self.spec.asset_class, self.tf, self.start, self.end))
        if isinstance(self.bridge, DataLoadingProgressBridge):
            self.bridge.on_plan(0, 0)
        return {
            **self._base_summary("completed"),
            "bars_in_range": len(inside),
            "bars_expected_in_range": expected,
            "gaps": report.summary(),
            "notes": [
                f"--mode local fetches nothing: {len(inside)} bars stored between "
                f"{self.start:%Y-%m-%d %H:%M} UTC and {self.end:%Y-%m-%d %H:%M} UTC, where the "
                f"market calendar expects {expected}"
            ],
        }

    def _base_summary(self, status: str) -> dict[str, Any]:
        return {
            "symbol": self.spec.symbol,
            "timeframe": self.tf.name,
            "mode": self.mode,
            "source": self.source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": status,
            "duration_seconds": round(time.monotonic() - self.state.started, 3),
        }

    def _failed_ranges(self) -> list[dict[str, Any]]:
        """The ranges of failed segments (adjacent ones joined) with their errors: the gaps this
        load leaves, which a later `full` load over them fetches. Consecutive segments of one
        fetch range are adjacent even where closed time the plan skips lies between them."""
        ranges: list[dict[str, Any]] = []
        previous_failed = False
        for seg in self.state.segments:
            failed = seg["status"] == "failed"
            joins = previous_failed and (seg.get("adjacent") or ranges[-1]["end"] == seg["start"])
            previous_failed = failed
            if not failed:
                continue
            error = seg["error"] or "no reason given"
            last = ranges[-1] if ranges else None
            if last is not None and joins and last["error"] == error:
                last["end"] = seg["end"]
                last["segments"] += 1
            else:
                ranges.append(
                    {"start": seg["start"], "end": seg["end"], "error": error, "segments": 1}
                )
        return ranges

    def _outcome(self, status: str) -> str:
        if status == "completed" and self.state.failed:
            return "completed with gaps"
        return status

    def summary(
        self,
        *,
        status: str,
        final_index: pd.DatetimeIndex | None = None,
        start: pd.Timestamp | None = None,
    ) -> dict[str, Any]:
        s = self.state
        summary = {
            **self._base_summary(status),
            "contract": self.contract,
            "segments_total": len(s.segments),
            "segments": [
                {
                    k: seg[k]
                    for k in (
                        "segment_index",
                        "start",
                        "end",
                        "bars_expected",
                        "bars_received",
                        "attempts",
                        "status",
                        "error",
                    )
                }
                for seg in s.segments
            ],
            "bars_expected": sum(seg["bars_expected"] for seg in s.segments),
            "bars_received": s.bars_received,
            "bars_saved": s.bars_saved,
            "bars_added": s.bars_added,
            "bars_replaced": s.bars_replaced,
            "bars_unchanged": s.bars_unchanged,
            "warnings": [
                store.mixing_warning(s.mixed_sources, self.source, s.mixed_added, s.mixed_replaced)
            ]
            if s.mixed_sources
            else [],
            "no_data_ranges": s.no_data_ranges,
            "segments_retried": s.retried,
            "segments_failed": s.failed,
            "failed_ranges": self._failed_ranges(),
            "outcome": self._outcome(status),
            "pacing_wait_seconds": s.pacing_wait_seconds,
            "reconnects": int(getattr(getattr(self, "gateway", None), "reconnects", 0)),
            "notes": s.notes,
        }
        if final_index is not None and start is not None:
            after = self._unexpected(final_index, start)
            before = getattr(self, "gaps_before", 0)
            summary["gaps"] = {
                "unexpected_before": before,
                "unexpected_after": after,
                "filled": max(before - after, 0),
            }
            summary["series_bars"] = len(final_index)
        return summary


def run_data_load(ctx: WorkContext) -> dict[str, Any]:
    """Worker entry point for `data_load` operations (local thread or host agent)."""
    return DataLoader(ctx).run()
