"""OpenAPI generation: operation ids derived from the full path, parameters included.

drf-spectacular drops path parameters when it names function views, so `GET /models/` and
`GET /models/{id}/` would collide; naming `{id}` as `by_id` keeps every id unique and stable.
"""

from __future__ import annotations

import re

from drf_spectacular.openapi import AutoSchema


class KtrdrAutoSchema(AutoSchema):
    def get_operation_id(self) -> str:
        tokens = []
        for part in self.path.strip("/").split("/"):
            if not part or part == "api":
                continue
            match = re.fullmatch(r"\{(\w+)\}", part)
            tokens.append(f"by_{match.group(1)}" if match else part.replace("-", "_"))
        action = self.method_mapping[self.method.lower()]
        return "_".join([*tokens, action]) or action
