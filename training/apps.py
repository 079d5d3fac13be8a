from __future__ import annotations

import os
import sys

from django.apps import AppConfig

from operations.conf import ktrdr_setting
from operations.kinds import register_kind


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from operations.retention import register_owner
        from training.kinds import TRAINING
        from training.retention import TRAINED_MODELS, TRAINING_CHECKPOINTS
        from training.warmup import hosts_training, start_warmup

        register_kind(TRAINING)
        # `ops prune` deletes the models of the operations it deletes, unless still referenced.
        register_owner(TRAINED_MODELS)
        # …and the checkpoint a failed or cancelled run left.
        register_owner(TRAINING_CHECKPOINTS)
        # A process that trains imports torch now, in the background, instead of inside its
        # first run; the others never import it (training.warmup).
        if hosts_training(
            sys.argv,
            os.environ,
            local_execution=bool(ktrdr_setting("LOCAL_EXECUTION")),
            role=str(ktrdr_setting("ROLE", "backend")),
            agent_roles=str(ktrdr_setting("AGENT_ROLES", "")),
        ):
            start_warmup()
