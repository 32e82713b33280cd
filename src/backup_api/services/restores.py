"""Restores: put a completed backup back into a registered database of the same type."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

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
        # The request is well formed; the backup's state (no source left) is what fails it.
        raise Conflict("La base d'origine a été supprimée, indiquez une base cible")
    target = await session.get(Database, target_id)
    if target is None:
        raise NotFound("Base de données cible introuvable")
    ensure_owner(user, target.user_id)
    return target


async def create_restore(
    *, session: AsyncSession, runner: Runner, user: Principal, backup: Backup, target: Database
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
    restore = Restore(
        backup_id=backup.id,
        database_id=target.id,
        status=JobStatus.PENDING.value,
        user_id=user.id,
        created_at=created,
        updated_at=created,
    )
    session.add(restore)
    # The job reads the record in its own session: commit before handing it over.
    await session.commit()
    assert restore.id is not None
    runner.submit(JobKind.RESTORE, restore.id, target.id)
    return restore


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
