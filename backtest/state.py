"""A backtest's engine state at a chunk boundary, so a cancelled or failed run resumes there.

What the strategy simulation has computed for bars 0…k-1 (per-bar gross and net returns, costs,
turnover and equity) is all the next chunk depends on besides the inputs, which a resume reads
again (same model, same bars, so the same signals and sizes). The folder (`KTRDR_CHECKPOINTS_DIR
/<operation id>` here, the run's artifacts folder's resume/ on an agent) holds
`engine-state.npz` (NumPy arrays, read with `allow_pickle=False`: no code on load) and its record
`engine-state.json` (`format`, `file`, `sha256`, `size`, `bars_done`, `bars_total`, `chunk_bars`,
`metrics_seq`), both written atomically (temporary file, fsync, `os.replace`), the file first.
No Django imports.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from backtest.engine import Simulation
from operations.files import write_atomic

STATE_FORMAT = "ktrdr-backtest-state/1"
STATE_FILE = "engine-state.npz"
STATE_RECORD = "engine-state.json"
ARRAYS = ("gross", "cost", "net", "equity", "traded")


class EngineStateError(Exception):
    """No usable engine state; `corrupted` when the file does not have its recorded sha256."""

    def __init__(self, message: str, *, corrupted: bool = False) -> None:
        super().__init__(message)
        self.corrupted = corrupted


def save_engine_state(
    folder: Path, sim: Simulation, *, chunk_bars: int, metrics_seq: int
) -> dict[str, Any]:
    """Write the simulation's state of the bars it has done; returns the record."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k = sim.done
    buffer = io.BytesIO()
    np.savez(buffer, **{name: getattr(sim, name)[:k] for name in ARRAYS})
    data = buffer.getvalue()
    write_atomic(folder / STATE_FILE, data)
    record = {
        "format": STATE_FORMAT,
        "file": STATE_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "bars_done": int(k),
        "bars_total": int(sim.n),
        "chunk_bars": int(chunk_bars),
        "metrics_seq": int(metrics_seq),
        "first_bar": sim.index[0].isoformat() if sim.n else None,
    }
    write_atomic(folder / STATE_RECORD, json.dumps(record).encode())
    return record


def engine_state_record(folder: Path) -> dict[str, Any] | None:
    """The folder's record once its file has the sha256 it states; None when there is none."""
    path = Path(folder) / STATE_RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EngineStateError(f"engine state record {path} cannot be read: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
        raise EngineStateError(f"{path} is not a {STATE_FORMAT} record")
    try:
        data = (Path(folder) / STATE_FILE).read_bytes()
    except FileNotFoundError:
        raise EngineStateError(
            f"checkpoint corrupted: {STATE_FILE} is missing", corrupted=True
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.get("sha256"):
        raise EngineStateError(
            f"checkpoint corrupted: sha256 mismatch for {STATE_FILE} (recorded "
            f"{record.get('sha256')}, the file has {actual})",
            corrupted=True,
        )
    return record


def restore_engine_state(sim: Simulation, data: bytes, resume: dict[str, Any]) -> None:
    """Put the saved bars' state into `sim` (built anew from the same inputs), checked first:
    the bytes against the sha256 the resume names, the shape against this run's."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != resume.get("sha256"):
        raise EngineStateError(
            f"checkpoint corrupted: sha256 mismatch for {STATE_FILE} (expected "
            f"{resume.get('sha256')}, got {actual})",
            corrupted=True,
        )
    k = int(resume["bars_done"])
    if int(resume.get("bars_total", -1)) != sim.n or not 0 < k <= sim.n:
        raise EngineStateError(
            f"the saved state covers {k} of {resume.get('bars_total')} bars; this run has {sim.n}"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for name in ARRAYS:
            values = arrays[name]
            if values.shape != (k,):
                raise EngineStateError(f"the saved {name} holds {values.shape}, not {k} bars")
            getattr(sim, name)[:k] = values
    sim.done = k
