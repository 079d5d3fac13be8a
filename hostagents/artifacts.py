"""Artifact files of operations: where they live, how they are hashed and recorded.

On an agent a run writes its files into `artifacts_dir(operation_id)`; when the work returns,
`register_artifacts` hashes each one and records it, and the manifest (name, size, sha256) goes
into the result summary — that is what the backend fetches and verifies. On the backend the same
table records files after they were fetched and verified.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from hostagents.models import Artifact
from operations.kinds import RESUME_FOLDER

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_OP_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,96}$")


def artifacts_root() -> Path:
    return Path(settings.DATA_ROOT) / "artifacts"


def artifacts_dir(operation_id: str) -> Path:
    if not _OP_ID_RE.match(operation_id):
        raise ValueError(f"not an operation id: {operation_id!r}")
    return artifacts_root() / operation_id


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@transaction.atomic
def register_artifacts(operation_id: str, directory: Path) -> list[dict[str, Any]]:
    """Record every regular file directly in `directory`; returns the manifest."""
    manifest: list[dict[str, Any]] = []
    if not directory.is_dir():
        return manifest
    for path in sorted(directory.iterdir()):
        # Only finished, plainly named files: temporaries (".x.part") and folders are skipped.
        if not path.is_file() or path.is_symlink() or not NAME_RE.match(path.name):
            continue
        size = path.stat().st_size
        sha = sha256_file(path)
        Artifact.objects.update_or_create(
            operation_id=operation_id,
            name=path.name,
            defaults={"path": str(path), "size": size, "sha256": sha},
        )
        manifest.append({"name": path.name, "size": size, "sha256": sha})
    return manifest


def artifact_record(
    *, operation_id: str, name: str, path: Path, size: int, sha256: str
) -> Artifact:
    artifact, _ = Artifact.objects.update_or_create(
        operation_id=operation_id,
        name=name,
        defaults={"path": str(path), "size": size, "sha256": sha256},
    )
    return artifact


def artifact_get(*, operation_id: str, name: str) -> Artifact | None:
    return Artifact.objects.filter(operation_id=operation_id, name=name).first()


def artifacts_of(operation_id: str) -> list[Artifact]:
    return list(Artifact.objects.filter(operation_id=operation_id).order_by("name"))


def resume_files(operation_id: str) -> list[dict[str, Any]]:
    """The files a run left for its resume (`operations.kinds.RESUME_FOLDER` of its artifacts
    folder): name, size and sha256 of each, hashed now (a killed run registered nothing)."""
    folder = artifacts_dir(operation_id) / RESUME_FOLDER
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink() or not NAME_RE.match(path.name):
            continue
        files.append({"name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)})
    return files


def resume_file_path(operation_id: str, name: str) -> Path | None:
    if not NAME_RE.match(name):
        return None
    path = artifacts_dir(operation_id) / RESUME_FOLDER / name
    return path if path.is_file() and not path.is_symlink() else None
