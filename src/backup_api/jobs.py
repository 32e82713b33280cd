"""The background pipelines: dumper -> archive -> storage -> record, and back for restores.

Each job loads what it needs by id in its own short units of work, runs the tool under
supervision (``process.run_tool``), and records exactly one outcome: ``completed`` with the
archive's real size and checksum, or ``failed`` with a reason free of secrets. Whatever
happens (tool error, timeout, full disk, cancellation, shutdown), nothing stays under the
archive's final name unless the archive is complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from backup_api.archive import ArchiveError, ArchiveResult, Compression
from backup_api.archiver import (
    ArchiverLauncher,
    ArchiverOptions,
    ExtractOptions,
    extract_in_process,
    write_archive_in_process,
)
from backup_api.authcheck import Verdict, check_server, first_reachable
from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.diskspace import within_reserve
from backup_api.dumpers.base import ConnectionInfo, Diagnosis, Dumper, ToolDiagnosis
from backup_api.dumpers.pgclients import (
    JobTools,
    NoCompatibleClient,
    PgClients,
    tools_for_backup,
    tools_for_restore,
)
from backup_api.dumpers.registry import UnknownDatabaseType, get_dumper
from backup_api.models import Backup, JobStatus, Restore
from backup_api.netpolicy import HostNotAllowedError, UnknownHostError, allowed_addresses
from backup_api.process import (
    JOB_MARKER_ENV,
    FailureKind,
    ProcessOutcome,
    Progress,
    ToolNotFoundError,
    child_env,
    dying_with_service,
    run_tool,
)
from backup_api.redact import live_secrets, scrub
from backup_api.repositories import Record, backups, databases, restores, users
from backup_api.repositories import jobs as job_records
from backup_api.runner import CancelReason, Job, JobKind, Runner
from backup_api.security import CredentialError, Keys, decrypt_secret
from backup_api.storage.base import ArchiveWriter, Storage, StorageFullError
from backup_api.workdirs import clear_job_workdirs, job_workdir, jobs_root

logger = logging.getLogger("backup_api.jobs")

SHUTDOWN_BACKUP = "le serveur s'est arrêté pendant la sauvegarde"
SHUTDOWN_RESTORE = "le serveur s'est arrêté pendant la restauration"
DISK_FULL = "espace disque insuffisant"


#: What the owner of a database reads when a connection failed, unless they are an admin:
#: a category, never what the peer sent (any service on any port may have answered) nor
#: a local path; a refused and a timed-out connection read the same.
CONNECTION_REASONS: dict[Diagnosis, str] = {
    Diagnosis.UNREACHABLE: "connexion impossible: serveur de base de données injoignable",
    Diagnosis.UNKNOWN_HOST: "connexion impossible: hôte introuvable",
    Diagnosis.AUTH_FAILED: "connexion impossible: authentification refusée par le serveur",
    Diagnosis.DATABASE_MISSING: "base de données introuvable sur le serveur",
}
UNCHECKED_SERVER = (
    "ce serveur accepte les connexions sans vérifier le mot de passe (méthode trust, "
    "compte sans mot de passe...): seul un administrateur peut s'y connecter"
)
CREDENTIALS_REQUIRED = (
    "mot de passe requis: seul un administrateur peut se connecter sans mot de passe"
)


class JobFailed(Exception):
    """A failure whose message is safe to show the owner (already scrubbed)."""


class ConnectionRefused(JobFailed):
    """A connection the service must not make; ``field`` names the setting at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServerUnavailable(ConnectionRefused):
    """The server cannot be reached now (its name does not resolve, nothing answers): no
    reason to refuse a registration, since it may be down for a while, but one to warn."""


def tool_missing(tool: str) -> str:
    return f"{tool} introuvable: outil non installé sur le serveur"


@dataclass
class JobContext:
    settings: Settings
    metadata: Metadata
    storage: Storage
    keys: Keys
    executor: ThreadPoolExecutor
    archivers: ArchiverLauncher
    pg_clients: PgClients
    # Told the database of each completed backup (retention sweeps it).
    on_backup_completed: Callable[[int], None] | None = None

    @property
    def marker_suffix(self) -> str:
        return instance_marker_suffix(self.settings)

    def marker(self, job: Job) -> str:
        return f"{job.kind}:{job.id}{self.marker_suffix}"


def instance_marker_suffix(settings: Settings) -> str:
    # Ties a child process to this service instance's backup root (see recover()).
    return "@" + str(settings.backup_root.resolve())


