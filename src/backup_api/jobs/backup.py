"""A backup: the dump tool's stdout goes to an archive process, which writes the ZIP
archive (wrapped in the age format when the backup is encrypted) to each destination at
once (a staged file of the local backup root, an upload process for the storages); each
copy is published under its name only once complete."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.archiving.archive import Compression
from backup_api.archiving.launcher import write_archive
from backup_api.archiving.protocol import ArchiveOptions, ArchiveOutcome
from backup_api.copies.rules import failed_summary
from backup_api.diskspace import within_reserve
from backup_api.dumpers.base import ConnectionInfo, Dumper, ToolCommand
from backup_api.dumpers.pgclients import JobTools, tools_for_backup
from backup_api.jobs import pipeline
from backup_api.jobs.connection import database_owner_is_admin
from backup_api.jobs.destinations import (
    CopyResult,
    Destination,
    LocalDestination,
    S3Destination,
    open_destinations,
    record_copy_results,
)
from backup_api.jobs.failures import JobError, copy_failure, internal_error
from backup_api.jobs.pipeline import Completion, Pipeline, Target
from backup_api.jobs.queue import Job
from backup_api.jobs.supervisor import PipeWorker, ProcessOutcome, Progress
from backup_api.models import CopyStatus, JobPhase, JobStatus, as_utc, utcnow
from backup_api.repositories import Record, backups, copies, databases
from backup_api.state import AppState
from backup_api.storage.s3.manifest import build_manifest

logger = logging.getLogger("backup_api.jobs")


@dataclass(frozen=True)
class _BackupJob:
    backup: Record | None
    database: Record | None
    #: Whether the database's owner is an admin.
    owner_is_admin: bool
    copies: list[Record]
    #: The dump size of the database's last completed backup, if any.
    last_dump_size: int | None


def _backup_job(connection: Connection, backup_id: int) -> _BackupJob:
    backup = backups.get(connection, backup_id)
    database = (
        databases.get(connection, backup.database_id)
        if backup is not None and backup.database_id is not None
        else None
    )
    last = (
        None
        if backup is None or database is None
        else backups.last_dump_size(connection, database.id, backup.db_name)
    )
    return _BackupJob(
        backup,
        database,
        database_owner_is_admin(connection, database),
        copies.of_backup(connection, backup_id),
        last,
    )


#: The read-ahead of a backup that goes to storages: the upload process already holds up
#: to two parts of the archive, so a full read-ahead on top would only add memory.
REMOTE_READAHEAD_MIB = 8


def readahead_mib(configured: int, destinations: list[Destination]) -> int:
    if any(isinstance(destination, S3Destination) for destination in destinations):
        return min(configured, REMOTE_READAHEAD_MIB)
    return configured


class BackupPipeline(Pipeline):
    direction = "out"
    working_phase = JobPhase.DUMPING

    def __init__(self, state: AppState, job: Job) -> None:
        super().__init__(state, job)
        self._backup: Record | None = None
        self._copies: list[Record] = []
        self._destinations: list[Destination] = []
        self._early_failures: list[CopyResult] = []
        self._database: Record | None = None
        self._tools: JobTools | None = None
        self._outcome: ArchiveOutcome | None = None
        self._conn: ConnectionInfo | None = None
        self._last_dump_size: int | None = None

    async def load(self) -> Target | None:
        job_id = self.job.id
        found = await self.state.metadata.read(lambda c: _backup_job(c, job_id))
        backup, database, is_admin, copy_rows = (
            found.backup,
            found.database,
            found.owner_is_admin,
            found.copies,
        )
        self._last_dump_size = found.last_dump_size
        if backup is None or backup.status != JobStatus.PENDING.value:
            return None
        if database is None:
            await self.fail("la base de données a été supprimée")
            return None
        self._backup, self._database = backup, database
        self._copies = copy_rows
        return Target(database, is_admin)

    async def choose_tools(self, dumper: Dumper, conn: ConnectionInfo) -> JobTools:
        self._conn = conn
        self._tools = await tools_for_backup(self.state.pg_clients, dumper, conn)
        return self._tools

    def tool(self, dumper: Dumper) -> str:
        return dumper.dump_tool

    def command(self, dumper: Dumper, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        return dumper.dump_command(conn, workdir)

    async def worker(self) -> PipeWorker:
        backup = self._backup
        assert backup is not None
        settings = self.state.settings
        # Before any destination is opened: a passphrase that cannot be decrypted fails
        # the job with nothing to undo. The keys go to the archive process in its job
        # message, never on a command line.
        keys = encryption.encrypting_keys(self.state.keys, settings, backup)
        database = self._database
        assert database is not None
        tools = self._tools
        manifest = build_manifest(
            database_name=database.name,
            db_type=backup.db_type,
            db_name=backup.db_name,
            server_version=None
            if tools is None or tools.server_version is None
            else str(tools.server_version),
            created_at=as_utc(backup.created_at),
            filename=backup.filename,
            dump_tool_version=None
            if tools is None or tools.tool_version is None
            else str(tools.tool_version),
            encryption=encryption.manifest_entry(backup),
        )
        # Running from the moment their writers are opened (an upload is begun by then).
        pending = [c.id for c in self._copies if c.status == CopyStatus.PENDING.value]
        await self._set_copies(pending, {"status": CopyStatus.RUNNING.value})
        self._destinations, failed = await open_destinations(
            self.state, backup, self._copies, manifest
        )
        self._early_failures = failed
        if not self._destinations:
            await self.state.metadata.write(lambda c: record_copy_results(c, self.job.id, failed))
            raise JobError("; ".join(sorted({r.error or "" for r in failed})))
        options = ArchiveOptions(
            entry_name=encryption.entry_name(backup.filename),
            compression=Compression(settings.compression),
            level=settings.compression_level,
            date_time=backup.created_at,
            readahead_mib=readahead_mib(settings.dump_readahead_mib, self._destinations),
            nice=settings.job_nice,
            encryption=keys,
            count_rows=backup.db_type if settings.count_table_rows else None,
        )
        outputs = [destination.fileno() for destination in self._destinations]
        live = self.live

        def on_report(line: Mapping[str, Any]) -> None:
            live.set_written(int(line.get("written", 0)))

        async def archive(fd: int, progress: Progress) -> None:
            def on_read(count: int) -> None:
                progress.advance(count)
                live.add_read(count)

            self._outcome = await write_archive(
                fd,
                outputs,
                options,
                on_read=on_read,
                launcher=self.state.archive_processes,
                executor=self.state.executor,
                on_report=on_report,
            )

        return archive

    async def supervise(self, running: Coroutine[Any, Any, ProcessOutcome]) -> ProcessOutcome:
        estimating = self._estimate()
        try:
            # Stopped (the tool killed) if the disk's free space drops below the reserve.
            if not any(isinstance(d, LocalDestination) for d in self._destinations):
                return await running
            return await within_reserve(
                running, self.state.storage, self.state.settings.disk_reserve_percent
            )
        finally:
            if estimating is not None:
                # An estimate still on its way is of no use any more: its client is killed
                # and reaped before the job goes on.
                estimating.cancel()
                await asyncio.gather(estimating, return_exceptions=True)

    def _estimate(self) -> asyncio.Task[None] | None:
        """The dump's expected size: the last backup's, or the server's figure, asked for
        beside the dump (a connection of its own, so the dump never waits for it)."""
        if self._last_dump_size is not None:
            self.live.estimated_total_bytes = self._last_dump_size
            return None
        conn, tools = self._conn, self._tools
        if conn is None or tools is None:
            return None
        live, probe = self.live, self.state.server_probe
        label = f"estimate-{self.job.id}"

        async def ask() -> None:
            live.estimated_total_bytes = await probe.dump_estimate(tools.dumper, conn, label=label)

        return asyncio.create_task(ask())

    async def complete(self, tools: JobTools) -> Completion:
        outcome, destinations = self._outcome, self._destinations
        if outcome is None:  # the tool succeeded, so the archive did or raised
            raise RuntimeError("the archive process returned no result")
        self._destinations = []
        archive = outcome.archive
        results: list[CopyResult] = list(self._early_failures)
        for destination, error in zip(destinations, outcome.output_errors, strict=True):
            if error is None:
                results.extend(await destination.commit(archive))
            else:
                await destination.abort()
                results.extend(destination.failed(copy_failure(error)))
        copy_rows = await self.state.metadata.write(
            lambda c: record_copy_results(c, self.job.id, results)
        )
        if all(result.error is not None for result in results):
            raise JobError(failed_summary(copy_rows) or internal_error("sauvegarde"))
        logger.info("backup %s archived (%d bytes)", self.job.id, archive.size)
        columns = {
            "size": archive.size,
            "checksum": archive.sha256,
            "dump_size": archive.uncompressed_size,
            "dump_tool_version": None if tools.tool_version is None else str(tools.tool_version),
            "table_rows": None if outcome.table_rows is None else json.dumps(outcome.table_rows),
        }
        return Completion(columns, failed_summary(copy_rows))

    async def discard(self) -> None:
        destinations, self._destinations = self._destinations, []
        for destination in destinations:
            await destination.abort()
        # The copies this job did not finish; those it did keep how they ended.
        unfinished = (CopyStatus.PENDING.value, CopyStatus.RUNNING.value)
        values = {"status": CopyStatus.FAILED.value, "updated_at": utcnow()}
        backup_id = self.job.id
        await self.state.metadata.write(
            lambda c: copies.update_copies_of(c, backup_id, unfinished, values)
        )

    async def _set_copies(self, ids: list[int], values: dict[str, object]) -> None:
        if ids:
            await self.state.metadata.write(lambda c: copies.update_copies(c, ids, values))


async def run_backup(state: AppState, job: Job) -> None:
    await pipeline.run(BackupPipeline(state, job))
