"""On start: settle what a previous run of this instance left unfinished, then resume.

Processes it left (tools, archive processes) are killed by their marker, staged archives
and job directories removed; a job that had started is failed (it was cut short), one that
never started is queued again, in the order it was created.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial

from sqlalchemy import Connection

from backup_api.jobs import markers
from backup_api.jobs.failures import ACTIONS, interrupted
from backup_api.jobs.queue import JobKind
from backup_api.jobs.records import JobFailed
from backup_api.jobs.workdirs import clear_job_workdirs, jobs_root
from backup_api.models import Backup, CopyStatus, Drill, Restore, utcnow
from backup_api.repositories import copies
from backup_api.repositories import jobs as job_records
from backup_api.state import AppState

logger = logging.getLogger("backup_api.jobs.recovery")
COPY_INTERRUPTED = "le serveur s'est arrêté pendant l'envoi de cette copie"

_RECORDS: tuple[tuple[JobKind, type[Backup] | type[Restore] | type[Drill]], ...] = (
    (JobKind.BACKUP, Backup),
    (JobKind.RESTORE, Restore),
    (JobKind.DRILL, Drill),
)


def _fail_copies(connection: Connection, *, backup_id: int, reason: str, at: datetime) -> None:
    unfinished = (CopyStatus.PENDING.value, CopyStatus.RUNNING.value)
    values = {"status": CopyStatus.FAILED.value, "error_msg": reason, "updated_at": at}
    copies.update_copies_of(connection, backup_id, unfinished, values)


async def recover(state: AppState) -> None:
    loop = asyncio.get_running_loop()
    suffix = markers.instance_suffix(state.settings)
    killed = await loop.run_in_executor(state.executor, markers.kill_orphans, suffix)
    if killed:
        logger.warning("killed %d tool process(es) left by a previous run", killed)
    removed = await state.storage.cleanup_staged()
    if removed:
        logger.warning("removed %d partial archive(s) left by a previous run", removed)
    cleared = await loop.run_in_executor(
        state.executor, clear_job_workdirs, jobs_root(state.settings)
    )
    if cleared:
        logger.warning("removed %d job directory(ies) left by a previous run", cleared)

    stamp = utcnow()
    resume: list[tuple[datetime, JobKind, int, int | None, int]] = []
    cut_short: list[tuple[JobKind, int]] = []

    def pending(connection: Connection) -> None:
        for kind, model in _RECORDS:
            for record in job_records.pending(connection, model):
                if record.started_at is None:
                    # Never started: nothing was lost, run it now.
                    fields = record._mapping
                    # A drill's job touches its target, the database it restores into.
                    database_id = fields.get("database_id", fields.get("target_database_id"))
                    resume.append((record.created_at, kind, record.id, database_id, record.user_id))
                else:
                    cut_short.append((kind, record.id))

    await state.metadata.read(pending)
    for kind, job_id in cut_short:
        reason = interrupted(ACTIONS[kind])
        if kind is JobKind.BACKUP:
            await state.metadata.write(
                partial(_fail_copies, backup_id=job_id, reason=reason, at=stamp)
            )
        await state.records.record(JobFailed(kind, job_id, at=stamp, reason=reason))
    # A retry of copies cut short: failed, and sent again by the copies' loop.
    await state.metadata.write(partial(copies.fail_running, reason=COPY_INTERRUPTED, at=stamp))
    for _, kind, job_id, database_id, user_id in sorted(
        resume, key=lambda item: (item[0], item[2])
    ):
        state.queue.submit(kind, job_id, database_id, user_id)
