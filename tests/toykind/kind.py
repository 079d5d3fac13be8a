"""The `toy` kind: repeats a word, one step per repetition; on an agent it leaves the text as an
artifact, which the backend reads back when the run completed."""

from __future__ import annotations

from typing import Any

from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput
from operations.kinds import (
    FetchedArtifact,
    Inputs,
    Launch,
    OperationKind,
    RemoteInput,
    RemotePayload,
)
from operations.local import WorkContext
from operations.models import Operation

ARTIFACT = "toy.txt"


def _prepare(metadata: dict[str, Any], inputs: Inputs | None) -> Launch:
    word, times = metadata.get("word"), metadata.get("times", 3)
    if not isinstance(word, str) or not word.isalpha():
        raise InvalidInput("word must be letters", field="word")
    if not isinstance(times, int) or not 1 <= times <= 50:
        raise InvalidInput("times must be between 1 and 50", field="times")
    # Here the suffix is read from this process's metadata; on an agent it was sent as an input.
    suffix = inputs["suffix"].decode() if inputs is not None else metadata.get("suffix", "")

    def work(ctx: WorkContext) -> dict[str, Any]:
        text = []
        for step in range(1, times + 1):
            ctx.token.raise_if_cancelled(f"word {step}/{times}")
            ctx.token.wait(float(metadata.get("step_seconds", 0.0)))
            text.append(word)
            ctx.bridge.append_metric("word", {"step": step})
            ctx.bridge.update(percentage=100.0 * step / times, message=f"word {step}/{times}")
        result = " ".join(text) + suffix
        if ctx.artifacts_dir is not None:
            (ctx.artifacts_dir / ARTIFACT).write_text(result)
        return {"text": result, "ran_on_agent": ctx.artifacts_dir is not None}

    return Launch(work=work, bridge=ProgressBridge(), metadata=dict(metadata))


def _remote_payload(metadata: dict[str, Any]) -> RemotePayload:
    params = {k: v for k, v in metadata.items() if k != "suffix"}
    suffix = str(metadata.get("suffix", "")).encode()
    return RemotePayload(params=params, inputs=[RemoteInput(key="suffix", data=suffix)])


def _remote_completed(
    op: Operation, summary: dict[str, Any], fetched: list[FetchedArtifact]
) -> dict[str, Any]:
    artifact = next(f for f in fetched if f.name == ARTIFACT)
    return {**summary, "fetched_text": artifact.path.read_text()}


TOY = OperationKind(
    name="toy",
    prepare=_prepare,
    remote_payload=_remote_payload,
    remote_completed=_remote_completed,
    description="repeat a word (tests only)",
)
