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
from typing import Any

from sqlalchemy import Connection

from backup_api.archiving.archive import ArchiveResult
from backup_api.copies.store import CopyUnavailable
from backup_api.jobs.failures import copy_failure
from backup_api.models import CopyStatus, utcnow
from backup_api.repositories import Record, copies
from backup_api.repositories.copies import LOCAL
from backup_api.state import AppState
from backup_api.storage.base import ArchiveWriter, Storage, storage_key
from backup_api.storage.s3.upload import S3Upload, UploadTarget

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


def copy_outcome(result: CopyResult, now: datetime, retry_at: datetime | None) -> dict[str, object]:
    """The columns of a copy that just ended: complete, or failed with its next automatic
    attempt (``retry_at``, None for none)."""
    if result.error is None:
        return {
            "status": CopyStatus.COMPLETED.value,
            "error_msg": None,
            "size": result.size,
            "version_id": result.version_id,
            "retain_until": result.retain_until,
            "next_retry_at": None,
            "updated_at": now,
        }
    return {
        "status": CopyStatus.FAILED.value,
        "error_msg": result.error,
        "next_retry_at": retry_at,
        "updated_at": now,
    }


def record_copy_results(
    connection: Connection, backup_id: int, results: Sequence[CopyResult]
) -> list[Record]:
    """Write how each copy ended; the backup's copies as they now are. A failed copy of a
    backup that another copy holds whole gets its automatic retry planned."""
    now = utcnow()
    any_complete = any(result.error is None for result in results)
    retry_at = now + RETRY_EVERY if any_complete else None
    for result in results:
        copies.update_copy(connection, result.copy_id, copy_outcome(result, now, retry_at))
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


class S3Destination(Destination):
    """The backup's storages: one upload process reads the archive from a pipe and sends
    it to every bucket at once, completing each multipart upload only on commit."""

    def __init__(self, copies: Sequence[Record], upload: S3Upload) -> None:
        super().__init__(copies)
        self._upload: S3Upload | None = upload

    def fileno(self) -> int:
        assert self._upload is not None
        return self._upload.fileno()

    async def commit(self, archive: ArchiveResult) -> list[CopyResult]:
        upload, self._upload = self._upload, None
        assert upload is not None
        outcomes = await upload.commit(
            archive.sha256, archive.size, {"dump_size": archive.uncompressed_size}
        )
        results = []
        for copy, outcome in zip(self.copies, outcomes, strict=True):
            if not outcome.ok:
                results.append(CopyResult(copy.id, outcome.error or "envoi interrompu"))
                continue
            if outcome.error is not None:  # the archive is whole; its manifest is not
                logger.warning("copy %s: %s", copy.id, outcome.error)
            results.append(
                CopyResult(
                    copy.id,
                    None,
                    size=outcome.size,
                    version_id=outcome.version_id,
                    retain_until=outcome.retain_until,
                )
            )
        return results

    async def abort(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            await upload.abort()


_UNWRITTEN = (CopyStatus.PENDING.value, CopyStatus.RUNNING.value)


async def open_destinations(
    state: AppState,
    backup: Record,
    copy_rows: Sequence[Record],
    manifest: dict[str, Any],
) -> tuple[list[Destination], list[CopyResult]]:
    """The writers of a backup's pending copies, and the copies that failed before any
    byte was written (a storage gone, an endpoint the outbound rule refuses)."""
    destinations: list[Destination] = []
    failed: list[CopyResult] = []
    pending = [copy for copy in copy_rows if copy.status in _UNWRITTEN]
    try:
        for copy in pending:
            if copy.kind == LOCAL:
                destinations.append(await LocalDestination.open(state.storage, copy, backup))
        remote: list[tuple[Record, UploadTarget]] = []
        for copy in pending:
            if copy.kind == LOCAL:
                continue
            try:
                location = await state.copy_store.location(copy.storage_id)
            except CopyUnavailable as exc:
                failed.append(CopyResult(copy.id, str(exc)))
                continue
            remote.append((copy, UploadTarget(location, copy.object_key, manifest)))
        if remote:
            try:
                upload = await S3Upload.start([target for _, target in remote])
            except OSError as exc:
                failed.extend(CopyResult(copy.id, copy_failure(exc)) for copy, _ in remote)
            else:
                destinations.append(S3Destination([copy for copy, _ in remote], upload))
    except BaseException:
        for destination in destinations:
            await destination.abort()
        raise
    return destinations, failed
