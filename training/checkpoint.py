"""Training checkpoints: everything a run needs to go on from an epoch boundary, bit for bit.

A checkpoint folder (`KTRDR_CHECKPOINTS_DIR/<operation id>/` here, the run's artifacts folder on
an agent) holds one `checkpoint-eNNNNNN.pt` and its record `checkpoint.json` (`format`, `file`,
`sha256`, `size`, `epoch`, `metrics_seq`, `saved_at`). Both are written atomically (temporary
file, fsync, `os.replace`), the file first and the record after it, so the record always names a
complete file whose sha256 it states; older files are removed once the new record is in place.
A crash at any point leaves the previous checkpoint or the new one, never half of one.

The file is a `torch.save` of plain dicts, lists, numbers, strings and tensors only (RNG states
included: torch's as byte tensors, NumPy's and Python's as int64 tensors), so it loads with
`torch.load(..., weights_only=True)`: a checkpoint cannot run code on load
(`docs/architecture.md` §15). No Django imports; torch is imported inside the functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from operations.files import fsync_dir, write_atomic

CHECKPOINT_FORMAT = "ktrdr-checkpoint/1"
RECORD_NAME = "checkpoint.json"
FILE_PREFIX = "checkpoint-e"


class CheckpointError(Exception):
    """No usable checkpoint (none written, an unreadable record, another run's state)."""


class CheckpointCorrupted(CheckpointError):
    """The checkpoint file does not have the sha256 its record states."""


@dataclass
class CheckpointPolicy:
    """When to write one: every `every_epochs` epochs or once `every_seconds` have passed since
    the last one (by `clock`, the executor's clock), whichever comes first; 0 turns a trigger off.
    """

    every_epochs: int = 10
    every_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, repr=False)

    def start(self) -> None:
        self._last = self.clock()

    def due(self, epoch: int) -> bool:
        if self.every_epochs > 0 and epoch % self.every_epochs == 0:
            return True
        if self.every_seconds > 0:
            last = self._last if self._last is not None else self.clock()
            return self.clock() - last >= self.every_seconds
        return False

    def saved(self) -> None:
        self._last = self.clock()


def _sha256(data_path: Path) -> str:
    digest = hashlib.sha256()
    with open(data_path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def rng_states() -> dict[str, Any]:
    """The process-wide RNGs (torch's default generator, NumPy's legacy one, Python's), as
    tensors and plain numbers (`weights_only` loads them)."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(list(internal), dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


def checkpoint_record(directory: Path) -> dict[str, Any] | None:
    """The record of the folder's checkpoint, or None when there is none."""
    path = Path(directory) / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint record {path} cannot be read: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} record")
    return record


def save_checkpoint(
    directory: Path, state: dict[str, Any], *, epoch: int, metrics_seq: int
) -> dict[str, Any]:
    """Write `state` as the folder's checkpoint; returns its record."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{FILE_PREFIX}{epoch:06d}.pt"
    path = directory / name
    write_atomic(path, lambda fh: torch.save({"format": CHECKPOINT_FORMAT, **state}, fh))
    record = {
        "format": CHECKPOINT_FORMAT,
        "file": name,
        "sha256": _sha256(path),
        "size": path.stat().st_size,
        "epoch": int(epoch),
        "metrics_seq": int(metrics_seq),
        "saved_at": time.time(),
    }
    write_atomic(directory / RECORD_NAME, json.dumps(record).encode())
    fsync_dir(directory)
    # The record names the new file now: older ones are no longer anybody's checkpoint.
    for old in directory.glob(f"{FILE_PREFIX}*.pt"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return record


def checkpoint_path(directory: Path, record: dict[str, Any]) -> Path:
    name = str(record.get("file") or "")
    if not name.startswith(FILE_PREFIX) or "/" in name or name != Path(name).name:
        raise CheckpointError(f"checkpoint record in {directory} names no checkpoint file")
    return Path(directory) / name


def verify_checkpoint(directory: Path) -> dict[str, Any]:
    """The folder's record, once its file is there with the sha256 the record states.

    `CheckpointError` when there is none; `CheckpointCorrupted` naming the file otherwise."""
    record = checkpoint_record(directory)
    if record is None:
        raise CheckpointError(f"no checkpoint in {directory}")
    path = checkpoint_path(directory, record)
    try:
        actual = _sha256(path)
    except FileNotFoundError:
        raise CheckpointCorrupted(
            f"checkpoint corrupted: {path.name} is missing (its record says sha256 "
            f"{record.get('sha256')})"
        ) from None
    if actual != record.get("sha256"):
        raise CheckpointCorrupted(
            f"checkpoint corrupted: sha256 mismatch for {path.name} "
            f"(recorded {record.get('sha256')}, the file has {actual})"
        )
    return record


def read_checkpoint_bytes(directory: Path) -> tuple[dict[str, Any], bytes]:
    """The verified record and the file's bytes (what travels to an agent)."""
    record = verify_checkpoint(directory)
    data = checkpoint_path(directory, record).read_bytes()
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise CheckpointCorrupted(
            f"checkpoint corrupted: sha256 mismatch for {record['file']} while reading it"
        )
    return record, data


def load_checkpoint_bytes(data: bytes, *, expected_sha256: str, name: str) -> dict[str, Any]:
    """The state of a checkpoint file's bytes, checked against `expected_sha256` first."""
    import torch

    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise CheckpointCorrupted(
            f"checkpoint corrupted: sha256 mismatch for {name} "
            f"(expected {expected_sha256}, got {actual})"
        )
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{name} is not a {CHECKPOINT_FORMAT} file")
    return state


def remove_checkpoints(directory: Path) -> None:
    """Remove the folder and its checkpoint (a completed run, a pruned operation)."""
    shutil.rmtree(directory, ignore_errors=True)
