"""A backup: the dump tool's stdout goes to an archive process, which writes the ZIP
archive into a staged file of the storage; published under its key only once complete."""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from backup_api.archiving.archive import ArchiveResult, Compression
from backup_api.archiving.launcher import write_archive
from backup_api.archiving.protocol import ArchiveOptions
from backup_api.diskspace import within_reserve
from backup_api.dumpers.base import ConnectionInfo, Dumper, ToolCommand
from backup_api.dumpers.pgclients import JobTools, tools_for_backup
from backup_api.jobs import pipeline
from backup_api.jobs.connection import database_owner_is_admin
from backup_api.jobs.pipeline import Pipeline, Target
from backup_api.jobs.queue import Job
from backup_api.jobs.supervisor import PipeWorker, ProcessOutcome, Progress
from backup_api.models import JobStatus
from backup_api.repositories import Record, backups, databases
from backup_api.state import AppState
from backup_api.storage.base import ArchiveWriter, storage_key

logger = logging.getLogger("backup_api.jobs")


def _backup_job(
    connection: Connection, backup_id: int
) -> tuple[Record | None, Record | None, bool]:
    """The backup record, its database's, and whether the database's owner is an admin."""
    backup = backups.get(connection, backup_id)
    database = (
        databases.get(connection, backup.database_id)
        if backup is not None and backup.database_id is not None
        else None
    )
    return backup, database, database_owner_is_admin(connection, database)


class BackupPipeline(Pipeline):
    direction = "out"

    def __init__(self, state: AppState, job: Job) -> None:
        super().__init__(state, job)
        self._backup: Record | None = None
        self._writer: ArchiveWriter | None = None
        self._result: ArchiveResult | None = None

    async def load(self) -> Target | None:
        job_id = self.job.id
        backup, database, is_admin = await self.state.metadata.read(
            lambda c: _backup_job(c, job_id)
        )
        if backup is None or backup.status != JobStatus.PENDING.value:
            return None
        if database is None:
            await self.fail("la base de données a été supprimée")
            return None
        self._backup = backup
        return Target(database, is_admin)

    async def choose_tools(self, dumper: Dumper, conn: ConnectionInfo) -> JobTools:
        return await tools_for_backup(self.state.pg_clients, dumper, conn)

    def tool(self, dumper: Dumper) -> str:
        return dumper.dump_tool

    def command(self, dumper: Dumper, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        return dumper.dump_command(conn, workdir)

    async def worker(self) -> PipeWorker:
        backup = self._backup
        assert backup is not None
        settings = self.state.settings
        writer = await self.state.storage.create_writer(
            storage_key(backup.db_type, backup.filename)
        )
        self._writer = writer
        options = ArchiveOptions(
            entry_name=Path(backup.filename).stem + ".sql",
            compression=Compression(settings.compression),
            level=settings.compression_level,
            date_time=backup.created_at,
            readahead_mib=settings.dump_readahead_mib,
            nice=settings.job_nice,
        )

        async def archive(fd: int, progress: Progress) -> None:
            self._result = await write_archive(
                fd,
                writer.fileno(),
                options,
                on_read=progress.advance,
                launcher=self.state.archive_processes,
                executor=self.state.executor,
            )

        return archive

    async def supervise(self, running: Coroutine[Any, Any, ProcessOutcome]) -> ProcessOutcome:
        # Stopped (the tool killed) if the disk's free space drops below the reserve.
        return await within_reserve(
            running, self.state.storage, self.state.settings.disk_reserve_percent
        )

    async def complete(self, tools: JobTools) -> Mapping[str, object]:
        result, writer = self._result, self._writer
        if result is None or writer is None:  # the tool succeeded, so the archive did or raised
            raise RuntimeError("the archive process returned no result")
        await writer.commit()
        self._writer = None
        logger.info("backup %s archived (%d bytes)", self.job.id, result.size)
        return {
            "size": result.size,
            "checksum": result.sha256,
            "dump_size": result.uncompressed_size,
            "dump_tool_version": None if tools.tool_version is None else str(tools.tool_version),
        }

    async def discard(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.abort()


async def run_backup(state: AppState, job: Job) -> None:
    await pipeline.run(BackupPipeline(state, job))
