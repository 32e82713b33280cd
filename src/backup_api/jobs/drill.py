"""A restore drill: the restore's own steps into a scratch database, then every table of
the target counted with the engine's client and compared with the counts at dump time.

The archive is checked (its SHA-256, then its contents) by the archive process before the
first byte reaches the restore tool, exactly as for a restore: a drill of an altered
archive fails with the target untouched. The outcome is the drill's record: ``completed``
(shown as ``passed``) when every table is there with its rows, else ``failed`` with the
tables that differ and both counts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from backup_api import encryption, events
from backup_api.db import Metadata
from backup_api.dumpers.base import ConnectionInfo, Dumper, ToolCommand
from backup_api.dumpers.pgclients import JobTools
from backup_api.events import database_summary
from backup_api.jobs import markers, pipeline
from backup_api.jobs.connection import database_owner_is_admin
from backup_api.jobs.failures import JobError, describe_failure
from backup_api.jobs.pipeline import Completion, Target
from backup_api.jobs.queue import Job, JobKind
from backup_api.jobs.records import JobCompleted, JobEvent, JobFailed
from backup_api.jobs.restore import RestorePipeline
from backup_api.jobs.supervisor import Progress, run_tool
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import DrillPublic, DrillTable, JobStatus, duration_seconds
from backup_api.netpolicy import UnknownHostError, resolve_addresses
from backup_api.repositories import Record, backups, databases, drills
from backup_api.state import AppState

logger = logging.getLogger("backup_api.jobs.drill")

#: The counts are one JSON object: a name and a number per table.
_MAX_COUNTS = 16 << 20
NOT_SCRATCH = "la base cible n'est plus marquée comme base d'essai (scratch)"
NO_COUNTS = (
    "cette sauvegarde n'a pas de comptage des lignes par table (sauvegarde antérieure "
    "aux restaurations d'essai): rien à comparer"
)
TARGET_BACKED_UP = (
    "la base cible est, sur le même serveur (adresse, port, nom), une base sauvegardée: "
    "restauration d'essai refusée, la base cible n'a pas été modifiée"
)
RECIPIENTS = (
    "sauvegarde chiffrée pour des destinataires age: le service n'en détient pas "
    "l'identité, elle ne peut pas être restaurée sans vous"
)


async def _addresses(host: str, port: str) -> set[str]:
    """The host's addresses (a name that does not resolve stands for itself)."""
    try:
        found = await resolve_addresses(host, int(port))
    except UnknownHostError:
        return {host.lower()}
    plain = set()
    for address in found:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        plain.add(str(ip))
    return plain


async def is_backed_up_server(
    metadata: Metadata, *, db_type: str, host: str, port: str, db_name: str
) -> bool:
    """Whether a database that is backed up (it has backups or a backup schedule) is this
    one: the same engine, port and database name on a host that resolves to a common
    address (two registrations of one server under different names are one server)."""
    rows = await metadata.read(lambda c: drills.same_named(c, db_type, port, db_name))
    candidates = [row for row in rows if row.backed_up]
    if not candidates:
        return False
    mine = await _addresses(host, port)
    for row in candidates:
        if mine & await _addresses(row.host, port):
            return True
    return False


def _drill_job(
    connection: Connection, drill_id: int
) -> tuple[Record | None, Record | None, Record | None, bool]:
    drill = drills.get(connection, drill_id)
    backup = (
        backups.get(connection, drill.backup_id)
        if drill is not None and drill.backup_id is not None
        else None
    )
    target = (
        databases.get(connection, drill.target_database_id)
        if drill is not None and drill.target_database_id is not None
        else None
    )
    return drill, backup, target, database_owner_is_admin(connection, target)


class _Counts:
    """The count query's stdout (one JSON object), read on the event loop."""

    def __init__(self) -> None:
        self.data = b""

    async def __call__(self, fd: int, progress: Progress) -> None:
        chunks: list[bytes] = []
        size = 0
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=_MAX_COUNTS)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
            try:
                while chunk := await reader.read(65536):
                    progress.advance(len(chunk))
                    size += len(chunk)
                    if size <= _MAX_COUNTS:
                        chunks.append(chunk)
            finally:
                transport.close()
        self.data = b"".join(chunks)


def compare(
    expected: dict[str, int], restored: dict[str, int]
) -> tuple[list[dict[str, Any]], str | None]:
    """Each expected table with both counts, and what differs (French), if anything."""
    tables = [
        {"name": name, "expected_rows": rows, "restored_rows": restored.get(name)}
        for name, rows in sorted(expected.items())
    ]
    problems = []
    for table in tables:
        if table["restored_rows"] is None:
            problems.append(
                f"table {table['name']} absente ({table['expected_rows']} lignes attendues)"
            )
        elif table["restored_rows"] != table["expected_rows"]:
            problems.append(
                f"table {table['name']}: {table['expected_rows']} lignes attendues, "
                f"{table['restored_rows']} restaurées"
            )
    if not problems:
        return tables, None
    return tables, "restauration d'essai non conforme: " + "; ".join(problems)


