"""`AgentPlace`: host agents as an execution place (`docs/architecture.md` §6).

Registered with `operations.places` by `HostagentsConfig.ready()`; it knows nothing of the kinds
of work it runs — everything kind-specific comes from the kind's registry record
(`operations.kinds`).

* Choosing: `candidates` lists the registered agents that could take a kind of work (the
  capability the kind needs, a GPU when asked) with why each one can't; the rule that picks one
  is the operations core's (`operations.placement`).
* Starting: the backend operation is created first and its id is the start's idempotency key, so
  a retried POST never starts the work twice. The kind's inputs travel content-addressed: the
  agent is asked which hashes it lacks, and only those are uploaded, each as a raw streamed body
  (`PUT blobs/{sha256}`) before the start, whose JSON body lists keys and hashes only. A start
  whose answer never came (timeout, reset, garbled answer) is adopted, not failed: the row stays
  pending without a remote id and the next look finds it by its key (`GET starts/{key}`); only a
  clear rejection (4xx) or a request that certainly never reached the agent fails it.
* Refreshing (only when a reader looks, the snapshot is older than the TTL and nobody else is
  refreshing): one request, `GET operations/{id}/refresh/?cursor=` with the backend-owned cursor
  (`remote_metrics_cursor`, persisted, so a backend restart resumes exactly), answered from the
  agent's own TTL cache and its bridge with the operation and its new metric records
  (`AgentClient.refresh`; an older agent gets the operation GET and the metrics GET); then both
  are recorded through `services.operation_record_pull`.
* Completing: when the agent reports `completed`, the read that saw it records the phase
  `fetching results` and starts one background thread per operation (single flight; claimed on
  the row so another live backend process does not fetch too) that fetches the results and every
  artifact (streamed, size-limited, sha256-verified, atomic), runs the kind's `remote_completed`
  (which may import torch) and only then marks the row completed through `operations.services`.
  So the reader never pays for the fetch; a failed or crashed fetch leaves the row running and is
  started again by a later look. An unreachable or misbehaving agent leaves status and snapshot as
  they were and marks the row stale; an agent that answers 404 for the operation has lost it
  (restarted empty) and the row fails with that.
* Cancelling: forwarded to the agent; re-forwarded by a refresh that still sees it running.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.db import close_old_connections

from hostagents import selectors
from hostagents.artifacts import artifact_get, artifact_record, artifacts_dir
from hostagents.client import (
    AgentClient,
    AgentError,
    AgentNotFound,
    AgentProtocolError,
    AgentRejected,
    AgentUnreachable,
    ArtifactIntegrityError,
    client_for,
)
from hostagents.conf import agent_setting
from hostagents.contract import parse_artifact_manifest
from hostagents.models import Agent
from operations import services
from operations.exceptions import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from operations.instance import current_instance_id, owner_is_alive
from operations.kinds import FetchedArtifact, OperationKind, RemoteInput, kind_get
from operations.models import Executor, Operation, OperationStatus
from operations.oplog import log_event
from operations.places import Candidate
from operations.services import Pull

logger = logging.getLogger(__name__)

S = OperationStatus
# A start the agent never confirmed is given this long before the row is failed.
UNCONFIRMED_START_SECONDS = 30.0
# Immediate re-fetches of a corrupted artifact within one look (more wait for the next look).
FETCH_TRIES_PER_LOOK = 2
# The phase a completed remote run shows while its results are fetched in the background.
FETCH_PHASE = "fetching results"
# How long the read that started a fetch waits for it: a small one is then seen completed at
# once; a big one (an artifact, a model to register) goes on after the answer.
FETCH_WAIT_SECONDS = 0.5

# The background completion fetches of this process, by backend operation id (single flight).
_fetches: dict[str, threading.Thread] = {}
_fetches_lock = threading.Lock()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetches_in_flight() -> list[str]:
    """Operation ids whose results this process is fetching now (tests wait on it)."""
    with _fetches_lock:
        return [op_id for op_id, thread in _fetches.items() if thread.is_alive()]


def _why_not(agent: Agent, need: str | None, require_gpu: bool) -> str:
    """Empty when the agent can take the work, else the reason it cannot."""
    if not agent.enabled:
        return "disabled"
    if not agent.reachable:
        return f"unreachable ({(agent.last_error or 'never answered')[:200]})"
    if need and not agent.has_capability(need):
        return f"no {need} role (has: {', '.join(agent.capabilities) or 'nothing'})"
    if require_gpu and not agent.has_capability("gpu"):
        return "no GPU"
    return ""


def _wire_inputs(inputs: list[RemoteInput]) -> list[dict[str, Any]]:
    # Keys and hashes only: the bytes went up before as blobs (a JSON body would carry them
    # base64-inflated, and agents refuse big request bodies).
    return [{"key": item.key, "sha256": item.sha256, "rows": item.rows} for item in inputs]


def _upload(client: AgentClient, inputs: list[RemoteInput], hashes: set[str]) -> None:
    done: set[str] = set()
    for item in inputs:
        if item.sha256 in hashes and item.sha256 not in done:
            client.put_blob(item.sha256, item.data)
            done.add(item.sha256)


class _StartLost(Exception):
    """The start POST may have reached the agent, but no usable answer came back."""

    def __init__(self, error: AgentError) -> None:
        super().__init__(str(error))
        self.error = error


class AgentPlace:
    name = "agent"
    pulls = True

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    # --- choosing ------------------------------------------------------------------------------
    def candidates(
        self, *, kind: OperationKind, metadata: dict[str, Any], named: str | None, require_gpu: bool
    ) -> list[Candidate]:
        if named:
            try:
                agents = [selectors.agent_get(name=named)]
            except NotFound:
                raise InvalidInput(f"agent {named!r} is not registered", field="agent") from None
        else:
            agents = selectors.agent_list(enabled_only=True)
        need = kind.capability(metadata)
        return [
            Candidate(
                target=agent,
                name=agent.name,
                why_not=_why_not(agent, need, require_gpu),
                has_gpu=agent.has_capability("gpu"),
            )
            for agent in sorted(agents, key=lambda a: a.name)
        ]

    # --- starting ------------------------------------------------------------------------------
    def start(
        self,
        *,
        kind: OperationKind,
        target: Agent,
        metadata: dict[str, Any],
        user: Any = None,
        strategy_name: str = "",
        input_series: Iterable[str] = (),
    ) -> Operation:
        """Create the backend operation and start the work on agent `target`; returns at once.

        Raises `InvalidInput` (400) when the agent rejects the payload, `Conflict` (409) when it
        refuses it, and `ServiceUnavailable` (503) when it cannot be reached; in each case the
        backend operation is marked failed with why.
        """
        agent = target
        payload = kind.remote_payload(metadata)
        client = client_for(agent)
        hashes = [item.sha256 for item in payload.inputs]
        try:
            missing = set(client.blobs_missing(hashes)) if hashes else set()
        except AgentError as exc:
            logger.info("blob check on %s failed (%s); sending all inputs", agent.name, exc)
            missing = set(hashes)
        sent = sum(len(i.data) for i in payload.inputs if i.sha256 in missing)
        op = services.operation_create(
            operation_type=kind.name,
            metadata={
                **metadata,
                **payload.metadata,
                **(
                    {
                        "inputs_sent_bytes": sent,
                        "inputs_cached_on_agent": len(hashes) - len(missing),
                    }
                    if hashes
                    else {}
                ),
            },
            executor=Executor.AGENT,
            agent=agent.name,
            created_by=user,
            strategy_name=strategy_name,
            input_series=input_series,
        )
        body = {
            "operation_type": kind.name,
            "params": payload.params,
            "inputs": _wire_inputs(payload.inputs),
        }
        try:
            _upload(client, payload.inputs, missing)
            try:
                remote = self._post_start(client, body, op.operation_id)
            except AgentRejected as exc:
                lost = (exc.details or {}).get("missing")
                if exc.status != 409 or not isinstance(lost, list) or not lost:
                    raise
                # The agent's cache lost inputs since it was asked: upload those, start again.
                _upload(client, payload.inputs, {str(h) for h in lost})
                remote = self._post_start(client, body, op.operation_id)
        except _StartLost as lost:
            # Never failed while it may run there: the next look finds it by its key.
            log_event(
                logger,
                logging.WARNING,
                op.operation_id,
                "start_unconfirmed",
                "agent %s sent no answer (%s); adopting it by its key",
                agent.name,
                lost.error,
            )
            return services.operation_mark_unreachable(
                operation_id=op.operation_id,
                error=(
                    f"the answer to the start was lost ({lost.error.message[:300]}); "
                    "it is looked up on the agent by its key at the next look"
                ),
            )
        except AgentError as exc:
            services.operation_fail(
                operation_id=op.operation_id,
                error_message=f"agent {agent.name} did not accept the start: {exc.message}",
            )
            if isinstance(exc, AgentRejected) and exc.status == 400:
                raise InvalidInput(exc.message, details=exc.details) from None
            if isinstance(exc, AgentRejected) and exc.status == 409:
                raise Conflict(exc.message, details=exc.details) from None
            raise ServiceUnavailable(
                f"Agent {agent.name} could not start the {kind.name.replace('_', ' ')}: "
                f"{exc.message}",
                details={"agent": agent.name},
            ) from None
        return self._attach(op, agent=agent, remote=remote)

    @staticmethod
    def _post_start(client: AgentClient, body: dict[str, Any], key: str) -> dict[str, Any]:
        try:
            return client.start(body, idempotency_key=key)
        except (AgentUnreachable, AgentProtocolError) as exc:
            if isinstance(exc, AgentUnreachable) and (not exc.delivered or exc.code):
                raise  # it never reached the agent, or the agent refused it: a failed start
            raise _StartLost(exc) from None

    @staticmethod
    def _attach(op: Operation, *, agent: Agent, remote: dict[str, Any]) -> Operation:
        remote_id = remote["operation_id"]
        op = services.operation_attach_remote(
            operation_id=op.operation_id, agent=agent.name, remote_operation_id=remote_id
        )
        if op.status == S.PENDING and remote["status"] != S.PENDING:
            op = services.operation_start(operation_id=op.operation_id)
        return op

    # --- refreshing ----------------------------------------------------------------------------
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
            answer = client.refresh_with_logs(
                remote_id, cursor=op.remote_metrics_cursor, log_cursor=op.remote_logs_cursor
            )
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
            # The service logs the first failure of an outage as `unreachable` (once).
            return services.operation_mark_unreachable(operation_id=op.operation_id, error=str(exc))

        remote = answer.operation
        pull = Pull(
            snapshot=remote["progress"],
            records=[(int(r["seq"]), r) for r in answer.records],
            source_cursor=answer.new_cursor,
            logs=[(int(line["seq"]), line) for line in answer.logs or []],
            logs_cursor=answer.logs_cursor if answer.logs is not None else op.remote_logs_cursor,
            logs_source=agent.name,
        )
        status = remote["status"]
        if op.status == S.PENDING and status != S.PENDING:
            op = services.operation_start(operation_id=op.operation_id)
        if status in (S.PENDING, S.RUNNING, S.CANCELLING):
            if op.status == S.CANCELLING and status in (S.PENDING, S.RUNNING):
                # The cancel never reached the agent (it was down, or the start's answer was
                # lost before we knew the agent's id): forward it again.
                self._forward(client, op, op.cancel_reason or "cancelled by user")
            return services.operation_record_pull(operation_id=op.operation_id, pull=pull)
        if status == S.COMPLETED:
            return self._completion(op, agent, pull)
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
        # Why the agent stopped it (its shutdown, a cancel asked of it directly), for a row whose
        # own cancel request gave no reason.
        remote_cancel = remote.get("cancel") if isinstance(remote.get("cancel"), dict) else {}
        reason = remote_cancel.get("reason") if isinstance(remote_cancel.get("reason"), str) else ""
        return self._safely(
            op,
            lambda: services.operation_acknowledge_cancel(
                operation_id=op.operation_id,
                stop_point=str(stop_point or f"on agent {agent.name}"),
                partial_result=summary if isinstance(summary, dict) else None,
                pull=pull,
                reason=f"on agent {agent.name}: {reason}" if reason else "",
            ),
        )

    def cancel(self, operation: Operation, reason: str) -> None:
        if not operation.remote_operation_id:
            return  # the next refresh recovers the start and then forwards the cancel
        agent = Agent.objects.filter(name=operation.agent).first()
        if agent is None:
            return
        self._forward(client_for(agent), operation, reason)

    def fetch_resume_files(self, operation: Operation, dest: Path) -> list[FetchedArtifact]:
        """Fetch the files the run left on its agent for a resume of it (`RESUME_FOLDER`) into
        `dest`, each verified (size, sha256) and renamed into place; a file already there with
        the listed sha256 is not fetched again. Asked for when a resume is, never before: a run
        the agent lost with its process still left them on its disk.

        `NotFound` when the agent does not know the run; `ServiceUnavailable` (503) when it
        cannot be reached or a transfer fails verification."""
        op = operation
        agent = Agent.objects.filter(name=op.agent).first()
        if agent is None or not op.remote_operation_id:
            raise NotFound(f"{op.operation_id} has no run on a registered agent to fetch from")
        client = client_for(agent)
        max_bytes = int(agent_setting("AGENT_MAX_ARTIFACT_BYTES"))
        try:
            listed = client.resume_files(op.remote_operation_id)
            fetched = []
            for item in listed:
                target = dest / item["name"]
                if target.is_file() and target.stat().st_size == item["size"]:
                    have = FetchedArtifact(item["name"], target, item["size"], item["sha256"])
                    if _sha256_of(target) == item["sha256"]:
                        fetched.append(have)
                        continue
                fetched.append(
                    client.download_artifact(
                        op.remote_operation_id,
                        item["name"],
                        target,
                        expected_sha256=item["sha256"],
                        expected_size=item["size"],
                        max_bytes=max_bytes,
                        route="resume-files",
                    )
                )
        except AgentNotFound as exc:
            raise NotFound(
                f"agent {agent.name} no longer knows {op.remote_operation_id}: {exc.message}"
            ) from None
        except AgentError as exc:
            raise ServiceUnavailable(
                f"could not fetch what {op.operation_id} left on agent {agent.name}: {exc.message}",
                details={"agent": agent.name},
            ) from None
        log_event(
            logger,
            logging.INFO,
            op.operation_id,
            "resume_files_fetched",
            "%d file(s) from agent %s",
            len(fetched),
            agent.name,
        )
        return fetched

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _forward(client: AgentClient, op: Operation, reason: str) -> None:
        try:
            client.cancel(op.remote_operation_id, reason)
        except AgentError as exc:
            # 409 (already ended) and unreachable are both fine: the next refresh sees the end,
            # or re-forwards the cancel once the agent answers again.
            log_event(
                logger,
                logging.INFO,
                op.operation_id,
                "cancel_not_forwarded",
                "agent %s: %s",
                client.name,
                exc,
            )
        else:
            log_event(
                logger,
                logging.INFO,
                op.operation_id,
                "cancel_forwarded",
                "to agent %s",
                client.name,
            )

    @staticmethod
    def _safely(op: Operation, finish: Any) -> Operation:
        try:
            return finish()
        except IllegalTransition:
            # Another reader (or process) ended it first; its outcome stands.
            return Operation.objects.get(pk=op.pk)

    def _recover_start(self, op: Operation, agent: Agent, client: AgentClient) -> Operation:
        """The row has no remote id: the start's answer was lost (a timeout, a dropped link, a
        crash between POST and attach). The agent knows the start by our id if it ever got it;
        the grace period counts from when the answer was lost (`unreachable_since`), not from
        the row's creation, since the inputs went up in between."""
        try:
            remote = client.find_start(op.operation_id)
        except AgentError as exc:
            return services.operation_mark_unreachable(operation_id=op.operation_id, error=str(exc))
        if remote is not None:
            self._attach(op, agent=agent, remote=remote)
            return self.refresh(Operation.objects.get(pk=op.pk))
        since = op.unreachable_since or op.created_at
        if self.clock() - since.timestamp() > UNCONFIRMED_START_SECONDS:
            if op.status == S.CANCELLING:
                return self._safely(
                    op,
                    lambda: services.operation_acknowledge_cancel(
                        operation_id=op.operation_id,
                        stop_point=f"before agent {agent.name} received the start",
                    ),
                )
            return self._safely(
                op,
                lambda: services.operation_fail(
                    operation_id=op.operation_id,
                    error_message=f"agent {agent.name} never received the start",
                ),
            )
        return op

    # --- completing --------------------------------------------------------------------------
    def _completion(self, op: Operation, agent: Agent, pull: Pull) -> Operation:
        """The agent says completed: record what this look saw under the phase `fetching
        results` and leave the fetch to one background thread (docs/architecture.md §6)."""
        snapshot = dict(pull.snapshot or {})
        snapshot.update(phase=FETCH_PHASE, message=f"fetching results from agent {agent.name}")
        op = services.operation_record_pull(
            operation_id=op.operation_id, pull=dataclasses.replace(pull, snapshot=snapshot)
        )
        if op.is_terminal:
            return op
        claim = (op.metadata or {}).get("result_fetch") or {}
        claimed_by = str(claim.get("by", "")) if isinstance(claim, dict) else ""
        if claimed_by and claimed_by != current_instance_id() and owner_is_alive(claimed_by):
            return op  # another live backend process on this host is fetching it
        if claimed_by != current_instance_id():
            log_event(
                logger,
                logging.INFO,
                op.operation_id,
                "fetching_results",
                "agent %s reports it completed",
                agent.name,
            )
            op = services.operation_update_metadata(
                operation_id=op.operation_id,
                result_fetch={"by": current_instance_id(), "since": self.clock()},
            )
        # What this look stored is not stored again by the completion (the cursors only advance).
        final = dataclasses.replace(pull, records=[], logs=[])
        with _fetches_lock:
            thread = _fetches.get(op.operation_id)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._complete_in_background,
                    args=(op.operation_id, agent.name, final),
                    name=f"agent-fetch-{op.operation_id}",
                    daemon=True,
                )
                _fetches[op.operation_id] = thread
                thread.start()
        thread.join(FETCH_WAIT_SECONDS)
        return Operation.objects.get(pk=op.pk)

    def _complete_in_background(self, operation_id: str, agent_name: str, pull: Pull) -> None:
        try:
            op = Operation.objects.get(operation_id=operation_id)
            agent = Agent.objects.filter(name=agent_name).first()
            if op.is_terminal or agent is None:
                return
            self._complete(op, agent, client_for(agent), pull)
        except Exception:
            # The row stays running with the claim ours: a later look starts the fetch again.
            log_event(
                logger,
                logging.ERROR,
                operation_id,
                "fetch_failed",
                "fetching the results failed; a later look tries again",
                exc_info=True,
            )
        finally:
            try:
                services.operation_store_log_lines(operation_id=operation_id)
            except Exception:
                logger.exception("%s log_not_stored", operation_id)
            with _fetches_lock:
                if _fetches.get(operation_id) is threading.current_thread():
                    del _fetches[operation_id]
            close_old_connections()

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
        try:
            hook = kind_get(op.operation_type).remote_completed
        except InvalidInput:
            hook = None  # a kind this backend no longer has: keep the agent's summary as it is
        if hook is not None:
            try:
                summary = hook(op, summary, fetched) or summary
            except Exception as exc:
                log_event(
                    logger,
                    logging.ERROR,
                    op.operation_id,
                    "remote_completed_failed",
                    "%s: %s",
                    type(exc).__name__,
                    exc,
                    capture=False,
                    exc_info=True,
                )
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
        log_event(
            logger,
            logging.INFO,
            op.operation_id,
            "results_fetched",
            "%d artifacts from agent %s",
            len(fetched),
            agent.name,
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
            fetched_before = (
                have is not None
                and have.sha256 == sha
                and have.size == size
                and Path(have.path).is_file()
            )
            if fetched_before:
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
                    log_event(
                        logger,
                        logging.WARNING,
                        op.operation_id,
                        "artifact_rejected",
                        "%s failed verification (try %d): %s",
                        name,
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
            return AgentPlace._safely(
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
