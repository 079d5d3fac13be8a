"""How an agent turns a start its backend POSTed into local work (`docs/architecture.md` §6).

An agent runs exactly the same worker functions as local execution on the backend — same code,
other place. The start names a registered operation kind (`operations.kinds`); its content-
addressed inputs are stored in the agent's blob cache and handed to the kind's `prepare`, and the
files the work leaves in its artifacts folder become the artifacts the backend fetches.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from hostagents.artifacts import artifacts_dir, register_artifacts
from hostagents.blobs import BlobError, blob_has, blob_put_b64, blob_read
from operations.exceptions import Conflict, InvalidInput
from operations.kinds import Inputs
from operations.local import Work, WorkContext

logger = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,119}$")
MAX_INPUTS = 200


def with_artifacts(work: Work) -> Work:
    """Give the worker an artifacts folder and put the manifest of what it left there into the
    result summary (registered before the operation is marked completed, so a backend that sees
    `completed` can always fetch them)."""

    def run(ctx: WorkContext) -> dict[str, Any]:
        directory = artifacts_dir(ctx.operation_id)
        directory.mkdir(parents=True, exist_ok=True)
        ctx.artifacts_dir = directory
        result = dict(work(ctx) or {})
        manifest = register_artifacts(ctx.operation_id, directory)
        if manifest:
            result["artifacts"] = manifest
        return result

    run.__name__ = getattr(work, "__name__", "work")
    return run


def receive_inputs(raw: Any) -> Inputs:
    """Store the inputs sent with a start (those with data) and index them all by key.

    Every input must be in the cache afterwards; one that was announced without data and is not
    there is a 409 listing the missing hashes, and the backend resends with data.
    """
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidInput("inputs must be a list", field="inputs")
    if len(raw) > MAX_INPUTS:
        raise InvalidInput(f"at most {MAX_INPUTS} inputs per start", field="inputs")
    index: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidInput("each input must be an object", field="inputs")
        key, sha = item.get("key"), item.get("sha256")
        if not (isinstance(key, str) and KEY_RE.match(key)):
            raise InvalidInput("each input needs a key (letters, digits, _.:=/-)", field="inputs")
        if not (isinstance(sha, str) and SHA_RE.match(sha)):
            raise InvalidInput(f"input {key}: bad sha256", field="inputs")
        if key in index:
            raise InvalidInput(f"input {key} is listed twice", field="inputs")
        if item.get("data") is not None:
            try:
                blob_put_b64(sha, str(item["data"]))
            except BlobError as exc:
                raise InvalidInput(f"input {key}: {exc}", field="inputs") from None
        index[key] = sha
    missing = sorted({sha for sha in index.values() if not blob_has(sha)})
    if missing:
        raise Conflict(
            f"{len(missing)} input blobs are not in this agent's cache; send them with data",
            details={"missing": missing},
        )
    return Inputs(index, blob_read)
