"""Where a backup's archive goes while it is made: one writer per kind of destination,
each fed by the archive process through a descriptor, each publishing its copies only
once complete.

The local backup root takes a staged file; the storages of a backup share one upload
process that reads a pipe. A destination that fails costs its own copies: the job goes
on for the others, and each copy's row says how it ended.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from backup_api.archiving.archive import ArchiveResult
from backup_api.jobs.failures import copy_failure
from backup_api.models import CopyStatus, utcnow
from backup_api.repositories import Record, copies
from backup_api.repositories.copies import LOCAL
from backup_api.state import AppState
from backup_api.storage.base import ArchiveWriter, Storage, storage_key

logger = logging.getLogger("backup_api.jobs")


@dataclass(frozen=True)
class CopyResult:
    """How one copy ended: complete (``error`` None) or not, and why (French)."""

    copy_id: int
    error: str | None
    size: int | None = None
    version_id: str | None = None
    retain_until: datetime | None = None


#: How often a missing copy is sent again on its own, and for how long after the backup.
RETRY_EVERY = timedelta(hours=1)
RETRY_FOR = timedelta(days=1)


def record_copy_results(
    connection: Connection, backup_id: int, results: Sequence[CopyResult]
) -> list[Record]:
    """Write how each copy ended; the backup's copies as they now are. A failed copy of a
    backup that another copy holds whole gets its automatic retry planned."""
    now = utcnow()
    any_complete = any(result.error is None for result in results)
    for result in results:
        values: dict[str, object] = {
            "status": (CopyStatus.COMPLETED if result.error is None else CopyStatus.FAILED).value,
            "error_msg": result.error,
            "updated_at": now,
        }
        if result.error is None:
            values |= {
                "size": result.size,
                "version_id": result.version_id,
                "retain_until": result.retain_until,
                "next_retry_at": None,
            }
        elif any_complete:
            values["next_retry_at"] = now + RETRY_EVERY
        copies.update_copy(connection, result.copy_id, values)
    return copies.of_backup(connection, backup_id)


class Destination(ABC):
    """A writer for some of a backup's copies."""

    def __init__(self, copies: Sequence[Record]) -> None:
        self.copies = list(copies)

    @abstractmethod
    def fileno(self) -> int:
        """The descriptor the archive process writes the archive to."""

    @abstractmethod
    async def commit(self, archive: ArchiveResult) -> list[CopyResult]:
        """Publish the complete archive; how each copy ended."""

    @abstractmethod
    async def abort(self) -> None:
        """Throw away what was staged; safe after a commit or twice."""

    def failed(self, reason: str) -> list[CopyResult]:
        return [CopyResult(copy.id, reason) for copy in self.copies]


class LocalDestination(Destination):
    """The service's own backup root: a staged file, fsynced and renamed on commit."""

    def __init__(self, copy: Record, writer: ArchiveWriter) -> None:
        super().__init__([copy])
        self._writer: ArchiveWriter | None = writer

    @classmethod
    async def open(cls, storage: Storage, copy: Record, backup: Record) -> LocalDestination:
        writer = await storage.create_writer(storage_key(backup.db_type, backup.filename))
        return cls(copy, writer)

    def fileno(self) -> int:
        assert self._writer is not None
        return self._writer.fileno()

    async def commit(self, archive: ArchiveResult) -> list[CopyResult]:
        writer, self._writer = self._writer, None
        assert writer is not None
        try:
            await writer.commit()
        except OSError as exc:
            await writer.abort()
            return self.failed(copy_failure(exc))
        return [CopyResult(self.copies[0].id, None, size=archive.size)]

    async def abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.abort()


async def open_destinations(
    state: AppState, backup: Record, copy_rows: Sequence[Record]
) -> list[Destination]:
    """The writers of a backup's pending copies."""
    destinations: list[Destination] = []
    try:
        for copy in copy_rows:
            if copy.kind == LOCAL and copy.status == CopyStatus.PENDING.value:
                destinations.append(await LocalDestination.open(state.storage, copy, backup))
    except BaseException:
        for destination in destinations:
            await destination.abort()
        raise
    return destinations
