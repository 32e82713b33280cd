"""One place that turns what happens to a job into its record's update.

The pipelines and recovery say what happened (``JobStarted``, ``JobCompleted``,
``JobFailed``, ``JobCancelled``) to ``JobRecords.record``, which writes the one statement
each event means through ``Metadata.write`` (on SQLite, the thread that makes the API's
own writes, so job updates and new backups never wait on each other's lock), then tells
the listeners: whatever follows jobs (retention; notifications, metrics) subscribes
here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backup_api.db import Metadata
from backup_api.jobs.queue import JobKind
from backup_api.models import Backup, Drill, JobStatus, Restore, utcnow
from backup_api.repositories import Record, databases
from backup_api.repositories import jobs as job_records

if TYPE_CHECKING:
    from sqlalchemy import Connection

logger = logging.getLogger("backup_api.jobs.records")

#: The longest wait between two attempts to write a job's outcome while the metadata
#: database does not answer.
MAX_OUTAGE_RETRY_SECONDS = 10.0

_MODELS: dict[JobKind, job_records.JobModel] = {
    JobKind.BACKUP: Backup,
    JobKind.RESTORE: Restore,
    JobKind.DRILL: Drill,
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
    #: The job's work is done but not all of it stands (a backup whose archive some
    #: destinations did not receive): the record says ``failed`` with this reason
    #: (French), and what did complete stays usable.
    problem: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobFailed(JobEvent):
    #: Why, in French, for the owner (see ``failures``).
    reason: str


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    """Stopped because its record is being deleted: nothing is left to update."""


def changes_for(event: JobEvent) -> dict[str, Any] | None:
    """The columns ``event`` sets on its record, if any."""
    values: dict[str, object]
    if isinstance(event, JobStarted):
        values = {"started_at": event.at}
    elif isinstance(event, JobCompleted):
        values = {
            **event.results,
            "status": (JobStatus.COMPLETED if event.problem is None else JobStatus.FAILED).value,
            "error_msg": event.problem,
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
    return {**values, "updated_at": event.at}


Listener = Callable[[JobEvent], Awaitable[None]]


class JobRecords:
    """Writes job events to their records, then hands them to ``listeners``."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata
        self.listeners: list[Listener] = []

    async def record(self, event: JobEvent) -> None:
        if isinstance(event, JobFailed):
            # Every failure (a pipeline's, recovery's) says why in the log as on its record:
            # the owner's French reason, which the redacting filter still scrubs of any
            # password a job is using.
            logger.warning("%s %s failed: %s", event.kind, event.job_id, event.reason)
        elif isinstance(event, JobCompleted) and event.problem is not None:
            logger.warning("%s %s failed: %s", event.kind, event.job_id, event.problem)
        changes = changes_for(event)
        if changes is not None:
            # A record deleted meanwhile is left alone.
            model = _MODELS[event.kind]
            await _wait_for_metadata(
                self._metadata,
                event,
                lambda c: job_records.update_job(c, model, event.job_id, changes),
            )
        for listener in self.listeners:
            try:
                await listener(event)
            except Exception:
                # A listener's failure is its own: the job and its record stand.
                logger.exception("a job event listener failed on %s", event)


async def _wait_for_metadata(
    metadata: Metadata, event: JobEvent, work: Callable[[Connection], object]
) -> None:
    """``work`` written, waiting as long as the metadata database does not answer.

    A job's outcome that is not written leaves its record ``pending`` for good (nothing
    else will write it while the service runs), so the job holds its slot until the
    database is back rather than lose it; an error while the database answers is raised.
    """
    delay = 0.5
    while True:
        try:
            await metadata.write(work)
            return
        except Exception:
            if await metadata.answers():
                raise
            logger.warning(
                "%s %s: the metadata database does not answer; its record waits (%s)",
                event.kind,
                event.job_id,
                type(event).__name__,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_OUTAGE_RETRY_SECONDS)


async def record_server_version(metadata: Metadata, database: Record, version: str | None) -> None:
    """Keep the version the server just reported on its database's record (not an edit: no
    updated_at), as a job or a connection test learns it."""
    if version is None or version == database.server_version:
        return
    database_id: int = database.id
    values = {"server_version": version}
    await metadata.write(lambda c: databases.update_database(c, database_id, values))