def archiver_launcher(settings: Settings) -> ArchiverLauncher:
    """Archive writers for this instance: they die with it, and carry its marker so a
    restart after a crash finds any left behind (see ``kill_orphans``)."""
    marker = "archiver" + instance_marker_suffix(settings)
    return ArchiverLauncher(child_env({}, marker), wrap=dying_with_service)


def now_utc() -> datetime:
    return datetime.now(UTC)


def storage_key(db_type: str, filename: str) -> str:
    return f"{db_type}/{filename}"


# ---------------------------------------------------------------------------- helpers


def must_prove_credentials(settings: Settings, owner_is_admin: bool) -> bool:
    """Whether the owner may only reach servers that check the password they supplied."""
    return not owner_is_admin and not settings.unsafe_allow_unauthenticated_db_for_all_users


async def connection_address(
    settings: Settings,
    *,
    db_type: str,
    host: str,
    port: int,
    username: str,
    has_password: bool,
    db_name: str,
    owner_is_admin: bool,
    registering: bool = False,
) -> str:
    """Every check a connection needs, and the one address the tool is then given.

    The host is resolved once; its addresses are checked (allow-list, link-local and
    friends); for a non-admin owner the server must refuse a wrong password at the very
    address returned. Raises ``ConnectionRefused``, or its ``ServerUnavailable`` when a
    name that no allow-list needs to check does not resolve, or nothing answers the
    pre-flight (a registration accepts those: the server may be down for a while, and
    every job checks again). ``registering`` spares an admin's registration the search
    for a reachable address among several.
    """
    prove = must_prove_credentials(settings, owner_is_admin)
    if prove and not has_password:
        raise ConnectionRefused(CREDENTIALS_REQUIRED, "password")
    try:
        addresses = await allowed_addresses(host, port, settings.allowed_db_hosts)
    except UnknownHostError as exc:
        if not settings.allowed_db_hosts:
            raise ServerUnavailable(str(exc), "host") from None
        raise ConnectionRefused(str(exc), "host") from None
    except HostNotAllowedError as exc:
        raise ConnectionRefused(str(exc), "host") from None
    timeout = settings.connect_timeout_seconds
    if not prove:
        return addresses[0] if registering else await first_reachable(addresses, port, timeout)
    address, verdict = await check_server(db_type, addresses, port, username, db_name, timeout)
    if verdict is Verdict.NOT_CHECKED:
        raise ConnectionRefused(UNCHECKED_SERVER)
    if verdict is Verdict.UNREACHABLE:
        raise ServerUnavailable(CONNECTION_REASONS[Diagnosis.UNREACHABLE])
    return address


async def connection_for(ctx: JobContext, database: Record, owner_is_admin: bool) -> ConnectionInfo:
    """Where and how a job connects to ``database``, every check made (``JobFailed``)."""
    try:
        password = decrypt_secret(ctx.keys, database.password_encrypted)
    except CredentialError as exc:
        raise JobFailed(str(exc)) from None
    address = await connection_address(
        ctx.settings,
        db_type=database.type,
        host=database.host,
        port=int(database.port),
        username=database.username,
        has_password=bool(password),
        db_name=database.db_name,
        owner_is_admin=owner_is_admin,
    )
    return ConnectionInfo(
        host=database.host,
        port=int(database.port),
        username=database.username,
        password=password,
        db_name=database.db_name,
        pinned_address=address,
        connect_timeout=ctx.settings.connect_timeout_seconds,
    )


async def record_server_version(metadata: Metadata, database: Record, version: str | None) -> None:
    """Keep the version the server just reported on its record (not an edit: no updated_at)."""
    if version is None or version == database.server_version:
        return
    database_id: int = database.id
    values = {"server_version": version}
    await metadata.write(lambda c: databases.update_database(c, database_id, values))


async def _record_server_version(ctx: JobContext, database: Record, tools: JobTools) -> None:
    version = None if tools.server_version is None else str(tools.server_version)
    await record_server_version(ctx.metadata, database, version)


def _dumper_for(ctx: JobContext, db_type: str) -> Dumper:
    try:
        return get_dumper(db_type, ctx.settings)
    except UnknownDatabaseType:
        raise JobFailed(f"type de base de données non supporté: {db_type}") from None


