"""A restore: an archive process checks the archive (decrypting it when it is encrypted)
and streams its SQL into the restore tool's stdin; first, when the restore asked for it,
a backup of its target."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.archiving.launcher import extract_archive
from backup_api.archiving.protocol import ExtractOptions
from backup_api.copies.rules import choose as choose_copy
from backup_api.copies.store import CopyUnavailable
from backup_api.dumpers.base import ConnectionInfo, Dumper, ToolCommand
from backup_api.dumpers.pgclients import JobTools, tools_for_restore
from backup_api.exceptions import Conflict
from backup_api.jobs import pipeline
from backup_api.jobs.backup import run_backup
from backup_api.jobs.connection import database_owner_is_admin
from backup_api.jobs.pipeline import Completion, Pipeline, Target
from backup_api.jobs.queue import CancelReason, Job, JobKind
from backup_api.jobs.records import JobFailed
from backup_api.jobs.supervisor import PipeWorker, Progress
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import JobPhase, JobStatus
from backup_api.repositories import Record, backups, copies, databases, restores
from backup_api.state import AppState

SAFETY_BACKUP_CANCELLED = "restauration supprimée pendant cette sauvegarde préalable"


def _restore_job(
    connection: Connection, restore_id: int
) -> tuple[Record | None, Record | None, Record | None, bool]:
    """The restore record, its backup's, its target's, and whether the target's owner is
    an admin."""
    restore = restores.get(connection, restore_id)
    backup = (
        backups.get(connection, restore.backup_id)
        if restore is not None and restore.backup_id is not None
        else None
    )
    target = (
        databases.get(connection, restore.database_id)
        if restore is not None and restore.database_id is not None
        else None
    )
    return restore, backup, target, database_owner_is_admin(connection, target)


class RestorePipeline(Pipeline):
    direction = "in"
    working_phase = JobPhase.RESTORING

    def __init__(self, state: AppState, job: Job) -> None:
        super().__init__(state, job)
        self._restore: Record | None = None
        self._backup: Record | None = None
        self._archive: BinaryIO | None = None
        self._identity: str | None = None
        self._held = contextlib.ExitStack()

    async def load(self) -> Target | None:
        job_id = self.job.id
        restore, backup, target, is_admin = await self.state.metadata.read(
            lambda c: _restore_job(c, job_id)
        )
        # Taken at once, whatever follows: the identity lives no longer than needed.
        identity = self.state.restore_identities.pop(job_id, None)
        if restore is None or restore.status != JobStatus.PENDING.value:
            return None
        if backup is None or backup.checksum is None:
            await self.fail("la sauvegarde n'est plus disponible")
            return None
        if target is None:
            await self.fail("la base de données cible a été supprimée")
            return None
        if encryption.needs_identity(backup) and identity is None:
            await self.fail(encryption.IDENTITY_LOST)
            return None
        self._identity = identity
        self._restore, self._backup = restore, backup
        return Target(target, is_admin)

    async def prepare(self, target: Target) -> str | None:
        """Run the backup of the target that the restore asked for; the reason the restore
        must stop there, if that backup did not complete.

        It runs inside the restore's job, so nothing else touches the target in between.
        """
        return await self._safety_backup(target) or await self._open_archive()

    async def _safety_backup(self, target: Target) -> str | None:
        assert self._restore is not None
        backup_id = self._restore.safety_backup_id
        if backup_id is None:
            return None
        database = target.database
        backup_job = Job(
            kind=JobKind.BACKUP, id=backup_id, database_id=database.id, user_id=self.job.user_id
        )
        try:
            await run_backup(self.state, backup_job)
        except asyncio.CancelledError:
            if self.job.cancel_reason is CancelReason.DELETED:
                failed = JobFailed(
                    JobKind.BACKUP,
                    backup_id,
                    reason=SAFETY_BACKUP_CANCELLED,
                    database_id=database.id,
                )
                await asyncio.shield(self.state.records.record(failed))
            raise
        backup = await self.state.metadata.read(lambda c: backups.get(c, backup_id))
        if backup is not None and backup.status == JobStatus.COMPLETED.value:
            return None
        return (
            f"la sauvegarde préalable de la base cible a échoué (sauvegarde {backup_id}): "
            "restauration annulée, la base cible n'a pas été modifiée"
        )

    async def _open_archive(self) -> str | None:
        """Open the archive of the backup's best complete copy (a remote one is fetched
        into a directory of the job's first); the reason to stop, if there is none."""
        backup = self._backup
        assert backup is not None
        backup_id: int = backup.id
        rows = await self.state.metadata.read(lambda c: copies.of_backup(c, backup_id))
        try:
            copy = choose_copy(rows, None)
        except Conflict:
            return "la sauvegarde n'a plus de copie complète"
        workdir = self._held.enter_context(
            job_workdir(jobs_root(self.state.settings), f"restore-{self.job.id}-archive")
        )
        try:
            self._archive = await self.state.copy_store.open(copy, workdir)
        except CopyUnavailable as exc:
            return str(exc)
        self._held.callback(self._archive.close)
        return None

    async def release(self) -> None:
        await asyncio.to_thread(self._held.close)

    async def choose_tools(self, dumper: Dumper, conn: ConnectionInfo) -> JobTools:
        assert self._backup is not None
        return await tools_for_restore(
            self.state.pg_clients, dumper, conn, self._backup.dump_tool_version
        )

    def tool(self, dumper: Dumper) -> str:
        return dumper.restore_tool

    def command(self, dumper: Dumper, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        return dumper.restore_command(conn, workdir)

    async def worker(self) -> PipeWorker:
        backup, archive = self._backup, self._archive
        assert backup is not None
        assert archive is not None
        state = self.state
        options = ExtractOptions(
            expected_sha256=backup.checksum,
            db_type=backup.db_type,
            nice=state.settings.job_nice,
            encrypted=bool(backup.encrypted),
            keys=encryption.opening_keys(state.keys, backup, self._identity),
        )

        live = self.live
        live.estimated_total_bytes = backup.dump_size or None

        def on_report(line: Mapping[str, Any]) -> None:
            live.set_written(int(line.get("read", 0)))
            live.set_read(int(line.get("consumed", 0)))

        async def feed(fd: int, progress: Progress) -> None:
            # The archive process, run backwards: it checks the archive, then streams the
            # SQL into the tool's stdin. A restore tool that stopped reading (it failed) is
            # judged by its exit code.
            await extract_archive(
                archive.fileno(),
                fd,
                options,
                on_write=progress.advance,
                launcher=state.archive_processes,
                executor=state.executor,
                on_report=on_report,
            )

        return feed

    async def complete(self, tools: JobTools) -> Completion:
        return Completion({})


async def run_restore(state: AppState, job: Job) -> None:
    await pipeline.run(RestorePipeline(state, job))
