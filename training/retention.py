"""What training holds for an operation, for `operations.retention` (`ops prune`).

An operation that produced a model owns it: the `TrainedModel` row and its file under
`KTRDR_MODELS_DIR`. A model is still referenced — so it, and the operation that produced it
(its lineage: metrics, log), stay — when:

* it is marked `keep` (the admin's "keep" box), or
* it is the newest version of its strategy and base timeframe: the model in use, which a
  download or a prediction would take today.

Nothing else in this project points at a model yet; a kind that reads models (a backtest) would
add its references here.
"""

from __future__ import annotations

from pathlib import Path

from django.db.models import Max

from operations.retention import Holding, path_inside
from training.models import TrainedModel
from training.selectors import checkpoints_dir_for, checkpoints_root, models_dir


class TrainedModels:
    name = "training"

    def holdings(self, operation_ids: list[str]) -> dict[str, list[Holding]]:
        models = list(TrainedModel.objects.filter(operation_id__in=operation_ids))
        if not models:
            return {}
        latest = {
            (row["strategy_name"], row["timeframe"]): row["v"]
            for row in TrainedModel.objects.filter(
                strategy_name__in={m.strategy_name for m in models}
            )
            .values("strategy_name", "timeframe")
            .annotate(v=Max("version"))
        }
        root = models_dir()
        out: dict[str, list[Holding]] = {}
        for model in models:
            path = Path(model.artifact_path)
            if not path.is_absolute():
                path = root / path
            if model.keep:
                why = "is marked keep"
            elif latest.get((model.strategy_name, model.timeframe)) == model.version:
                why = f"is the latest version of {model.strategy_name} {model.timeframe}"
            else:
                why = ""
            # Only files inside the models folder are ever removed (a row is not trusted with
            # a path elsewhere).
            paths = (path,) if path_inside(path, root) else ()
            out.setdefault(model.operation_id, []).append(
                Holding(what=f"model {model.label} ({path.name})", paths=paths, keep_because=why)
            )
        return out

    def forget(self, operation_ids: list[str]) -> None:
        TrainedModel.objects.filter(operation_id__in=operation_ids).delete()


TRAINED_MODELS = TrainedModels()


class TrainingCheckpoints:
    """The checkpoint folder a failed or cancelled training left (a completed one removes its
    own): it goes with its operation. Only folders inside `KTRDR_CHECKPOINTS_DIR` are listed."""

    name = "training_checkpoints"

    def holdings(self, operation_ids: list[str]) -> dict[str, list[Holding]]:
        root = checkpoints_root()
        out: dict[str, list[Holding]] = {}
        for operation_id in operation_ids:
            folder = checkpoints_dir_for(operation_id)
            if folder.is_dir() and path_inside(folder, root):
                out[operation_id] = [Holding(what=f"checkpoint ({folder.name})", paths=(folder,))]
        return out

    def forget(self, operation_ids: list[str]) -> None:
        """No rows: the folder is removed from the holding's path after commit."""


TRAINING_CHECKPOINTS = TrainingCheckpoints()
