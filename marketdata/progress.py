"""DataLoadingProgressBridge: the progress a data load leaves for readers to pull.

Percentage bands per step: preparing (connect, qualify, head timestamp, plan) 0-5 %, fetching 5-95 %
in proportion to finished segments, saving 95-100 %. The context carries symbol, timeframe, mode,
source, segment i/n, bars so far and, for IB loads only, the pacing budget used; one `segment`
metric per finished segment has the docs/architecture.md §10 shape. Plain Python (no Django):
segments take seconds, so these writers can afford a dict copy, and they never raise into the
loader.
"""

from __future__ import annotations

from typing import Any

from operations.bridge import ProgressBridge

PREPARE_BAND = (0.0, 5.0)
FETCH_BAND = (5.0, 95.0)
SAVE_BAND = (95.0, 100.0)


class DataLoadingProgressBridge(ProgressBridge):
    __slots__ = ("_base_context", "_ib")
    # The ETA comes from finished segments (`LoadState.eta`), never from the time spent
    # connecting and planning.
    eta_from_percentage = False

    def __init__(self, *, symbol: str = "", timeframe: str = "", mode: str = "", source: str = ""):
        super().__init__()
        self._base_context: dict[str, Any] = {
            "symbol": symbol,
            "timeframe": timeframe,
            "mode": mode,
            "source": source,
            "segment": 0,
            "segments_total": 0,
            "bars_so_far": 0,
        }
        # IB's pacing budget is IB's alone: other sources' contexts do not carry it.
        self._ib = str(source).lower() == "ib"
        if self._ib:
            self._base_context["pacing"] = {"used": 0, "limit": 0}

    @classmethod
    def for_load(cls, metadata: dict[str, Any]) -> DataLoadingProgressBridge:
        """The bridge of a load described by its (validated) metadata."""
        return cls(
            symbol=metadata["symbol"],
            timeframe=metadata["timeframe"],
            mode=metadata["mode"],
            source=metadata["source"],
        )

    def _context(self, **changes: Any) -> dict[str, Any]:
        if not self._ib:
            changes.pop("pacing", None)
        self._base_context = {**self._base_context, **changes}
        return self._base_context

    def on_prepare(self, message: str, fraction: float = 0.0) -> None:
        lo, hi = PREPARE_BAND
        self.update(
            percentage=lo + (hi - lo) * fraction,
            phase="preparing",
            message=message,
            context=self._context(),
        )

    def on_plan(self, segments_total: int, bars_expected: int) -> None:
        self.update(
            percentage=FETCH_BAND[0],
            phase="fetching" if segments_total else "analysing",
            message=f"{segments_total} segment(s) to fetch, ~{bars_expected} bars expected",
            steps_completed=0,
            steps_total=segments_total,
            items_processed=0,
            items_total=bars_expected,
            context=self._context(segments_total=segments_total),
        )

    def on_segment_start(
        self, index: int, total: int, *, start: str, end: str, pacing: dict, eta: float | None
    ) -> None:
        self.update(
            phase="fetching",
            message=f"segment {index + 1}/{total}: {start} → {end}",
            context=self._context(segment=index + 1, pacing=pacing),
            eta_seconds=eta,
        )

    def on_pacing_wait(self, until_hhmmss: str, eta: float | None, pacing: dict) -> None:
        """A visible phase: the load is waiting for IB's pacing window, not stuck."""
        self.update(
            phase="waiting for IB pacing window",
            message=f"waiting for IB pacing window until {until_hhmmss}",
            context=self._context(pacing=pacing, pacing_wait_until=until_hhmmss),
            eta_seconds=eta,
        )

    def on_retry(self, message: str, eta: float | None) -> None:
        self.update(phase="retrying", message=message, eta_seconds=eta)

    def on_segment(
        self,
        record: dict[str, Any],
        *,
        done: int,
        total: int,
        bars_so_far: int,
        pacing: dict,
        eta: float | None,
    ) -> None:
        """One finished segment: its metric record, then the new progress state."""
        self.append_metric("segment", record)
        lo, hi = FETCH_BAND
        self.update(
            percentage=lo + (hi - lo) * (done / total if total else 1.0),
            phase="fetching",
            message=(f"segment {done}/{total} {record['status']}: {record['bars_received']} bars"),
            steps_completed=done,
            items_processed=bars_so_far,
            context=self._context(
                segment=done, bars_so_far=bars_so_far, pacing=pacing, pacing_wait_until=None
            ),
            eta_seconds=eta,
        )

    def on_saving(self, bars: int) -> None:
        self.update(
            percentage=SAVE_BAND[0], phase="saving", message=f"merging {bars} bars into the store"
        )

    def on_saved(self, total: int) -> None:
        self.update(message=f"saved; the series has {total} bars", context=self._context())