def _tail_lines(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) > limit:
        text = "…" + text[-limit:]
        # Start at a line boundary when one is near, for readability.
        newline = text.find("\n", 1, 200)
        if newline != -1:
            text = "…" + text[newline + 1 :]
    return text


def describe_failure(
    outcome: ProcessOutcome,
    tool: str,
    action: str,
    settings: Settings,
    secret: str,
    *,
    diagnose: Callable[[str], ToolDiagnosis] | None = None,
    detailed: bool = True,
    private_paths: Sequence[str] = (),
) -> str:
    """A French, secret-free reason for a failed tool run.

    ``detailed`` (an admin owner) keeps the tool's stderr tail; otherwise the owner reads
    the category ``diagnose`` finds, with the server's own error line for a statement
    that failed, and nothing of the stderr beyond that.
    """
    if not detailed:
        return scrub(_brief_failure(outcome, tool, action, settings, diagnose), [secret])
    message = _failure_head(outcome, tool, action, settings)
    stderr = _tail_lines(scrub(outcome.stderr_tail, [secret]), settings.error_tail_bytes)
    if stderr:
        message = f"{message}: {stderr}"
    for path in private_paths:
        message = message.replace(path, "…")
    # The whole message is bounded and scrubbed again, whatever its parts held.
    return scrub(message, [secret])[: settings.error_tail_bytes + 512]


def _brief_failure(
    outcome: ProcessOutcome,
    tool: str,
    action: str,
    settings: Settings,
    diagnose: Callable[[str], ToolDiagnosis] | None,
) -> str:
    if outcome.failure is FailureKind.CONNECT:
        return CONNECTION_REASONS[Diagnosis.UNREACHABLE]
    if outcome.failure is not None or diagnose is None:
        return _failure_head(outcome, tool, action, settings)
    diagnosis = diagnose(outcome.stderr_tail)
    if diagnosis.kind in CONNECTION_REASONS:
        return CONNECTION_REASONS[diagnosis.kind]
    head = _failure_head(outcome, tool, action, settings)
    if diagnosis.kind is Diagnosis.SQL_ERROR and diagnosis.line:
        return f"{head}: {diagnosis.line}"
    return head


def _failure_head(outcome: ProcessOutcome, tool: str, action: str, settings: Settings) -> str:
    if outcome.failure is FailureKind.TIMEOUT:
        message = (
            f"délai maximal dépassé ({settings.dump_timeout_seconds:g} s): {action} interrompue"
        )
    elif outcome.failure is FailureKind.CONNECT:
        message = (
            f"{tool} a échoué: connexion impossible dans le délai de connexion "
            f"({settings.connect_timeout_seconds} s)"
        )
    elif outcome.failure is FailureKind.IDLE:
        message = (
            f"aucune activité de {tool} depuis {settings.dump_idle_timeout_seconds:g} s "
            f"(délai d'inactivité): {action} interrompue"
        )
    elif outcome.failure is FailureKind.IO_ERROR:
        error = outcome.io_error
        if isinstance(error, StorageFullError):
            message = DISK_FULL
        elif isinstance(error, ArchiveError):
            message = str(error)
        elif isinstance(error, OSError):
            message = f"erreur d'écriture de l'archive: {error.strerror or 'erreur système'}"
        else:
            message = f"erreur interne pendant la {action}"
    else:
        message = f"{tool} a échoué (code {outcome.returncode})"
    return message


# ---------------------------------------------------------------------------- backups


JobRecord = Backup | Restore


async def _update(
    ctx: JobContext, model: type[JobRecord], record_id: int, **values: object
) -> None:
    """Apply ``values`` to one job record (a record deleted meanwhile is left alone).

    One statement through ``Metadata.write``: on SQLite that is the thread that makes the
    API's own writes, so job updates and new backups never wait on each other's lock
    (SQLite's busy handler sleeps 1 to 100 ms at a time).
    """
    changes = {**values, "updated_at": now_utc().replace(microsecond=0)}
    await ctx.metadata.write(lambda c: job_records.update_job(c, model, record_id, changes))


def _failed(reason: str, finished_at: datetime) -> dict[str, object]:
    return {"status": JobStatus.FAILED.value, "error_msg": reason, "finished_at": finished_at}


async def _set_backup(ctx: JobContext, backup_id: int, **values: object) -> None:
    await _update(ctx, Backup, backup_id, **values)


async def fail_backup(ctx: JobContext, backup_id: int, reason: str) -> None:
    await _set_backup(ctx, backup_id, **_failed(reason, now_utc()))


