from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class ToyKindConfig(AppConfig):
    name = "tests.toykind"
    label = "toykind"
    verbose_name = "Toy operation kind (tests)"

    def ready(self) -> None:
        from tests.toykind.kind import TOY

        register_kind(TOY)
