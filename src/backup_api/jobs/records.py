"""One place that turns what happens to a job into its record's update.

The pipelines and recovery say what happened (``JobStarted``, ``JobCompleted``,
``JobFailed``, ``JobCancelled``) to ``JobRecords.record``, which writes the one statement
each event means through the transaction runner (on SQLite, the thread that makes the
API's own writes, so job updates and new backups never wait on each other's lock), then
tells the listeners: whatever follows jobs (retention; notifications, metrics) subscribes
here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Update, update

from backup_api.db import TransactionRunner
from backup_api.jobs.queue import JobKind
from backup_api.models import Backup, JobStatus, Restore, utcnow

logger = logging.getLogger("backup_api.jobs.records")

_TABLES: dict[JobKind, Any] = {
    JobKind.BACKUP: Backup.__table__,  # type: ignore[attr-defined]
    JobKind.RESTORE: Restore.__table__,  # type: ignore[attr-defined]
}


@dataclass(frozen=True)
class JobEvent:
    kind: JobKind
    job_id: int
    _: KW_ONLY
    at: datetime = field(default_factory=utcnow)
    #: The registered database the job works on, once known (retention follows it).
    database_id: int | None = None


@dataclass(frozen=True)
class JobStarted(JobEvent):
    pass


@dataclass(frozen=True)
class JobCompleted(JobEvent):
    #: What the job produced, as record columns (a backup's size, checksum, tool version).
    results: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class JobFailed(JobEvent):
    #: Why, in French, for the owner (see ``failures``).
    reason: str


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    """Stopped because its record is being deleted: nothing is left to update."""


def statement_for(event: JobEvent) -> Update | None:
    """The update ``event`` means for its record (a record deleted meanwhile is left alone)."""
    values: dict[str, object]
    if isinstance(event, JobStarted):
        values = {"started_at": event.at}
    elif isinstance(event, JobCompleted):
        values = {
            **event.results,
            "status": JobStatus.COMPLETED.value,
            "error_msg": None,
            "finished_at": event.at,
        }
    elif isinstance(event, JobFailed):
        values = {
            "status": JobStatus.FAILED.value,
            "error_msg": event.reason,
            "finished_at": event.at,
        }
    else:
        return None
    table = _TABLES[event.kind]
    return update(table).where(table.c.id == event.job_id).values(**values, updated_at=event.at)


Listener = Callable[[JobEvent], Awaitable[None]]


class JobRecords:
    """Writes job events to their records, then hands them to ``listeners``."""

    def __init__(self, transactions: TransactionRunner) -> None:
        self._transactions = transactions
        self.listeners: list[Listener] = []

    async def record(self, event: JobEvent) -> None:
        statement = statement_for(event)
        if statement is not None:
            await self._transactions.run(lambda connection: connection.execute(statement))
        for listener in self.listeners:
            try:
                await listener(event)
            except Exception:
                # A listener's failure is its own: the job and its record stand.
                logger.exception("a job event listener failed on %s", event)
