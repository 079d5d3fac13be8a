from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from training.kinds import TRAINING

        register_kind(TRAINING)
