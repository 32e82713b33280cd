"""Administrative use cases that span several entities."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.jobs.queue import CancelReason, JobKind, JobQueue
from backup_api.models import ApiToken, Backup, Database, Restore, User
from backup_api.principals import PrincipalCache
from backup_api.services.users import forget_principal
from backup_api.storage.base import Storage, storage_key


async def delete_user(
    *,
    session: AsyncSession,
    storage: Storage,
    queue: JobQueue,
    principals: PrincipalCache,
    user: User,
) -> None:
    """Stop the user's jobs, remove their archives, then the account and all its records."""
    restores = (await session.exec(select(Restore).where(Restore.user_id == user.id))).all()
    for restore in restores:
        assert restore.id is not None
        await queue.cancel(JobKind.RESTORE, restore.id, CancelReason.DELETED)
        await session.delete(restore)
    backups = (await session.exec(select(Backup).where(Backup.user_id == user.id))).all()
    for backup in backups:
        assert backup.id is not None
        await queue.cancel(JobKind.BACKUP, backup.id, CancelReason.DELETED)
        await storage.delete(storage_key(backup.db_type, backup.filename))
        await session.delete(backup)
    databases = (await session.exec(select(Database).where(Database.user_id == user.id))).all()
    for database in databases:
        await session.delete(database)
    tokens = (await session.exec(select(ApiToken).where(ApiToken.user_id == user.id))).all()
    for token in tokens:
        await session.delete(token)
    forget_principal(session, principals, user)
    await session.delete(user)
    await session.flush()
