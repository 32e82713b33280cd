"""Why a job failed, in French, for its owner: one table from error type to reason.

Errors come from many places (the connection checks, the stored credentials, the dumper
registry, the PostgreSQL client choice, tool supervision, the storage, the archive
process); each type is worded here once. A reason never holds a secret, and for an owner
who is not an admin, nothing of what the peer sent beyond a category (any service on any
port may have answered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import Flag, auto
from typing import NamedTuple

from backup_api.archiving.archive import ArchiveError
from backup_api.config import Settings
from backup_api.dumpers.base import Diagnosis, ToolDiagnosis
from backup_api.dumpers.pgclients import NoCompatibleClient
from backup_api.exceptions import UnsupportedDatabaseType
from backup_api.jobs.queue import Job, JobKind
from backup_api.jobs.supervisor import FailureKind, ProcessOutcome, ToolNotFoundError
from backup_api.redact import scrub
from backup_api.security import CredentialError
from backup_api.storage.base import DISK_FULL, StorageFullError

logger = logging.getLogger("backup_api.jobs")

#: What each kind of job is called in a reason.
ACTIONS: dict[JobKind, str] = {
    JobKind.BACKUP: "sauvegarde",
    JobKind.RESTORE: "restauration",
    JobKind.DRILL: "restauration d'essai",
}
BACKUP_FILE_MISSING = "fichier de sauvegarde introuvable"

#: What the owner of a database reads when a connection failed, unless they are an admin:
#: a category, never what the peer sent nor a local path; a refused and a timed-out
#: connection read the same.
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


class JobError(Exception):
    """A failure whose message is already worded for the owner (and free of secrets)."""


class ConnectionRefused(JobError):
    """A connection the service must not make; ``field`` names the setting at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServerUnavailable(ConnectionRefused):
    """The server cannot be reached now (its name does not resolve, nothing answers): no
    reason to refuse a registration, since it may be down for a while, but one to warn."""


def interrupted(action: str) -> str:
    """The reason of a job that the service's stop (or crash) cut short."""
    return f"le serveur s'est arrêté pendant la {action}"


def internal_error(action: str) -> str:
    return f"erreur interne pendant la {action}"


def metadata_lost(action: str) -> str:
    """The reason of a job whose step failed while the metadata database did not answer."""
    return f"base de données des métadonnées indisponible pendant la {action}"


def _own_message(error: BaseException, action: str) -> str:
    return str(error)


def _archive_io_error(error: BaseException, action: str) -> str:
    strerror = error.strerror if isinstance(error, OSError) else None
    return f"erreur d'écriture de l'archive: {strerror or 'erreur système'}"


def tool_missing(tool: str) -> str:
    return f"{tool} introuvable: outil non installé sur le serveur"


def _tool_missing(error: BaseException, action: str) -> str:
    return tool_missing(error.tool if isinstance(error, ToolNotFoundError) else "outil")


class Where(Flag):
    """Where a job met an error: in its own steps (loading, connecting, choosing and
    starting the tool), or in the archive's I/O (the worker serving the tool's pipe)."""

    JOB_STEP = auto()
    ARCHIVE_IO = auto()
    ANYWHERE = JOB_STEP | ARCHIVE_IO


class Reason(NamedTuple):
    error: type[BaseException]
    reason: Callable[[BaseException, str], str]  # (the error, the job's action) -> French
    where: Where = Where.ANYWHERE


#: Error type -> the owner's reason; the first row that matches wins (so a subclass comes
#: before its base). A system error in the archive's I/O is the archive's; in a job's own
#: steps it is unexpected (a bug, logged with its traceback), as any error not listed.
REASONS: tuple[Reason, ...] = (
    Reason(JobError, _own_message),
    Reason(NoCompatibleClient, _own_message),
    Reason(CredentialError, _own_message),
    Reason(UnsupportedDatabaseType, _own_message),
    Reason(ToolNotFoundError, _tool_missing),
    Reason(StorageFullError, lambda error, action: DISK_FULL),
    Reason(ArchiveError, _own_message, Where.ARCHIVE_IO),
    Reason(FileNotFoundError, lambda error, action: BACKUP_FILE_MISSING, Where.JOB_STEP),
    Reason(OSError, _archive_io_error, Where.ARCHIVE_IO),
)


def reason_for(error: BaseException | None, action: str, where: Where) -> str | None:
    """The owner's reason for ``error`` met ``where``, or None when it is unexpected."""
    for row in REASONS:
        if isinstance(error, row.error) and where in row.where:
            return row.reason(error, action)
    return None


def copy_failure(error: BaseException) -> str:
    """Why one destination of a backup did not receive its copy (its writer's error)."""
    action = ACTIONS[JobKind.BACKUP]
    return reason_for(error, action, Where.ARCHIVE_IO) or internal_error(action)


def failure_reason(error: Exception, job: Job) -> str:
    """The owner-facing reason for a job that raised ``error`` (never its raw text)."""
    action = ACTIONS[job.kind]
    reason = reason_for(error, action, Where.JOB_STEP)
    if reason is None:
        logger.exception("%s %s: unexpected error", job.kind, job.id)
        return internal_error(action)
    return reason


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


#: Why the supervisor stopped a tool -> the head of the reason.
_STOPPED: dict[FailureKind, Callable[[ProcessOutcome, str, str, Settings], str]] = {
    FailureKind.TIMEOUT: lambda outcome, tool, action, settings: (
        f"délai maximal dépassé ({settings.dump_timeout_seconds:g} s): {action} interrompue"
    ),
    FailureKind.CONNECT: lambda outcome, tool, action, settings: (
        f"{tool} a échoué: connexion impossible dans le délai de connexion "
        f"({settings.connect_timeout_seconds} s)"
    ),
    FailureKind.IDLE: lambda outcome, tool, action, settings: (
        f"aucune activité de {tool} depuis {settings.dump_idle_timeout_seconds:g} s "
        f"(délai d'inactivité): {action} interrompue"
    ),
    FailureKind.IO_ERROR: lambda outcome, tool, action, settings: (
        reason_for(outcome.io_error, action, Where.ARCHIVE_IO) or internal_error(action)
    ),
}


def _failure_head(outcome: ProcessOutcome, tool: str, action: str, settings: Settings) -> str:
    if outcome.failure is None:
        return f"{tool} a échoué (code {outcome.returncode})"
    return _STOPPED[outcome.failure](outcome, tool, action, settings)