class _DumpArchiver:
    """The dump worker: hands the tool's stdout to an archive writer process."""

    def __init__(self, ctx: JobContext, backup: Record, writer: ArchiveWriter) -> None:
        self._writer = writer
        self._launcher = ctx.archivers
        self._options = ArchiverOptions(
            entry_name=Path(backup.filename).stem + ".sql",
            compression=Compression(ctx.settings.compression),
            level=ctx.settings.compression_level,
            date_time=backup.created_at,
            readahead_mib=ctx.settings.dump_readahead_mib,
            nice=ctx.settings.job_nice,
        )
        self.result: ArchiveResult | None = None

    def __call__(self, fd: int, progress: Progress) -> None:
        self.result = write_archive_in_process(
            fd,
            self._writer.fileno(),
            self._options,
            on_read=progress.advance,
            launcher=self._launcher,
        )


def database_owner_is_admin(connection: Connection, database: Record | None) -> bool:
    return database is not None and users.is_admin(connection, database.user_id)


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


async def run_backup(ctx: JobContext, job: Job) -> None:
    backup, database, owner_is_admin = await ctx.metadata.read(lambda c: _backup_job(c, job.id))
    if backup is None or backup.status != JobStatus.PENDING.value:
        return
    if database is None:
        await fail_backup(ctx, job.id, "la base de données a été supprimée")
        return
    await _set_backup(ctx, job.id, started_at=now_utc())

    secret = ""
    writer: ArchiveWriter | None = None
    try:
        dumper = _dumper_for(ctx, database.type)
        conn = await connection_for(ctx, database, owner_is_admin)
        secret = conn.password
        live_secrets.add(secret)
        tools = await tools_for_backup(ctx.pg_clients, dumper, conn)
        await _record_server_version(ctx, database, tools)
        dumper = tools.dumper
        tool = Path(dumper.dump_tool).name
        with job_workdir(jobs_root(ctx.settings), f"backup-{job.id}") as workdir:
            command = dumper.dump_command(conn, workdir)
            writer = await ctx.storage.create_writer(storage_key(backup.db_type, backup.filename))
            archiver = _DumpArchiver(ctx, backup, writer)
            dumping = run_tool(
                command,
                worker=archiver,
                direction="out",
                executor=ctx.executor,
                marker=ctx.marker(job),
                total_timeout=ctx.settings.dump_timeout_seconds,
                idle_timeout=ctx.settings.dump_idle_timeout_seconds,
                stderr_limit=ctx.settings.error_tail_bytes * 2,
                worker_nice=ctx.settings.job_nice,
                tool_nice=ctx.settings.tool_nice,
            )
            # Stopped (the tool killed) if the disk's free space drops below the reserve.
            outcome = await within_reserve(dumping, ctx.storage, ctx.settings.disk_reserve_percent)
        if not outcome.ok:
            raise JobFailed(
                describe_failure(
                    outcome,
                    tool,
                    "sauvegarde",
                    ctx.settings,
                    secret,
                    diagnose=dumper.diagnose,
                    detailed=owner_is_admin,
                    private_paths=[str(workdir)],
                )
            )
        result = archiver.result
        if result is None:  # the tool succeeded, so the archiver did or raised
            raise RuntimeError("archive writer returned no result")
        await writer.commit()
        writer = None
        await _set_backup(
            ctx,
            job.id,
            status=JobStatus.COMPLETED.value,
            size=result.size,
            checksum=result.sha256,
            dump_size=result.uncompressed_size,
            dump_tool_version=None if tools.tool_version is None else str(tools.tool_version),
            error_msg=None,
            finished_at=now_utc(),
        )
        logger.info("backup %s completed (%d bytes)", job.id, result.size)
        if ctx.on_backup_completed is not None and database.id is not None:
            ctx.on_backup_completed(database.id)
    except asyncio.CancelledError:
        if writer is not None:
            await asyncio.shield(writer.abort())
        if job.cancel_reason is not CancelReason.DELETED:
            await asyncio.shield(fail_backup(ctx, job.id, SHUTDOWN_BACKUP))
        raise
    except Exception as exc:
        await _abort_quietly(writer)
        await fail_backup(ctx, job.id, failure_reason(exc, job, "sauvegarde"))
    finally:
        if secret:
            live_secrets.remove(secret)


