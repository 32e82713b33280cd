"""Restores: put a completed backup back into a registered database of the same type."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import Connection, RowMapping, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.config import Settings
from backup_api.db import TransactionRunner, record_fields
from backup_api.exceptions import BadRequest, Conflict, NotFound
from backup_api.jobs.queue import CancelReason, JobKind, JobQueue
from backup_api.models import (
    Backup,
    Database,
    JobStatus,
    Restore,
    RestorePublic,
    duration_seconds,
    utcnow,
)
from backup_api.principals import Principal, ensure_owner
from backup_api.services.admission import ensure_disk_reserve, ensure_job_slot
from backup_api.services.backups import insert_backup
from backup_api.storage.base import Storage

MISSING_TARGET = (
    "Données invalides: database_id: champ requis (la base de données à restaurer, "
    'par exemple {"database_id": 1})'
)

_RESTORES = Restore.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(_RESTORES.columns.keys())
_INSERT = insert(_RESTORES).returning(*_RESTORES.c)


def to_public(restore: Restore | RowMapping) -> RestorePublic:
    """The public shape of a record, from the ORM object or a Core row alike."""
    fields = record_fields(restore, _COLUMNS)
    return RestorePublic(
        id=fields["id"],
        backup_id=fields["backup_id"],
        database_id=fields["database_id"],
        status=JobStatus(fields["status"]),
        error_msg=fields["error_msg"],
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
        user_id=fields["user_id"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        duration_seconds=duration_seconds(fields["started_at"], fields["finished_at"]),
        safety_backup_id=fields["safety_backup_id"],
    )


async def load_target(*, session: AsyncSession, user: Principal, database_id: int) -> Database:
    """The target database, named by the request; it must be the caller's."""
    target = await session.get(Database, database_id)
    if target is None:
        raise NotFound("Base de données cible introuvable")
    ensure_owner(user, target.user_id)
    return target


def overwrites_source(backup: Backup, target: Database) -> bool:
    """Whether restoring ``backup`` into ``target`` writes over the database it came from:
    the same registration, or another one of the same database on the same server."""
    if backup.database_id is not None and backup.database_id == target.id:
        return True
    return backup.db_host is not None and (
        backup.db_type,
        backup.db_host,
        backup.db_port,
        backup.db_name,
    ) == (target.type, target.host, target.port, target.db_name)


def _check_confirmation(backup: Backup, target: Database, confirm: str | None) -> None:
    if not overwrites_source(backup, target) or confirm == target.db_name:
        return
    expected = json.dumps({"database_id": target.id, "confirm": target.db_name}, ensure_ascii=False)
    # The body is well formed; what refuses it is the target's relation to the backup.
    raise Conflict(
        "La base cible est la base d'origine de cette sauvegarde et sera écrasée; "
        f"pour confirmer, envoyez {expected}"
    )


async def create_restore(
    *,
    transactions: TransactionRunner,
    settings: Settings,
    storage: Storage,
    queue: JobQueue,
    user: Principal,
    backup: Backup,
    target: Database,
    confirm: str | None = None,
    backup_target_first: bool = False,
) -> RestorePublic:
    """Record a ``pending`` restore (and, when asked, the backup of the target that it
    runs first) and hand it to the job queue.

    Shielded like ``create_backup``: once committed, the job is submitted.
    """
    if target.type != backup.db_type:
        raise BadRequest(
            f"Données invalides: database_id: la base cible est de type {target.type}, "
            f"la sauvegarde de type {backup.db_type}"
        )
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    _check_confirmation(backup, target, confirm)
    assert target.id is not None
    target_id = target.id
    if queue.database_busy(target_id):
        raise Conflict("Une sauvegarde ou restauration de la base cible est déjà en cours")

    if backup_target_first:
        await ensure_disk_reserve(storage, settings)

    def record(connection: Connection) -> RowMapping:
        # Counted and inserted in one exclusive unit, as backups are: concurrent requests
        # cannot both take a user's last place.
        ensure_job_slot(connection, settings, user.id)
        safety_backup_id = None
        if backup_target_first:
            # The restore job runs this backup before anything else (see jobs.restore).
            safety_backup_id = insert_backup(connection, settings, user, target_id)["id"]
        created = utcnow()
        values = {
            "backup_id": backup.id,
            "database_id": target_id,
            "status": JobStatus.PENDING.value,
            "user_id": user.id,
            "safety_backup_id": safety_backup_id,
            "created_at": created,
            "updated_at": created,
        }
        return connection.execute(_INSERT, values).mappings().one()

    async def record_and_submit() -> RowMapping:
        row = await transactions.run(record, exclusive=True)
        queue.submit(JobKind.RESTORE, row["id"], target_id, user.id)
        return row

    return to_public(await asyncio.shield(record_and_submit()))


async def list_restores(
    *, session: AsyncSession, user: Principal, limit: int, offset: int
) -> list[Restore]:
    query = select(Restore).order_by(col(Restore.id).desc())
    if not user.is_admin:
        query = query.where(Restore.user_id == user.id)
    result = await session.exec(query.limit(limit).offset(offset))
    return list(result.all())


async def delete_restore(*, session: AsyncSession, queue: JobQueue, restore: Restore) -> None:
    """Stop a queued or running restore (its transaction rolls back), then drop the record."""
    assert restore.id is not None
    await queue.cancel(JobKind.RESTORE, restore.id, CancelReason.DELETED)
    await session.delete(restore)
    await session.flush()
