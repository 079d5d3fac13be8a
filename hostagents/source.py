"""`AgentSource`: how the backend refreshes an operation that runs on a host agent.

Called by `operations.selectors` only when a reader looks, the backend's snapshot is older than
its TTL and nobody else is refreshing (single flight) — no loop, thread or task anywhere. One
refresh is: GET the agent's operation (served from the agent's own TTL cache → its bridge), GET
`metrics?cursor=` with the backend-owned cursor (`remote_metrics_cursor`, persisted, so a backend
restart resumes exactly), then record both through `services.operation_record_pull`.

When the agent reports the operation ended, the backend finishes its own row: for `completed`
it first fetches the results and every artifact (streamed, size-limited, sha256-verified,
atomic); a failed fetch leaves the row running and is retried on the next look. An unreachable
or misbehaving agent leaves status and snapshot as they were and marks the row stale; an agent
that answers 404 for the operation has lost it (restarted empty) and the row fails with that.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hostagents import dispatch
from hostagents.artifacts import artifact_get, artifact_record, artifacts_dir
from hostagents.client import (
    AgentClient,
    AgentError,
    AgentNotFound,
    ArtifactIntegrityError,
    FetchedArtifact,
    client_for,
)
from hostagents.conf import agent_setting
from hostagents.contract import parse_artifact_manifest
from hostagents.models import Agent
from operations import services
from operations.exceptions import IllegalTransition
from operations.models import Operation, OperationStatus
from operations.services import Pull

logger = logging.getLogger(__name__)

S = OperationStatus
METRICS_PAGE = 5000
# A start the agent never confirmed is given this long before the row is failed.
UNCONFIRMED_START_SECONDS = 30.0
# Immediate re-fetches of a corrupted artifact within one look (more wait for the next look).
FETCH_TRIES_PER_LOOK = 2


class AgentSource:
    def refresh(self, operation: Operation) -> Operation:
        op = operation
        agent = Agent.objects.filter(name=op.agent).first()
        if agent is None:
            return services.operation_mark_unreachable(
                operation_id=op.operation_id,
                error=f"agent {op.agent!r} is no longer in the registry",
            )
        client = client_for(agent)
        if not op.remote_operation_id:
            return self._recover_start(op, agent, client)
        remote_id = op.remote_operation_id
        try:
            remote = client.get_operation(remote_id)
            records, new_cursor = self._metrics(client, remote_id, op.remote_metrics_cursor)
        except AgentNotFound as exc:
            message = (
                f"agent {agent.name} no longer knows operation {remote_id} "
                f"(it restarted without it): {exc.message}"
            )
            return self._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id, error_message=message
                ),
            )
        except AgentError as exc:
            logger.warning("refresh of %s from agent %s: %s", op.operation_id, agent.name, exc)
            return services.operation_mark_unreachable(operation_id=op.operation_id, error=str(exc))

        pull = Pull(
            snapshot=remote["progress"],
            records=[(int(r["seq"]), r) for r in records],
            source_cursor=new_cursor,
        )
        status = remote["status"]
        if op.status == S.PENDING and status != S.PENDING:
            op = services.operation_start(operation_id=op.operation_id)
        if status in (S.PENDING, S.RUNNING, S.CANCELLING):
            if op.status == S.CANCELLING and status == S.RUNNING:
                # The cancel never reached the agent (it was down): forward it again.
                self._forward(client, remote_id, op.cancel_reason or "cancelled by user")
            return services.operation_record_pull(operation_id=op.operation_id, pull=pull)
        if status == S.COMPLETED:
            return self._complete(op, agent, client, pull)
        summary = remote.get("result_summary")
        if status == S.FAILED:
            return self._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id,
                    error_message=f"on agent {agent.name}: {remote['error_message']}",
                    partial_result=summary if isinstance(summary, dict) else None,
                    pull=pull,
                ),
            )
        stop_point = (summary or {}).get("stopped_at") if isinstance(summary, dict) else None
        return self._safely(
            op,
            lambda: services.operation_acknowledge_cancel(
                operation_id=op.operation_id,
                stop_point=str(stop_point or f"on agent {agent.name}"),
                partial_result=summary if isinstance(summary, dict) else None,
                pull=pull,
            ),
        )

    def forward_cancel(self, operation: Operation, reason: str) -> None:
        if not operation.remote_operation_id:
            return  # the next refresh recovers the start and then forwards the cancel
        agent = Agent.objects.filter(name=operation.agent).first()
        if agent is None:
            return
        self._forward(client_for(agent), operation.remote_operation_id, reason)

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _forward(client: AgentClient, remote_id: str, reason: str) -> None:
        try:
            client.cancel(remote_id, reason)
        except AgentError as exc:
            # 409 (already ended) and unreachable are both fine: the next refresh sees the end,
            # or re-forwards the cancel once the agent answers again.
            logger.info("forwarding cancel of %s: %s", remote_id, exc)

    @staticmethod
    def _metrics(
        client: AgentClient, remote_id: str, cursor: int
    ) -> tuple[list[dict[str, Any]], int]:
        records: list[dict[str, Any]] = []
        while True:
            page, new_cursor = client.get_metrics(remote_id, cursor=cursor, limit=METRICS_PAGE)
            records.extend(page)
            if len(page) < METRICS_PAGE or new_cursor == cursor:
                return records, new_cursor
            cursor = new_cursor

    @staticmethod
    def _safely(op: Operation, finish: Any) -> Operation:
        try:
            return finish()
        except IllegalTransition:
            # Another reader (or process) ended it first; its outcome stands.
            return Operation.objects.get(pk=op.pk)

    def _recover_start(self, op: Operation, agent: Agent, client: AgentClient) -> Operation:
        """The row has no remote id: the start's answer was lost (crash between POST and
        attach). The agent knows the start by our id if it ever got it."""
        try:
            remote = client.find_start(op.operation_id)
        except AgentError as exc:
            return services.operation_mark_unreachable(operation_id=op.operation_id, error=str(exc))
        if remote is not None:
            dispatch.attach_remote(op, agent=agent, remote=remote)
            return self.refresh(Operation.objects.get(pk=op.pk))
        if time.time() - op.created_at.timestamp() > UNCONFIRMED_START_SECONDS:
            return self._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id,
                    error_message=f"agent {agent.name} never received the start",
                ),
            )
        return op

    def _complete(self, op: Operation, agent: Agent, client: AgentClient, pull: Pull) -> Operation:
        remote_id = op.remote_operation_id
        try:
            results = client.get_results(remote_id)
            summary = dict(results.get("result_summary") or {})
            manifest = parse_artifact_manifest(summary, agent=agent.name)
            fetched = self._fetch_all(op, client, manifest)
        except ArtifactIntegrityError as exc:
            return self._fetch_failed(op, pull, exc)
        except AgentNotFound as exc:
            message = (
                f"agent {agent.name} finished {remote_id} but no longer has its "
                f"results: {exc.message}"
            )
            return self._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id, error_message=message, pull=pull
                ),
            )
        except AgentError as exc:
            # Keep what this look saw; the fetch is retried on the next one.
            services.operation_record_pull(operation_id=op.operation_id, pull=pull)
            return services.operation_mark_unreachable(
                operation_id=op.operation_id, error=f"fetching results: {exc}"
            )
        hook = dispatch.completion_hook(op.operation_type)
        if hook is not None:
            try:
                summary = hook(op, summary, fetched) or summary
            except Exception as exc:
                logger.exception("completion hook for %s failed", op.operation_id)
                message = (
                    f"storing the results of agent {agent.name} failed: {type(exc).__name__}: {exc}"
                )
                partial = summary
                return self._safely(
                    op,
                    lambda: services.operation_fail(
                        operation_id=op.operation_id,
                        error_message=message,
                        partial_result=partial,
                        pull=pull,
                    ),
                )
        logger.info(
            "operation %s completed on agent %s (%d artifacts fetched)",
            op.operation_id,
            agent.name,
            len(fetched),
        )
        return self._safely(
            op,
            lambda: services.operation_complete(
                operation_id=op.operation_id, result_summary=summary, pull=pull
            ),
        )

    @staticmethod
    def _fetch_all(
        op: Operation, client: AgentClient, manifest: list[dict[str, Any]]
    ) -> list[FetchedArtifact]:
        fetched: list[FetchedArtifact] = []
        max_bytes = int(agent_setting("AGENT_MAX_ARTIFACT_BYTES"))
        for item in manifest:
            name, sha, size = item["name"], item["sha256"], item["size"]
            have = artifact_get(operation_id=op.operation_id, name=name)
            if have is not None and have.sha256 == sha and have.size == size:
                from pathlib import Path

                if Path(have.path).is_file():
                    # Fetched on an earlier look whose completion did not go through.
                    fetched.append(FetchedArtifact(name, Path(have.path), size, sha))
                    continue
            dest = artifacts_dir(op.operation_id) / name
            for attempt in range(FETCH_TRIES_PER_LOOK):
                try:
                    got = client.download_artifact(
                        op.remote_operation_id,
                        name,
                        dest,
                        expected_sha256=sha,
                        expected_size=size,
                        max_bytes=max_bytes,
                    )
                except ArtifactIntegrityError as exc:
                    logger.warning(
                        "artifact %s of %s failed verification (try %d): %s",
                        name,
                        op.operation_id,
                        attempt + 1,
                        exc,
                    )
                    if attempt + 1 == FETCH_TRIES_PER_LOOK or size > max_bytes:
                        raise
                    continue
                artifact_record(
                    operation_id=op.operation_id,
                    name=name,
                    path=got.path,
                    size=got.size,
                    sha256=got.sha256,
                )
                fetched.append(got)
                break
        return fetched

    @staticmethod
    def _fetch_failed(op: Operation, pull: Pull, exc: ArtifactIntegrityError) -> Operation:
        failures = int((op.metadata or {}).get("artifact_failures", 0)) + FETCH_TRIES_PER_LOOK
        limit = int(agent_setting("AGENT_MAX_ARTIFACT_ATTEMPTS"))
        if failures >= limit:
            return AgentSource._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id,
                    error_message=(
                        f"the results could not be fetched intact after {failures} attempts: "
                        f"{exc.message}"
                    ),
                    pull=pull,
                ),
            )
        services.operation_update_metadata(
            operation_id=op.operation_id,
            artifact_failures=failures,
            artifact_error=exc.message[:500],
        )
        return services.operation_record_pull(operation_id=op.operation_id, pull=pull)
