"""The job queue: what the service asks of it (``JobQueue``), and today's implementation,
a queue inside the service's own process (``InProcessQueue``).

Jobs (backups and restores) wait in submission order and start while fewer than
``max_concurrent`` run. Two jobs that touch the same registered database never run at once,
and one user never runs more than ``max_per_user`` at once (whatever their kind): a running
job cannot be taken back, so this is what keeps a slot for other users when one user's jobs
hang. A job held back by either rule waits, in order, while others overtake it. Jobs are
identified by ids, never records; the job body loads what it needs itself, so another
implementation may run it in another process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger("backup_api.jobs.queue")


class JobKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    DRILL = "drill"


class CancelReason(StrEnum):
    DELETED = "deleted"
    SHUTDOWN = "shutdown"


@dataclass(eq=False)
class Job:
    kind: JobKind
    id: int
    database_id: int | None
    user_id: int
    task: asyncio.Task[None] | None = None
    cancel_reason: CancelReason | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> tuple[JobKind, int]:
        return (self.kind, self.id)


JobBody = Callable[[Job], Awaitable[None]]


class JobQueue(Protocol):
    """Where the service puts jobs to run, and how it follows and stops them."""

    @property
    def running_count(self) -> int: ...

    @property
    def queued_count(self) -> int: ...

    def is_active(self, kind: JobKind, job_id: int) -> bool:
        """Whether the job is queued or running."""
        ...

    def database_busy(self, database_id: int) -> bool:
        """Whether any queued or running job touches ``database_id``."""
        ...

    def submit(self, kind: JobKind, job_id: int, database_id: int | None, user_id: int) -> None:
        """Queue a job of ``user_id`` (its owner) touching ``database_id``; a job already
        queued or running is left as it is."""
        ...

    async def cancel(self, kind: JobKind, job_id: int, reason: CancelReason) -> bool:
        """Stop a queued or running job and wait until it has cleaned up; False if it was
        neither."""
        ...

    async def shutdown(self) -> None:
        """Stop every running job (they record why) and take no more."""
        ...


class InProcessQueue:
    """A ``JobQueue`` whose jobs run as tasks on the service's own event loop."""

    def __init__(self, max_concurrent: int, body: JobBody, *, max_per_user: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_user = max_per_user
        self._body = body
        self._queue: list[Job] = []
        self._running: dict[tuple[JobKind, int], Job] = {}
        self._closed = False

    # ------------------------------------------------------------------ queries
    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def queued_count(self) -> int:
        return len(self._queue)

    def is_active(self, kind: JobKind, job_id: int) -> bool:
        return (kind, job_id) in self._running or any(j.key == (kind, job_id) for j in self._queue)

    def database_busy(self, database_id: int) -> bool:
        """Whether any queued or running job touches ``database_id``."""
        jobs = [*self._queue, *self._running.values()]
        return any(job.database_id == database_id for job in jobs)

    # ------------------------------------------------------------------ control
    def submit(self, kind: JobKind, job_id: int, database_id: int | None, user_id: int) -> None:
        """Queue a job of ``user_id`` (its owner) touching ``database_id``."""
        if self._closed:
            # The record stays pending with no start time: the next start picks it up.
            logger.warning("queue closed, %s %s left for the next start", kind, job_id)
            return
        if self.is_active(kind, job_id):
            return
        self._queue.append(Job(kind=kind, id=job_id, database_id=database_id, user_id=user_id))
        self._dispatch()

    def _dispatch(self) -> None:
        busy = {job.database_id for job in self._running.values() if job.database_id is not None}
        per_user = Counter(job.user_id for job in self._running.values())
        index = 0
        while index < len(self._queue) and len(self._running) < self.max_concurrent:
            job = self._queue[index]
            if (job.database_id is not None and job.database_id in busy) or per_user[
                job.user_id
            ] >= self.max_per_user:
                index += 1
                continue
            del self._queue[index]
            if job.database_id is not None:
                busy.add(job.database_id)
            per_user[job.user_id] += 1
            self._running[job.key] = job
            job.task = asyncio.create_task(self._run(job), name=f"{job.kind}-{job.id}")
            # A callback, not the coroutine's ``finally``: a task cancelled before its
            # first step never runs its coroutine at all, and ``cancel`` and ``shutdown``
            # would wait for its end forever. Its record was not touched: it stays
            # pending, like a queued job's.
            job.task.add_done_callback(functools.partial(self._finished, job))

    async def _run(self, job: Job) -> None:
        try:
            await self._body(job)
        except asyncio.CancelledError:
            logger.info("%s %s cancelled (%s)", job.kind, job.id, job.cancel_reason)
        except Exception:
            logger.exception("%s %s crashed", job.kind, job.id)

    def _finished(self, job: Job, _task: asyncio.Task[None]) -> None:
        self._running.pop(job.key, None)
        job.done.set()
        if not self._closed:
            self._dispatch()

    async def cancel(self, kind: JobKind, job_id: int, reason: CancelReason) -> bool:
        """Stop a queued or running job and wait until it has cleaned up."""
        for index, job in enumerate(self._queue):
            if job.key == (kind, job_id):
                del self._queue[index]
                return True
        running = self._running.get((kind, job_id))
        if running is None or running.task is None:
            return False
        running.cancel_reason = reason
        running.task.cancel()
        await running.done.wait()
        return True

    async def shutdown(self) -> None:
        """Stop every running job (they record why) and drop the queue (kept in the DB)."""
        self._closed = True
        self._queue.clear()
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel_reason = CancelReason.SHUTDOWN
            if job.task is not None:
                job.task.cancel()
        for job in jobs:
            await job.done.wait()