class DrillPipeline(RestorePipeline):
    def __init__(self, state: AppState, job: Job) -> None:
        super().__init__(state, job)
        self._conn: ConnectionInfo | None = None
        self._dumper: Dumper | None = None
        self._owner_is_admin = False

    async def load(self) -> Target | None:
        job_id = self.job.id
        drill, backup, target, is_admin = await self.state.metadata.read(
            lambda c: _drill_job(c, job_id)
        )
        if drill is None or drill.status != JobStatus.PENDING.value:
            return None
        if backup is None or backup.checksum is None:
            await self.fail("la sauvegarde n'est plus disponible")
            return None
        if target is None:
            await self.fail("la base de données cible a été supprimée")
            return None
        if not target.scratch:
            await self.fail(NOT_SCRATCH)
            return None
        if encryption.needs_identity(backup):
            await self.fail(RECIPIENTS)
            return None
        if backup.table_rows is None:
            await self.fail(NO_COUNTS)
            return None
        # Checked when the drill was set or asked for, and again now: a database backed
        # up since then may be this very server and database.
        if await is_backed_up_server(
            self.state.metadata,
            db_type=target.type,
            host=target.host,
            port=target.port,
            db_name=target.db_name,
        ):
            await self.fail(TARGET_BACKED_UP)
            return None
        self._backup = backup
        self._owner_is_admin = is_admin
        return Target(target, is_admin)

    async def prepare(self, target: Target) -> str | None:
        return await self._open_archive()

    def command(self, dumper: Dumper, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        # Kept for the count that follows the restore, with the same checked connection.
        self._conn, self._dumper = conn, dumper
        return super().command(dumper, conn, workdir)

    async def complete(self, tools: JobTools) -> Completion:
        backup = self._backup
        assert backup is not None
        expected = {str(k): int(v) for k, v in json.loads(backup.table_rows).items()}
        restored = await self._count()
        tables, problem = compare(expected, restored)
        return Completion({"tables": json.dumps(tables)}, problem)

    async def _count(self) -> dict[str, int]:
        conn, dumper = self._conn, self._dumper
        assert conn is not None
        assert dumper is not None
        settings = self.state.settings
        counts = _Counts()
        label = f"drill-{self.job.id}-count"
        with job_workdir(jobs_root(settings), label) as workdir:
            outcome = await run_tool(
                dumper.count_command(conn, workdir),
                worker=counts,
                direction="out",
                executor=self.state.executor,
                marker=markers.marker(label, settings),
                total_timeout=settings.dump_timeout_seconds,
                idle_timeout=settings.dump_timeout_seconds,
                stderr_limit=settings.error_tail_bytes * 2,
                tool_nice=settings.tool_nice,
            )
        if not outcome.ok:
            raise JobError(
                describe_failure(
                    outcome,
                    Path(dumper.restore_tool).name,
                    "comptage des lignes restaurées",
                    settings,
                    conn.password,
                    diagnose=dumper.diagnose,
                    detailed=self._owner_is_admin,
                    private_paths=[str(workdir)],
                )
            )
        try:
            values = json.loads(counts.data.decode("utf-8").strip() or "{}")
            return {str(name): int(rows) for name, rows in values.items()}
        except (ValueError, AttributeError, TypeError):
            raise JobError("réponse inattendue du serveur au comptage des lignes") from None


async def run_drill(state: AppState, job: Job) -> None:
    await pipeline.run(DrillPipeline(state, job))


_STATUS = {
    JobStatus.PENDING.value: "pending",
    JobStatus.COMPLETED.value: "passed",
    JobStatus.FAILED.value: "failed",
}


def public_status(status: str) -> str:
    return _STATUS[status]


def to_public(drill: Record) -> DrillPublic:
    fields = drill._mapping
    tables = json.loads(fields["tables"]) if fields["tables"] else []
    return DrillPublic(
        id=fields["id"],
        backup_id=fields["backup_id"],
        source_database_id=fields["source_database_id"],
        target_database_id=fields["target_database_id"],
        user_id=fields["user_id"],
        status=public_status(fields["status"]),
        error_msg=fields["error_msg"],
        tables=[DrillTable(**table) for table in tables],
        created_at=fields["created_at"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        duration_seconds=duration_seconds(fields["started_at"], fields["finished_at"]),
    )


class DrillFollower:
    """A listener of the job records: a drill that ended is kept on its backup's row
    (``last_drill``) and announced (``drill.passed`` / ``drill.failed``)."""

    def __init__(self, metadata: Metadata, bus: events.EventBus) -> None:
        self._metadata = metadata
        self._bus = bus

    async def job_event(self, event: JobEvent) -> None:
        if event.kind is not JobKind.DRILL or not isinstance(event, (JobCompleted, JobFailed)):
            return
        drill_id = event.job_id

        def follow(connection: Connection) -> tuple[Record, dict[str, Any]] | None:
            drill = drills.get(connection, drill_id)
            if drill is None or drill.status == JobStatus.PENDING.value:
                return None
            drills.mark_backup(connection, drill)
            source = (
                None
                if drill.source_database_id is None
                else databases.get(connection, drill.source_database_id)
            )
            data = {
                "drill": to_public(drill).model_dump(mode="json"),
                "database": database_summary(source),
            }
            return drill, data

        found = await self._metadata.write(follow)
        if found is None:
            return
        drill, data = found
        passed = drill.status == JobStatus.COMPLETED.value
        kind = events.DRILL_PASSED if passed else events.DRILL_FAILED
        self._bus.publish(events.ServiceEvent(kind, drill.user_id, data))