def failure_reason(exc: Exception, job: Job, action: str) -> str:
    """The owner-facing reason for a job that raised ``exc`` (never its raw text)."""
    if isinstance(exc, JobFailed | NoCompatibleClient):
        logger.info("%s %s failed", job.kind, job.id)
        return str(exc)
    if isinstance(exc, ToolNotFoundError):
        return tool_missing(exc.tool)
    if isinstance(exc, StorageFullError):
        return DISK_FULL
    if isinstance(exc, FileNotFoundError):
        return "fichier de sauvegarde introuvable"
    logger.exception("%s %s: unexpected error", job.kind, job.id)
    return f"erreur interne pendant la {action}"


async def _abort_quietly(writer: ArchiveWriter | None) -> None:
    if writer is None:
        return
    try:
        await writer.abort()
    except Exception:
        logger.exception("could not remove a staged archive")


# ---------------------------------------------------------------------------- restores


async def _set_restore(ctx: JobContext, restore_id: int, **values: object) -> None:
    await _update(ctx, Restore, restore_id, **values)


async def fail_restore(ctx: JobContext, restore_id: int, reason: str) -> None:
    await _set_restore(ctx, restore_id, **_failed(reason, now_utc()))


def _restore_worker(
    ctx: JobContext, key: str, expected_sha256: str | None, db_type: str
) -> Callable[[int, Progress], None]:
    def feed(fd: int, progress: Progress) -> None:
        # The archive writer's process, run backwards: it checks the archive, then streams
        # the SQL into the tool's stdin, so no decompression holds this process's GIL.
        try:
            archive = ctx.storage.open_sync(key)
        except BaseException:
            os.close(fd)
            raise
        with archive:
            extract_in_process(
                archive.fileno(),
                fd,
                ExtractOptions(
                    expected_sha256=expected_sha256, db_type=db_type, nice=ctx.settings.job_nice
                ),
                on_write=progress.advance,
                launcher=ctx.archivers,
            )
        # A restore tool that stopped reading (it failed) is judged by its exit code.

    return feed


SAFETY_BACKUP_CANCELLED = "restauration supprimée pendant cette sauvegarde préalable"


async def _back_up_target_first(
    ctx: JobContext, job: Job, backup_id: int, target: Record
) -> str | None:
    """Run the backup of a restore's target that the restore asked for; the reason the
    restore must stop there, if that backup did not complete.

    It runs inside the restore's job, so nothing else touches the target in between.
    """
    backup_job = Job(kind=JobKind.BACKUP, id=backup_id, database_id=target.id, user_id=job.user_id)
    try:
        await run_backup(ctx, backup_job)
    except asyncio.CancelledError:
        if job.cancel_reason is CancelReason.DELETED:
            await asyncio.shield(fail_backup(ctx, backup_id, SAFETY_BACKUP_CANCELLED))
        raise
    backup = await ctx.metadata.read(lambda c: backups.get(c, backup_id))
    if backup is not None and backup.status == JobStatus.COMPLETED.value:
        return None
    return (
        f"la sauvegarde préalable de la base cible a échoué (sauvegarde {backup_id}): "
        "restauration annulée, la base cible n'a pas été modifiée"
    )


def _restore_job(
    connection: Connection, restore_id: int
) -> tuple[Record | None, Record | None, Record | None, bool]:
    """The restore record, its backup's, its target's, and whether the target's owner is an
    admin."""
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


