"""The skeleton every job follows: load by id, connect, run the tool under supervision,
record exactly one outcome.

A backup and a restore differ only in the steps a ``Pipeline`` names (what they load,
which tool and command, what serves the tool's pipe, what completing means); the order,
the secret's lifetime, the failure wording and the handling of cancellation are here,
once. Whatever happens (tool error, timeout, full disk, cancellation, shutdown), the job's
record ends ``completed`` or ``failed`` with a reason free of secrets, unless it is being
deleted.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup_api.dumpers.base import ConnectionInfo, Dumper, ToolCommand
from backup_api.dumpers.pgclients import JobTools
from backup_api.dumpers.registry import DUMPERS, get_dumper
from backup_api.exceptions import UnsupportedDatabaseType
from backup_api.jobs import markers
from backup_api.jobs.connection import connection_for
from backup_api.jobs.failures import (
    ACTIONS,
    JobError,
    describe_failure,
    failure_reason,
    interrupted,
    metadata_lost,
)
from backup_api.jobs.progress import JobProgress
from backup_api.jobs.queue import CancelReason, Job
from backup_api.jobs.records import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobStarted,
    record_server_version,
)
from backup_api.jobs.supervisor import PipeWorker, ProcessOutcome, run_tool
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import JobPhase
from backup_api.redact import live_secrets
from backup_api.repositories import Record
from backup_api.state import AppState

logger = logging.getLogger("backup_api.jobs")


@dataclass(frozen=True)
class Completion:
    """What a completed job produced, as record columns, and what did not stand (a
    backup that some destinations did not receive; French), if anything."""

    columns: Mapping[str, object]
    problem: str | None = None


@dataclass(frozen=True)
class Target:
    """The registered database a job's tool connects to."""

    database: Record
    owner_is_admin: bool


class Pipeline(ABC):
    """The steps of one job that differ between a backup and a restore."""

    #: Which end of the tool's pipe the worker serves: its stdout ("out") or stdin ("in").
    direction: str
    #: What the job's progress says while its tool runs.
    working_phase: JobPhase

    def __init__(self, state: AppState, job: Job) -> None:
        self.state = state
        self.job = job
        self.action = ACTIONS[job.kind]
        #: The database the job works on, once ``load`` found it.
        self.database_id: int | None = None
        #: The job's live progress (``state.progress``), open while it runs.
        self.live = JobProgress(job.kind, job.id, JobPhase.QUEUED)

    @abstractmethod
    async def load(self) -> Target | None:
        """The job's target; None when there is nothing to run (a job no longer pending,
        or one failed here for a record that went missing)."""

    async def prepare(self, target: Target) -> str | None:
        """What must happen before the tool runs; the reason to stop there, if any."""
        return None

    @abstractmethod
    async def choose_tools(self, dumper: Dumper, conn: ConnectionInfo) -> JobTools: ...

    @abstractmethod
    def tool(self, dumper: Dumper) -> str:
        """The tool this job runs (a path or a name)."""

    @abstractmethod
    def command(self, dumper: Dumper, conn: ConnectionInfo, workdir: Path) -> ToolCommand: ...

    @abstractmethod
    async def worker(self) -> PipeWorker:
        """What serves the tool's pipe (it hands it to an archive process)."""

    async def supervise(self, running: Coroutine[Any, Any, ProcessOutcome]) -> ProcessOutcome:
        """Await the tool's run; a pipeline may watch more while it runs."""
        return await running

    @abstractmethod
    async def complete(self, tools: JobTools) -> Completion:
        """Make the tool's work final; what it produced."""

    async def discard(self) -> None:  # noqa: B027 (a step most pipelines do not need)
        """Undo what a failed or cancelled job left half-done; may raise."""

    async def release(self) -> None:  # noqa: B027 (a step most pipelines do not need)
        """Free what the job held for its whole run, however it ended."""

    async def discard_quietly(self) -> None:
        try:
            await self.discard()
        except Exception:
            logger.exception("%s %s: could not discard its work", self.job.kind, self.job.id)

    async def record(self, event: JobEvent) -> None:
        await self.state.records.record(event)

    async def fail(self, reason: str) -> None:
        await self.record(
            JobFailed(self.job.kind, self.job.id, reason=reason, database_id=self.database_id)
        )


