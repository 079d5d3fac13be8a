"""The agent's content-addressed cache of work inputs (bars sent with a training start).

Inputs travel with the work because an agent may be on another machine (docs/architecture.md §6).
Each input blob is stored under its sha256; the backend asks which hashes are missing and uploads
only those, each as a raw request body (`PUT /api/v1/blobs/{sha256}`, `blob_put_stream`: read in
chunks to a temporary file, size-capped, hash-verified, renamed into place), so inputs of any size
a user can store never travel inside a JSON body, and bars the agent already has cost nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# One input blob at most (compressed bars: twelve years of 1-minute bars are well below it).
MAX_BLOB_BYTES = 4 * 1024**3
CHUNK_BYTES = 1 << 20


class BlobError(ValueError):
    """A blob that does not match its hash, is too big or is malformed."""


def blobs_root() -> Path:
    return Path(settings.DATA_ROOT) / "blobs"


def blob_path(sha256: str) -> Path:
    if not SHA_RE.match(sha256):
        raise BlobError(f"not a sha256: {sha256!r}")
    return blobs_root() / sha256[:2] / sha256


def blob_has(sha256: str) -> bool:
    try:
        return blob_path(sha256).is_file()
    except BlobError:
        return False


def blobs_missing(hashes: list[str]) -> list[str]:
    return [h for h in hashes if not blob_has(h)]


def blob_put(sha256: str, data: bytes) -> Path:
    """Store `data` under its hash after checking it; written atomically (tmp + rename)."""
    if len(data) > MAX_BLOB_BYTES:
        raise BlobError(f"blob {sha256[:12]} is {len(data)} bytes, over {MAX_BLOB_BYTES}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BlobError(f"blob content hashes to {actual[:12]}…, not the announced {sha256[:12]}…")
    path = blob_path(sha256)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{sha256}.{uuid.uuid4().hex[:8]}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def blob_put_stream(sha256: str, stream: BinaryIO, length: int) -> tuple[Path, bool]:
    """Store `length` bytes read from `stream` under `sha256`; returns (path, created).

    Read in chunks into a temporary file next to the blob (never whole in memory), checked
    against the announced size and the hash, and renamed into place only then: a broken or
    wrong upload leaves nothing behind.
    """
    path = blob_path(sha256)
    if length < 0:
        raise BlobError("the upload needs a Content-Length")
    if length > MAX_BLOB_BYTES:
        raise BlobError(f"blob {sha256[:12]} is {length} bytes, over {MAX_BLOB_BYTES}")
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{sha256}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    received = 0
    try:
        with open(tmp, "wb") as fh:
            while received < length:
                chunk = stream.read(min(CHUNK_BYTES, length - received))
                if not chunk:
                    break
                received += len(chunk)
                digest.update(chunk)
                fh.write(chunk)
        if received != length:
            raise BlobError(f"blob {sha256[:12]}: {received} of {length} bytes arrived")
        actual = digest.hexdigest()
        if actual != sha256:
            raise BlobError(
                f"blob content hashes to {actual[:12]}…, not the announced {sha256[:12]}…"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, True


def blob_put_b64(sha256: str, encoded: str) -> Path:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BlobError(f"blob {sha256[:12]}: data is not valid base64") from None
    return blob_put(sha256, data)


def blob_read(sha256: str) -> bytes:
    path = blob_path(sha256)
    if not path.is_file():
        raise BlobError(f"blob {sha256[:12]} is not in this agent's cache")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        path.unlink(missing_ok=True)  # a damaged cache entry is dropped; the backend resends
        raise BlobError(f"cached blob {sha256[:12]} was damaged and has been dropped")
    return data
