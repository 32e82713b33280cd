"""Administrative use cases that span several entities."""

from __future__ import annotations

from sqlalchemy import Connection

from backup_api.db import Metadata
from backup_api.jobs import storage_key
from backup_api.principals import PrincipalCache
from backup_api.repositories import Record, api_tokens, backups, databases, restores, users
from backup_api.runner import CancelReason, JobKind, Runner
from backup_api.services.users import changing_principal
from backup_api.storage.base import Storage


async def delete_user(
    *,
    metadata: Metadata,
    storage: Storage,
    runner: Runner,
    principals: PrincipalCache,
    user: Record,
) -> None:
    """Stop the user's jobs, remove their archives, then the account and all its records."""
    user_id: int = user.id

    def jobs_of_user(connection: Connection) -> tuple[list[int], list[Record]]:
        return restores.ids_of_user(connection, user_id), backups.files_of_user(connection, user_id)

    restore_ids, files = await metadata.read(jobs_of_user)
    for restore_id in restore_ids:
        await runner.cancel(JobKind.RESTORE, restore_id, CancelReason.DELETED)
    for backup in files:
        await runner.cancel(JobKind.BACKUP, backup.id, CancelReason.DELETED)
        await storage.delete(storage_key(backup.db_type, backup.filename))

    def delete_all(connection: Connection) -> None:
        restores.delete_of_user(connection, user_id)
        backups.delete_of_user(connection, user_id)
        databases.delete_of_user(connection, user_id)
        api_tokens.delete_of_user(connection, user_id)
        users.delete_user(connection, user_id)

    await changing_principal(metadata, principals, user_id, delete_all)
