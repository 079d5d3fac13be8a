"""Model artifacts: one file holding state dict, resolved config, feature spec and metadata.

One file (not a folder) so a model has one sha256, one download and one atomic rename. It is a
`torch.save` of plain dicts, lists, strings, numbers and tensors only, so it loads with
`torch.load(..., weights_only=True)` — a model file from anywhere cannot run code on load.

Writes are atomic: a temporary file in the same directory, flushed and fsynced, then
`os.replace`. A crash or a cancel leaves either no file or a complete one, never half a model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from operations.files import disk_error_message, follow_umask, free_bytes
from training.errors import ModelStorageError

ARTIFACT_FORMAT = "ktrdr-model/1"
ARTIFACT_SUFFIX = ".pt"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(state_dict: dict[str, Any]) -> str:
    """A digest of the weights alone: equal for equal weights, whatever the file's metadata.

    Tensors in name order; for each its name, dtype, shape and raw bytes (C-contiguous, on the
    CPU), each field length-prefixed so no two different state dicts hash alike."""
    import torch

    digest = hashlib.sha256()

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        put(name.encode())
        put(str(tensor.dtype).encode())
        put(",".join(str(d) for d in tensor.shape).encode())
        # Through a byte view: dtypes NumPy lacks (bfloat16) hash the same way.
        put(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_artifact(path: Path, bundle: dict[str, Any]) -> tuple[str, int]:
    """Write `bundle` atomically to `path`; returns (sha256, size in bytes).

    A write that fails (disk full, read-only) raises `ModelStorageError` naming the path and the
    cause, and leaves nothing behind."""
    import torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ModelStorageError(disk_error_message("save the model to", path, exc)) from exc
    tmp = Path(tmp_name)
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": ARTIFACT_FORMAT, **bundle}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelStorageError(disk_error_message("save the model to", path, exc)) from exc
    except RuntimeError as exc:
        # torch's zip writer reports a failed write as "[enforce fail at inline_container.cc…]".
        tmp.unlink(missing_ok=True)
        free = free_bytes(path.parent)
        room = f"; {free / 1e6:.1f} MB free there" if free is not None else ""
        raise ModelStorageError(
            f"could not save the model to {path}: the write failed (the disk may be full{room})"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, size


def check_room_for_models(models_dir: Path, min_free_bytes: int) -> None:
    """Before a run starts: the models folder can be written and has room (`ModelStorageError`
    naming the folder, the free space and the setting otherwise)."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=models_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ModelStorageError(disk_error_message("write models in", models_dir, exc)) from exc
    free = free_bytes(models_dir)
    if free is not None and free < min_free_bytes:
        raise ModelStorageError(
            f"{models_dir} has {free / 1e6:.1f} MB free; a training run needs at least "
            f"{min_free_bytes / 1e6:.1f} MB there (KTRDR_TRAINING_MIN_FREE_MB)"
        )


def load_artifact(path: Path, *, expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a model file with `weights_only=True`, checking its sha256 first when given."""
    import torch

    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ValueError(
                f"model file {path.name} is corrupt: sha256 {actual} != recorded {expected_sha256}"
            )
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(bundle, dict) or bundle.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"{path.name} is not a {ARTIFACT_FORMAT} model file")
    return bundle