async def run(pipeline: Pipeline) -> None:
    """Run one job through ``pipeline``'s steps and record its outcome."""
    target = await pipeline.load()
    if target is None:
        return
    pipeline.database_id = target.database.id
    board = pipeline.state.progress
    pipeline.live = board.open(pipeline.job.kind, pipeline.job.id, pipeline.working_phase)
    try:
        await _run_loaded(pipeline, target)
    finally:
        board.close(pipeline.live)
        await asyncio.shield(pipeline.release())


async def _run_loaded(pipeline: Pipeline, target: Target) -> None:
    state, job = pipeline.state, pipeline.job
    settings = state.settings
    database_id = pipeline.database_id
    await pipeline.record(JobStarted(job.kind, job.id, database_id=database_id))
    problem = await pipeline.prepare(target)
    if problem is not None:
        await pipeline.fail(problem)
        return

    secret = ""
    try:
        if target.database.type not in DUMPERS:
            raise UnsupportedDatabaseType(target.database.type)
        dumper = get_dumper(target.database.type, settings)
        conn = await connection_for(settings, state.keys, target.database, target.owner_is_admin)
        secret = conn.password
        live_secrets.add(secret)
        tools = await pipeline.choose_tools(dumper, conn)
        version = None if tools.server_version is None else str(tools.server_version)
        await record_server_version(state.metadata, target.database, version)
        dumper = tools.dumper
        tool = Path(pipeline.tool(dumper)).name
        with job_workdir(jobs_root(settings), f"{job.kind}-{job.id}") as workdir:
            command = pipeline.command(dumper, conn, workdir)
            running = run_tool(
                command,
                worker=await pipeline.worker(),
                direction=pipeline.direction,
                executor=state.executor,
                marker=markers.marker(f"{job.kind}:{job.id}", settings),
                total_timeout=settings.dump_timeout_seconds,
                idle_timeout=settings.dump_idle_timeout_seconds,
                stderr_limit=settings.error_tail_bytes * 2,
                tool_nice=settings.tool_nice,
            )
            outcome = await pipeline.supervise(running)
        pipeline.live.phase = JobPhase.FINISHING
        if not outcome.ok:
            raise JobError(
                describe_failure(
                    outcome,
                    tool,
                    pipeline.action,
                    settings,
                    secret,
                    diagnose=dumper.diagnose,
                    detailed=target.owner_is_admin,
                    private_paths=[str(workdir)],
                )
            )
        done = await pipeline.complete(tools)
        await pipeline.record(
            JobCompleted(
                job.kind,
                job.id,
                results=done.columns,
                problem=done.problem,
                database_id=database_id,
            )
        )
        logger.info("%s %s completed", job.kind, job.id)
    except asyncio.CancelledError:
        await asyncio.shield(pipeline.discard())
        if job.cancel_reason is CancelReason.DELETED:
            cancelled = JobCancelled(job.kind, job.id, database_id=database_id)
            await asyncio.shield(pipeline.record(cancelled))
        else:
            await asyncio.shield(pipeline.fail(interrupted(pipeline.action)))
        raise
    except Exception as exc:
        await pipeline.discard_quietly()
        if await state.metadata.answers():
            reason = failure_reason(exc, job)
        else:
            # The step failed for want of the metadata database, not of anything the
            # owner can fix; the outcome is written once it is back (see records).
            logger.warning("%s %s: the metadata database does not answer", job.kind, job.id)
            reason = metadata_lost(pipeline.action)
        await pipeline.fail(reason)
    finally:
        if secret:
            live_secrets.remove(secret)
