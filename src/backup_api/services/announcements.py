"""Turns the end of each backup and restore into a service event.

A listener of the job records: once a job's record says ``completed`` or ``failed``, it
reads the record and its database and publishes ``backup.completed`` / ``backup.failed`` /
``restore.completed`` / ``restore.failed`` with the record's public shape (what its owner
reads through the API) and the database's name and type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from backup_api import events
from backup_api.db import Metadata
from backup_api.events import database_summary
from backup_api.jobs.queue import JobKind
from backup_api.jobs.records import JobCompleted, JobEvent, JobFailed
from backup_api.models import JobStatus
from backup_api.repositories import Record, backups, copies, databases, restores
from backup_api.services.backups import to_public as backup_public
from backup_api.services.restores import to_public as restore_public


def backup_data(connection: Connection, backup: Record) -> dict[str, Any]:
    public = backup_public(backup, copies.of_backup(connection, backup.id))
    database = None if backup.database_id is None else databases.get(connection, backup.database_id)
    summary = database_summary(database) or {
        "id": backup.database_id,
        "name": backup.database_name,
        "type": backup.db_type,
    }
    return {"backup": public.model_dump(mode="json"), "database": summary}


def restore_data(connection: Connection, restore: Record) -> dict[str, Any]:
    database = (
        None if restore.database_id is None else databases.get(connection, restore.database_id)
    )
    return {
        "restore": restore_public(restore).model_dump(mode="json"),
        "database": database_summary(database),
    }


class JobAnnouncer:
    def __init__(self, metadata: Metadata, bus: events.EventBus) -> None:
        self._metadata = metadata
        self._bus = bus

    async def job_event(self, event: JobEvent) -> None:
        if not isinstance(event, (JobCompleted, JobFailed)):
            return
        job_id = event.job_id
        if event.kind is JobKind.BACKUP:

            def read_backup(connection: Connection) -> tuple[Record, dict[str, Any]] | None:
                backup = backups.get(connection, job_id)
                return None if backup is None else (backup, backup_data(connection, backup))

            found = await self._metadata.read(read_backup)
            if found is None:
                return  # deleted meanwhile
            record, data = found
            ok = record.status == JobStatus.COMPLETED.value
            kind = events.BACKUP_COMPLETED if ok else events.BACKUP_FAILED
        elif event.kind is JobKind.RESTORE:

            def read_restore(connection: Connection) -> tuple[Record, dict[str, Any]] | None:
                restore = restores.get(connection, job_id)
                return None if restore is None else (restore, restore_data(connection, restore))

            found = await self._metadata.read(read_restore)
            if found is None:
                return
            record, data = found
            ok = record.status == JobStatus.COMPLETED.value
            kind = events.RESTORE_COMPLETED if ok else events.RESTORE_FAILED
        else:
            return
        if record.status == JobStatus.PENDING.value:
            return
        self._bus.publish(events.ServiceEvent(kind, record.user_id, data))
