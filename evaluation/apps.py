from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class EvaluationConfig(AppConfig):
    name = "evaluation"
    verbose_name = "Walk-forward evaluations"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from evaluation.kinds import EVALUATION

        register_kind(EVALUATION)
