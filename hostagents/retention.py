"""What host agents hold for an operation, for `operations.retention` (`ops prune`).

On the backend: the artifacts fetched from agents (`Artifact` rows and their folder under the
data root's `artifacts/`). On an agent: the files a run left (the same), and the start key that
maps the backend's id to the operation (`AgentStart`). None of them keeps an operation: a model
registered from a fetched artifact says so itself (training's owner). Input blobs are shared by
content hash, not owned by an operation, and are not pruned here.
"""

from __future__ import annotations

from pathlib import Path

from hostagents.artifacts import artifacts_dir, artifacts_root
from hostagents.models import AgentStart, Artifact
from operations.retention import Holding, path_inside


class AgentArtifacts:
    name = "hostagents"

    def holdings(self, operation_ids: list[str]) -> dict[str, list[Holding]]:
        root = artifacts_root()
        out: dict[str, list[Holding]] = {}
        for artifact in Artifact.objects.filter(operation_id__in=operation_ids):
            path = Path(artifact.path)
            paths = (path,) if path_inside(path, root) else ()
            out.setdefault(artifact.operation_id, []).append(
                Holding(what=f"artifact {artifact.name}", paths=paths)
            )
        for operation_id in operation_ids:
            try:
                folder = artifacts_dir(operation_id)
            except ValueError:
                continue
            if folder.is_dir():
                out.setdefault(operation_id, []).append(
                    Holding(what="its artifacts folder", paths=(folder,))
                )
        return out

    def forget(self, operation_ids: list[str]) -> None:
        Artifact.objects.filter(operation_id__in=operation_ids).delete()
        AgentStart.objects.filter(operation_id__in=operation_ids).delete()


AGENT_ARTIFACTS = AgentArtifacts()
