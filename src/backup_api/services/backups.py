"""Backups: creation (then the runner takes over), listing, download, verification, deletion."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.archive import ArchiveError, test_archive
from backup_api.config import Settings
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import Conflict, NotFound, TooManyRequests, UnsupportedDatabaseType
from backup_api.jobs import sha256_of, storage_key
from backup_api.models import (
    Backup,
    BackupPublic,
    Database,
    JobStatus,
    Role,
    User,
    duration_seconds,
    utcnow,
)
from backup_api.runner import CancelReason, JobKind, Runner
from backup_api.storage.base import Storage

MAX_STEM = 80
# One process owns the runner, so one lock makes "pick a free file name, insert" atomic.
_naming_lock = asyncio.Lock()


def safe_stem(db_name: str) -> str:
    """``db_name`` reduced to a file name that cannot leave its directory."""
    normalized = unicodedata.normalize("NFKD", db_name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", normalized).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)[:MAX_STEM].strip("._-")
    return stem or "database"


def to_public(backup: Backup) -> BackupPublic:
    assert backup.id is not None
    # The record is ours and already valid: construct without re-validating (hot path).
    return BackupPublic.model_construct(
        id=backup.id,
        filename=backup.filename,
        filepath=backup.filepath,
        size=backup.size,
        status=JobStatus(backup.status),
        created_at=backup.created_at,
        updated_at=backup.updated_at,
        user_id=backup.user_id,
        database_id=backup.database_id,
        error_msg=backup.error_msg,
        checksum=backup.checksum,
        db_type=backup.db_type,
        dump_size=backup.dump_size,
        started_at=backup.started_at,
        finished_at=backup.finished_at,
        duration_seconds=duration_seconds(backup.started_at, backup.finished_at),
    )


async def _active_for_user(session: AsyncSession, user_id: int) -> int:
    result = await session.exec(
        select(func.count())
        .select_from(Backup)
        .where(Backup.user_id == user_id, Backup.status == JobStatus.PENDING.value)
    )
    return int(result.one())


async def create_backup(
    *, session: AsyncSession, settings: Settings, runner: Runner, user: User, database: Database
) -> Backup:
    if database.type not in DUMPERS:
        raise UnsupportedDatabaseType(database.type)
    assert user.id is not None
    assert database.id is not None
    if await _active_for_user(session, user.id) >= settings.max_active_backups_per_user:
        raise TooManyRequests(
            "Trop de sauvegardes en cours pour cet utilisateur, réessayez plus tard",
            retry_after=30,
        )
    created = utcnow()
    stem = f"{safe_stem(database.db_name)}_{created:%Y%m%d_%H%M%S}"
    root = PurePosixPath(settings.backup_root.as_posix())
    async with _naming_lock:
        taken = set(
            (
                await session.exec(
                    select(Backup.filename).where(
                        Backup.db_type == database.type, col(Backup.filename).startswith(stem)
                    )
                )
            ).all()
        )
        filename = f"{stem}.zip"
        counter = 2
        while filename in taken:
            filename = f"{stem}_{counter}.zip"
            counter += 1
        backup = Backup(
            filename=filename,
            filepath=str(root / storage_key(database.type, filename)),
            size=0,
            status=JobStatus.PENDING.value,
            db_type=database.type,
            db_name=database.db_name,
            user_id=user.id,
            database_id=database.id,
            created_at=created,
            updated_at=created,
        )
        session.add(backup)
        # Committed here, not at the end of the request: the job reads it in its own
        # session, and the name must be taken before the lock is released.
        await session.commit()
    assert backup.id is not None
    runner.submit(JobKind.BACKUP, backup.id, database.id)
    return backup


async def list_backups(
    *,
    session: AsyncSession,
    user: User,
    limit: int,
    offset: int,
    database_id: int | None = None,
) -> list[Backup]:
    query = select(Backup).order_by(col(Backup.id).desc())
    if user.role != Role.ADMIN.value:
        query = query.where(Backup.user_id == user.id)
    if database_id is not None:
        query = query.where(Backup.database_id == database_id)
    result = await session.exec(query.limit(limit).offset(offset))
    return list(result.all())


@dataclass(frozen=True)
class Download:
    filename: str
    size: int
    checksum: str | None
    chunks: AsyncIterator[bytes]


async def open_download(*, storage: Storage, backup: Backup) -> Download:
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    key = storage_key(backup.db_type, backup.filename)
    if not await storage.exists(key):
        raise NotFound("Fichier de sauvegarde introuvable")
    return Download(
        filename=backup.filename,
        size=await storage.size(key),
        checksum=backup.checksum,
        chunks=storage.iter_bytes(key),
    )


@dataclass(frozen=True)
class Verification:
    valid: bool
    checksum_expected: str | None
    checksum_actual: str | None
    error: str | None


async def verify_backup(*, storage: Storage, executor: Executor, backup: Backup) -> Verification:
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    key = storage_key(backup.db_type, backup.filename)
    if not await storage.exists(key):
        return Verification(False, backup.checksum, None, "fichier de sauvegarde introuvable")

    def _verify() -> Verification:
        with storage.open_sync(key) as handle:
            actual = sha256_of(handle)
            if backup.checksum is not None and actual != backup.checksum:
                return Verification(
                    False,
                    backup.checksum,
                    actual,
                    "somme de contrôle différente: l'archive a été modifiée ou corrompue",
                )
            handle.seek(0)
            try:
                test_archive(handle)
            except ArchiveError as exc:
                return Verification(False, backup.checksum, actual, str(exc))
        return Verification(True, backup.checksum, actual, None)

    return await asyncio.get_running_loop().run_in_executor(executor, _verify)


async def delete_backup(
    *, session: AsyncSession, storage: Storage, runner: Runner, backup: Backup
) -> None:
    assert backup.id is not None
    # A running dump is stopped first (its staged file removed), then record and file go.
    await runner.cancel(JobKind.BACKUP, backup.id, CancelReason.DELETED)
    await storage.delete(storage_key(backup.db_type, backup.filename))
    await session.delete(backup)
    await session.flush()