async def run_restore(ctx: JobContext, job: Job) -> None:
    restore, backup, target, owner_is_admin = await ctx.metadata.read(
        lambda c: _restore_job(c, job.id)
    )
    if restore is None or restore.status != JobStatus.PENDING.value:
        return
    if backup is None or backup.status != JobStatus.COMPLETED.value:
        await fail_restore(ctx, job.id, "la sauvegarde n'est plus disponible")
        return
    if target is None:
        await fail_restore(ctx, job.id, "la base de données cible a été supprimée")
        return
    await _set_restore(ctx, job.id, started_at=now_utc())
    if restore.safety_backup_id is not None:
        problem = await _back_up_target_first(ctx, job, restore.safety_backup_id, target)
        if problem is not None:
            await fail_restore(ctx, job.id, problem)
            return

    secret = ""
    try:
        dumper = _dumper_for(ctx, target.type)
        conn = await connection_for(ctx, target, owner_is_admin)
        secret = conn.password
        live_secrets.add(secret)
        tools = await tools_for_restore(ctx.pg_clients, dumper, conn, backup.dump_tool_version)
        await _record_server_version(ctx, target, tools)
        dumper = tools.dumper
        tool = Path(dumper.restore_tool).name
        with job_workdir(jobs_root(ctx.settings), f"restore-{job.id}") as workdir:
            command = dumper.restore_command(conn, workdir)
            outcome = await run_tool(
                command,
                worker=_restore_worker(
                    ctx,
                    storage_key(backup.db_type, backup.filename),
                    backup.checksum,
                    backup.db_type,
                ),
                direction="in",
                executor=ctx.executor,
                marker=ctx.marker(job),
                total_timeout=ctx.settings.dump_timeout_seconds,
                idle_timeout=ctx.settings.dump_idle_timeout_seconds,
                stderr_limit=ctx.settings.error_tail_bytes * 2,
                worker_nice=ctx.settings.job_nice,
                tool_nice=ctx.settings.tool_nice,
            )
        if not outcome.ok:
            raise JobFailed(
                describe_failure(
                    outcome,
                    tool,
                    "restauration",
                    ctx.settings,
                    secret,
                    diagnose=dumper.diagnose,
                    detailed=owner_is_admin,
                    private_paths=[str(workdir)],
                )
            )
        await _set_restore(
            ctx, job.id, status=JobStatus.COMPLETED.value, error_msg=None, finished_at=now_utc()
        )
        logger.info("restore %s completed", job.id)
    except asyncio.CancelledError:
        if job.cancel_reason is not CancelReason.DELETED:
            await asyncio.shield(fail_restore(ctx, job.id, SHUTDOWN_RESTORE))
        raise
    except Exception as exc:
        await fail_restore(ctx, job.id, failure_reason(exc, job, "restauration"))
    finally:
        if secret:
            live_secrets.remove(secret)


# ---------------------------------------------------------------------------- dispatch


def job_body(ctx: JobContext) -> Callable[[Job], Awaitable[None]]:
    async def body(job: Job) -> None:
        if job.kind is JobKind.BACKUP:
            await run_backup(ctx, job)
        else:
            await run_restore(ctx, job)

    return body


# ---------------------------------------------------------------------------- recovery


def kill_orphans(marker_suffix: str) -> int:
    """Kill tool processes that a crashed instance with the same backup root left running."""
    killed = 0
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(JOB_MARKER_ENV.encode() + b"=") and item.endswith(
                marker_suffix.encode()
            ):
                try:
                    os.kill(int(entry.name), 9)
                    killed += 1
                except OSError:
                    pass
                break
    return killed


async def recover(ctx: JobContext, runner: Runner) -> None:
    """Called on start: settle what a previous run left unfinished, then resume the queue."""
    killed = await asyncio.get_running_loop().run_in_executor(
        ctx.executor, kill_orphans, ctx.marker_suffix
    )
    if killed:
        logger.warning("killed %d tool process(es) left by a previous run", killed)
    removed = await ctx.storage.cleanup_staged()
    if removed:
        logger.warning("removed %d partial archive(s) left by a previous run", removed)
    cleared = await asyncio.get_running_loop().run_in_executor(
        ctx.executor, clear_job_workdirs, jobs_root(ctx.settings)
    )
    if cleared:
        logger.warning("removed %d job directory(ies) left by a previous run", cleared)
    stamp = now_utc()
    interrupted: tuple[tuple[type[JobRecord], JobKind, str], ...] = (
        (Backup, JobKind.BACKUP, SHUTDOWN_BACKUP),
        (Restore, JobKind.RESTORE, SHUTDOWN_RESTORE),
    )

    def settle(connection: Connection) -> list[tuple[datetime, JobKind, int, int | None, int]]:
        resume: list[tuple[datetime, JobKind, int, int | None, int]] = []
        for model, kind, reason in interrupted:
            for record in job_records.pending(connection, model):
                if record.started_at is None:
                    # Never started: nothing was lost, run it now.
                    resume.append(
                        (record.created_at, kind, record.id, record.database_id, record.user_id)
                    )
                    continue
                values = {**_failed(reason, stamp), "updated_at": stamp.replace(microsecond=0)}
                job_records.update_job(connection, model, record.id, values)
        return resume

    resume = await ctx.metadata.write(settle)
    for _, kind, job_id, database_id, user_id in sorted(
        resume, key=lambda item: (item[0], item[2])
    ):
        runner.submit(kind, job_id, database_id, user_id)
