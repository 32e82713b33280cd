"""Missing copies sent again from a complete one, and deletions finished.

A copy that failed while another copy of the same backup is complete is sent again, on
request (``POST /api/backups/{id}/copies/retry``) and on its own once an hour for a day.
The source is checked against the backup's checksum first, so a damaged copy is never
spread. No byte passes through this process: a local destination gets the file copied by
the kernel (``copy_file_range``), the storages get it from an upload process that reads
the source file itself. A backup whose deletion left copies (``delete_failed``) has the
deletion finished instead.

On start, the multipart uploads that an earlier run of the service left open in each
storage are aborted (a crash leaves them; nothing else would).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, BinaryIO

from sqlalchemy import Connection

from backup_api.archiving.archive import ArchiveResult
from backup_api.clock import Clock
from backup_api.config import Settings
from backup_api.copies.rules import READABLE, choose, failed_summary
from backup_api.copies.store import CopyStore, CopyUnavailable, is_local
from backup_api.db import Metadata
from backup_api.jobs.destinations import RETRY_EVERY, RETRY_FOR, CopyResult, copy_outcome
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import CopyStatus, JobStatus, as_utc, utcnow
from backup_api.repositories import Record, backups, copies
from backup_api.storage.base import DISK_FULL, FULL_ERRNOS, Storage, storage_key
from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import S3Error
from backup_api.storage.s3.manifest import build_manifest
from backup_api.storage.s3.upload import S3Upload, UploadTarget

logger = logging.getLogger("backup_api.copies")

SOURCE_DAMAGED = "la copie source ne correspond plus à la somme de contrôle: rien n'a été renvoyé"
CHUNK = 1 << 20


class NothingToRetry(Exception):
    """Why a retry has nothing to do (French)."""


class CopyRetrier:
    def __init__(
        self,
        *,
        metadata: Metadata,
        settings: Settings,
        storage: Storage,
        copy_store: CopyStore,
        clock: Clock,
    ) -> None:
        self._metadata = metadata
        self._settings = settings
        self._storage = storage
        self._copy_store = copy_store
        self.clock = clock
        # One retry of a backup at a time; a lock lives while someone holds or awaits it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._started: asyncio.Future[int] | None = None

    # ------------------------------------------------------------------ requests
    async def request(self, backup_id: int) -> None:
        """Start sending a backup's missing copies again (or finishing its deletion) in
        the background; ``NothingToRetry`` says why not. The copies it works on are
        ``running`` when this returns."""
        lock = self._lock(backup_id)
        if lock.locked():
            raise NothingToRetry("un nouvel envoi de ces copies est déjà en cours")
        rows = await self._metadata.read(lambda c: copies.of_backup(c, backup_id))
        if not any(row.status == CopyStatus.DELETE_FAILED.value for row in rows):
            self._plan(rows)
            await self._set_status(
                [row.id for row in rows if row.status == CopyStatus.FAILED.value],
                CopyStatus.RUNNING,
            )
        task = asyncio.create_task(self._guarded(backup_id), name=f"copies-{backup_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _plan(self, rows: Sequence[Record]) -> None:
        if not any(row.status == CopyStatus.FAILED.value for row in rows):
            raise NothingToRetry("aucune copie manquante à renvoyer")
        if not any(row.status in READABLE for row in rows):
            raise NothingToRetry("aucune copie complète à partir de laquelle renvoyer")

    def _lock(self, backup_id: int) -> asyncio.Lock:
        lock = self._locks.get(backup_id)
        if lock is None:
            lock = self._locks[backup_id] = asyncio.Lock()
        return lock

    async def _guarded(self, backup_id: int) -> None:
        try:
            await self.retry(backup_id)
        except Exception:
            logger.exception("copies of backup %s: retry failed", backup_id)

    async def retry(self, backup_id: int) -> None:
        """Send the backup's missing copies again, or finish its deletion; waits."""
        lock = self._lock(backup_id)
        async with lock:
            await self._retry(backup_id)

    async def _retry(self, backup_id: int) -> None:
        backup, rows = await self._metadata.read(
            lambda c: (backups.get(c, backup_id), copies.of_backup(c, backup_id))
        )
        if backup is None:
            return
        if any(row.status == CopyStatus.DELETE_FAILED.value for row in rows):
            await self._finish_deletion(backup_id, rows)
            return
        missing = [row for row in rows if row.status in _RETRIED]
        readable = [row for row in rows if row.status in READABLE]
        if not missing or not readable or backup.checksum is None:
            return
        results = await self._resend(backup, readable, missing)
        await self._metadata.write(lambda c: _record(c, backup, results, self.clock.now()))
        logger.info(
            "copies of backup %s sent again: %d of %d complete",
            backup_id,
            sum(result.error is None for result in results),
            len(results),
        )

    async def _finish_deletion(self, backup_id: int, rows: Sequence[Record]) -> None:
        failures = await self._copy_store.delete_copies(rows)
        if failures:
            logger.info("backup %s: deletion still incomplete (%s)", backup_id, failures)
            return
        await self._metadata.write(lambda c: backups.delete_backup(c, backup_id))
        logger.info("backup %s: deletion finished", backup_id)

    async def _resend(
        self, backup: Record, readable: Sequence[Record], missing: Sequence[Record]
    ) -> list[CopyResult]:
        source = choose(readable, None)
        workdir_name = f"copies-{backup.id}-{os.getpid()}"
        with job_workdir(jobs_root(self._settings), workdir_name) as workdir:
            try:
                handle = await self._copy_store.open(source, workdir)
            except CopyUnavailable as exc:
                return [CopyResult(row.id, f"copie source illisible: {exc}") for row in missing]
            with handle:
                digest = await asyncio.to_thread(_sha256, handle)
                if digest != backup.checksum:
                    return [CopyResult(row.id, SOURCE_DAMAGED) for row in missing]
                size = os.fstat(handle.fileno()).st_size
                archive = ArchiveResult(size, digest, 0, 0, 0)
                results = [
                    await self._to_local(backup, row, handle, size)
                    for row in missing
                    if is_local(row)
                ]
                remote = [row for row in missing if not is_local(row)]
                if remote:
                    results.extend(await self._to_storages(backup, remote, handle, archive))
        return results

    async def _to_local(
        self, backup: Record, row: Record, handle: BinaryIO, size: int
    ) -> CopyResult:
        key = storage_key(backup.db_type, backup.filename)
        try:
            if await self._storage.exists(key):
                await self._storage.delete(key)  # a complete copy would not be "failed"
            writer = await self._storage.create_writer(key)
        except OSError as exc:
            return CopyResult(row.id, _os_reason(exc))
        try:
            await asyncio.to_thread(_copy_file, handle.fileno(), writer.fileno(), size)
            await writer.commit()
        except OSError as exc:
            await writer.abort()
            return CopyResult(row.id, _os_reason(exc))
        except BaseException:
            await writer.abort()
            raise
        return CopyResult(row.id, None, size=size)

    async def _to_storages(
        self, backup: Record, rows: Sequence[Record], handle: BinaryIO, archive: ArchiveResult
    ) -> list[CopyResult]:
        targets: list[tuple[Record, UploadTarget]] = []
        results: list[CopyResult] = []
        manifest = _manifest(backup)
        for row in rows:
            try:
                location = await self._copy_store.location(row.storage_id)
            except CopyUnavailable as exc:
                results.append(CopyResult(row.id, str(exc)))
                continue
            targets.append((row, UploadTarget(location, row.object_key, manifest)))
        if not targets:
            return results
        handle.seek(0)
        try:
            upload = await S3Upload.start(
                [target for _, target in targets], source_fd=handle.fileno()
            )
            outcomes = await upload.commit(archive.sha256, archive.size)
        except OSError as exc:
            return [*results, *(CopyResult(row.id, _os_reason(exc)) for row, _ in targets)]
        for (row, _), outcome in zip(targets, outcomes, strict=True):
            if outcome.ok:
                results.append(
                    CopyResult(
                        row.id,
                        None,
                        size=outcome.size,
                        version_id=outcome.version_id,
                        retain_until=outcome.retain_until,
                    )
                )
            else:
                results.append(CopyResult(row.id, outcome.error or "envoi interrompu"))
        return results

    async def _set_status(self, ids: list[int], status: CopyStatus) -> None:
        if ids:
            values = {"status": status.value, "updated_at": utcnow()}
            await self._metadata.write(lambda c: copies.update_copies(c, ids, values))

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        self._started = asyncio.get_running_loop().create_future()
        self._loop_task = asyncio.create_task(self._periodic(), name="copies-loop")

    async def wait_started(self) -> int:
        """Once the start's look at open uploads is done: how many it aborted."""
        assert self._started is not None
        return await asyncio.shield(self._started)

    async def _periodic(self) -> None:
        # In the loop, not before the service answers: a storage that does not answer
        # must not hold the start up.
        aborted = await self.abort_stale_uploads(self.clock.now())
        assert self._started is not None
        self._started.set_result(aborted)
        while True:
            now = self.clock.now()
            try:
                due = await self._metadata.read(partial(copies.due_for_retry, now=now))
                for backup_id in due:
                    await self.retry(backup_id)
                upcoming = await self._metadata.read(copies.next_retry)
            except Exception:
                logger.exception("copies: retry pass failed")
                upcoming = None
            deadline = now + RETRY_EVERY
            if upcoming is not None:
                deadline = min(deadline, max(as_utc(upcoming), now + timedelta(seconds=1)))
            await self.clock.sleep_until(deadline, self._wake)
            self._wake.clear()

    async def abort_stale_uploads(self, started_before: datetime) -> int:
        """Abort the multipart uploads left open in every storage by an earlier run."""
        aborted = 0
        for storage_id in await self._metadata.read(copies.storage_ids):
            try:
                location = await self._copy_store.location(storage_id)
                aborted += await asyncio.to_thread(
                    objects.abort_stale_uploads, location, started_before
                )
            except (CopyUnavailable, S3Error) as exc:
                logger.warning("storage %s: open uploads not checked (%s)", storage_id, exc)
        if aborted:
            logger.warning("aborted %d upload(s) left open by a previous run", aborted)
        return aborted

    async def stop(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_RETRIED = (CopyStatus.FAILED.value, CopyStatus.RUNNING.value)


def _record(
    connection: Connection, backup: Record, results: Sequence[CopyResult], now: datetime
) -> None:
    """Each copy's new state, its next automatic attempt, and the backup's status."""
    again = now + RETRY_EVERY
    retry_at = again if again <= as_utc(backup.created_at) + RETRY_FOR else None
    for result in results:
        current = copies.get(connection, result.copy_id)
        if current is None:
            continue
        values = copy_outcome(result, now, retry_at)
        values["attempts"] = current.attempts + 1
        copies.update_copy(connection, result.copy_id, values)
    problem = failed_summary(copies.of_backup(connection, backup.id))
    status = JobStatus.COMPLETED if problem is None else JobStatus.FAILED
    backups.update_backup(
        connection, backup.id, {"status": status.value, "error_msg": problem, "updated_at": now}
    )


def _manifest(backup: Record) -> dict[str, Any]:
    return build_manifest(
        database_name=backup.database_name or backup.db_name,
        db_type=backup.db_type,
        db_name=backup.db_name,
        server_version=None,
        created_at=as_utc(backup.created_at),
        filename=backup.filename,
        dump_size=backup.dump_size,
        dump_tool_version=backup.dump_tool_version,
    )


def _sha256(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while count := handle.readinto(buffer):  # type: ignore[attr-defined]
        digest.update(view[:count])
    handle.seek(0)
    return digest.hexdigest()


def _copy_file(source: int, target: int, size: int) -> None:
    offset = 0
    while offset < size:
        copied = os.copy_file_range(source, target, size - offset, offset, None)
        if copied == 0:
            raise OSError("copie interrompue: fichier source plus court que prévu")
        offset += copied


def _os_reason(exc: OSError) -> str:
    if exc.errno in FULL_ERRNOS:
        return DISK_FULL
    return f"erreur d'écriture: {exc.strerror or 'erreur système'}"
