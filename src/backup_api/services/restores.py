"""Restores: put a completed backup back into a registered database of the same type."""

from __future__ import annotations

import asyncio

from sqlalchemy import Connection, RowMapping, func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.config import Settings
from backup_api.db import TransactionRunner
from backup_api.exceptions import BadRequest, Conflict, NotFound
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
from backup_api.runner import CancelReason, JobKind, Runner
from backup_api.services.admission import ensure_job_slot

_INSERT = insert(Restore.__table__).returning(*Restore.__table__.c)  # type: ignore[attr-defined]


def to_public(restore: Restore) -> RestorePublic:
    assert restore.id is not None
    return RestorePublic(
        id=restore.id,
        backup_id=restore.backup_id,
        database_id=restore.database_id,
        status=JobStatus(restore.status),
        error_msg=restore.error_msg,
        created_at=restore.created_at,
        updated_at=restore.updated_at,
        user_id=restore.user_id,
        started_at=restore.started_at,
        finished_at=restore.finished_at,
        duration_seconds=duration_seconds(restore.started_at, restore.finished_at),
    )


async def load_target(
    *, session: AsyncSession, user: Principal, backup: Backup, database_id: int | None
) -> Database:
    """The target database: the backup's own by default; it must be the caller's."""
    target_id = database_id if database_id is not None else backup.database_id
    if target_id is None:
        raise BadRequest(
            "Données invalides: database_id: la base d'origine a été supprimée, "
            "indiquez une base cible"
        )
    target = await session.get(Database, target_id)
    if target is None:
        raise NotFound("Base de données cible introuvable")
    ensure_owner(user, target.user_id)
    return target


async def create_restore(
    *,
    transactions: TransactionRunner,
    settings: Settings,
    runner: Runner,
    user: Principal,
    backup: Backup,
    target: Database,
) -> Restore:
    if target.type != backup.db_type:
        raise BadRequest(
            f"Données invalides: database_id: la base cible est de type {target.type}, "
            f"la sauvegarde de type {backup.db_type}"
        )
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    assert target.id is not None
    assert user.id is not None
    if runner.database_busy(target.id):
        raise Conflict("Une sauvegarde ou restauration de la base cible est déjà en cours")
    created = utcnow()
    values = {
        "backup_id": backup.id,
        "database_id": target.id,
        "status": JobStatus.PENDING.value,
        "user_id": user.id,
        "created_at": created,
        "updated_at": created,
    }

    def insert_restore(connection: Connection) -> RowMapping:
        # Counted and inserted in one exclusive unit, as backups are: concurrent requests
        # cannot both take a user's last place.
        ensure_job_slot(connection, settings, user.id)
        return connection.execute(_INSERT, values).mappings().one()

    async def record_and_submit() -> RowMapping:
        # Committed before the job reads it; submitted even if the request is cancelled.
        row = await transactions.run(insert_restore, exclusive=True)
        runner.submit(JobKind.RESTORE, row["id"], target.id, user.id)
        return row

    row = await asyncio.shield(record_and_submit())
    return Restore(**row)


async def list_restores(
    *, session: AsyncSession, user: Principal, limit: int, offset: int
) -> list[Restore]:
    query = select(Restore).order_by(col(Restore.id).desc())
    if not user.is_admin:
        query = query.where(Restore.user_id == user.id)
    result = await session.exec(query.limit(limit).offset(offset))
    return list(result.all())


async def delete_restore(*, session: AsyncSession, runner: Runner, restore: Restore) -> None:
    """Stop a queued or running restore (its transaction rolls back), then drop the record."""
    assert restore.id is not None
    await runner.cancel(JobKind.RESTORE, restore.id, CancelReason.DELETED)
    await session.delete(restore)
    await session.flush()


async def backup_in_use(session: AsyncSession, backup_id: int) -> bool:
    result = await session.exec(
        select(func.count())
        .select_from(Restore)
        .where(Restore.backup_id == backup_id, Restore.status == JobStatus.PENDING.value)
    )
    return int(result.one()) > 0
