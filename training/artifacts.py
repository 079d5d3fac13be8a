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

ARTIFACT_FORMAT = "ktrdr-model/1"
ARTIFACT_SUFFIX = ".pt"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(path: Path, bundle: dict[str, Any]) -> tuple[str, int]:
    """Write `bundle` atomically to `path`; returns (sha256, size in bytes)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": ARTIFACT_FORMAT, **bundle}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, size


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
