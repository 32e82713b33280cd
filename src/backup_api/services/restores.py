"""Restores: put a completed backup back into a registered database of the same type."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import BinaryIO

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.archiving.agecrypt import AgeDecryptingReader, AgeError
from backup_api.archiving.protocol import AgeKeys
from backup_api.config import Settings
from backup_api.copies.rules import choose as choose_copy
from backup_api.copies.store import CopyStore, CopyUnavailable
from backup_api.db import Metadata
from backup_api.exceptions import BadRequest, Conflict
from backup_api.jobs.progress import ProgressBoard, live_fields
from backup_api.jobs.queue import CancelReason, JobKind, JobQueue
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import (
    JobPhase,
    JobProgressPublic,
    JobStatus,
    RestoreItem,
    RestorePublic,
    duration_seconds,
    utcnow,
)
from backup_api.principals import Principal
from backup_api.repositories import Record, copies, restores
from backup_api.security import CredentialError, Keys
from backup_api.services.admission import ensure_disk_reserve, ensure_job_slot
from backup_api.services.backups import ensure_archived, insert_backup
from backup_api.services.ownership import RESTORE, TARGET, load_owned
from backup_api.storage.base import Storage

MISSING_TARGET = (
    "Données invalides: database_id: champ requis (la base de données à restaurer, "
    'par exemple {"database_id": 1})'
)


def to_public(restore: Record, progress: ProgressBoard | None = None) -> RestorePublic:
    """The public shape of a record, with its live fields from ``progress`` (none given:
    a pending restore is taken as just queued)."""
    fields = restore._mapping
    phase, live = (
        live_fields(progress, JobKind.RESTORE, fields["id"], fields["status"])
        if progress is not None
        else (JobPhase.QUEUED if fields["status"] == JobStatus.PENDING.value else None, None)
    )
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
        phase=phase,
        progress=None if live is None else JobProgressPublic.model_validate(live),
    )


def overwrites_source(backup: Record, target: Record) -> bool:
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


def _check_confirmation(backup: Record, target: Record, confirm: str | None) -> None:
    if not overwrites_source(backup, target) or confirm == target.db_name:
        return
    expected = json.dumps({"database_id": target.id, "confirm": target.db_name}, ensure_ascii=False)
    # The body is well formed; what refuses it is the target's relation to the backup.
    raise Conflict(
        "La base cible est la base d'origine de cette sauvegarde et sera écrasée; "
        f"pour confirmer, envoyez {expected}"
    )


IDENTITY_REQUIRED = (
    "Données invalides: identity: requise pour cette sauvegarde, chiffrée pour des "
    "destinataires age (la clé secrète AGE-SECRET-KEY-1... de l'un d'eux)"
)
IDENTITY_UNUSED = (
    "Données invalides: identity: inutile, cette sauvegarde n'est pas chiffrée pour des "
    "destinataires age"
)
WRONG_IDENTITY = (
    "Identité age incorrecte: cette clé n'ouvre pas la sauvegarde (aucun de ses "
    "destinataires ne lui correspond); la base cible n'a pas été modifiée"
)
STORED_KEY_MISMATCH = (
    "Phrase secrète incorrecte: celle enregistrée pour cette sauvegarde ne l'ouvre pas; "
    "la base cible n'a pas été modifiée"
)


def _check_keys(handle: BinaryIO, keys: AgeKeys) -> None:
    """Open the age file's header (and its final chunk) with ``keys``; AgeError if not."""
    if keys.passphrase is not None:
        AgeDecryptingReader(handle, passphrase=keys.passphrase).close()
    else:
        AgeDecryptingReader(handle, identities=list(keys.identities)).close()


async def check_encryption(
    *,
    metadata: Metadata,
    settings: Settings,
    keys: Keys,
    copy_store: CopyStore,
    backup: Record,
    identity: str | None,
) -> None:
    """Refuse (400), before anything is queued, a restore whose key does not open the
    backup's file: a missing or wrong identity, a stored passphrase that does not fit.
    The file is the copy a restore would read (a remote one is fetched for it); one that
    cannot be read now, or is damaged, is left to the restore's job to refuse."""
    if not backup.encrypted:
        if identity is not None:
            raise BadRequest(IDENTITY_UNUSED)
        return
    if encryption.needs_identity(backup) != (identity is not None):
        raise BadRequest(IDENTITY_REQUIRED if identity is None else IDENTITY_UNUSED)
    try:
        age_keys = encryption.opening_keys(keys, backup, identity)
    except CredentialError as exc:
        raise Conflict(f"Phrase secrète de la sauvegarde illisible: {exc}") from None
    assert age_keys is not None
    backup_id: int = backup.id
    rows = await metadata.read(lambda c: copies.of_backup(c, backup_id))
    copy = choose_copy(rows, None)
    name = f"restore-check-{backup_id}-{uuid.uuid4().hex}"
    with job_workdir(jobs_root(settings), name) as workdir:
        try:
            handle = await copy_store.open(copy, workdir)
        except CopyUnavailable:
            return
        try:
            await asyncio.to_thread(_check_keys, handle, age_keys)
        except AgeError as exc:
            if str(exc) == AgeError.WRONG_IDENTITY:
                raise BadRequest(WRONG_IDENTITY) from None
            if str(exc) == AgeError.WRONG_PASSPHRASE:
                raise BadRequest(STORED_KEY_MISMATCH) from None
        finally:
            handle.close()


async def create_restore(
    *,
    metadata: Metadata,
    settings: Settings,
    storage: Storage,
    queue: JobQueue,
    user: Principal,
    backup: Record,
    target_id: int,
    copy_store: CopyStore,
    keys: Keys,
    identities: dict[int, str],
    confirm: str | None = None,
    backup_target_first: bool = False,
    identity: str | None = None,
) -> RestorePublic:
    """Record a ``pending`` restore of ``backup`` into the database ``target_id`` (the
    caller's), and, when asked, the backup of the target that it runs first, and hand it
    to the queue. An encrypted backup's key is checked first (``check_encryption``);
    a restore's ``identity`` goes to ``identities`` (memory) for its job alone.

    Shielded like ``create_backup``: once committed, the job is submitted.
    """
    target = await metadata.read(lambda c: load_owned(c, TARGET, target_id, user))
    if target.type != backup.db_type:
        raise BadRequest(
            f"Données invalides: database_id: la base cible est de type {target.type}, "
            f"la sauvegarde de type {backup.db_type}"
        )
    ensure_archived(backup)
    _check_confirmation(backup, target, confirm)
    if queue.database_busy(target_id):
        raise Conflict("Une sauvegarde ou restauration de la base cible est déjà en cours")
    await check_encryption(
        metadata=metadata,
        settings=settings,
        keys=keys,
        copy_store=copy_store,
        backup=backup,
        identity=identity,
    )

    if backup_target_first:
        await ensure_disk_reserve(storage, settings)

    def record(connection: Connection) -> Record:
        # Counted and inserted in one exclusive unit, as backups are: concurrent requests
        # cannot both take a user's last place.
        ensure_job_slot(connection, settings, user.id)
        safety_backup_id = None
        if backup_target_first:
            # The restore job runs this backup before anything else (see jobs.restore).
            safety_backup_id = insert_backup(connection, settings, user, target_id).id
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
        return restores.insert_restore(connection, values)

    async def record_and_submit() -> Record:
        row = await metadata.write(record, exclusive=True)
        if identity is not None:
            identities[row.id] = identity
        queue.submit(JobKind.RESTORE, row.id, target_id, user.id)
        return row

    return to_public(await asyncio.shield(record_and_submit()))


async def restore_document(
    *, metadata: Metadata, user: Principal, restore_id: int, progress: ProgressBoard
) -> tuple[bytes, str]:
    """The document of ``GET /api/restores/{id}`` (``{"restore": {...}}``) and the
    restore's status."""
    row = await metadata.read(lambda c: load_owned(c, RESTORE, restore_id, user))
    document = RestoreItem(restore=to_public(row, progress)).model_dump_json().encode()
    return document, row.status


async def list_restores(
    *, metadata: Metadata, user: Principal, limit: int, offset: int, progress: ProgressBoard
) -> list[RestorePublic]:
    """Newest first: the caller's, or everyone's for an admin."""
    owner_id = None if user.is_admin else user.id
    rows = await metadata.read(lambda c: restores.page(c, owner_id, limit, offset))
    return [to_public(row, progress) for row in rows]


async def delete_restore(
    *, metadata: Metadata, queue: JobQueue, restore: Record, identities: dict[int, str]
) -> None:
    """Stop a queued or running restore (its transaction rolls back), then drop the record
    (and the identity it brought, if its job had not taken it yet)."""
    restore_id: int = restore.id
    identities.pop(restore_id, None)
    await queue.cancel(JobKind.RESTORE, restore_id, CancelReason.DELETED)
    await metadata.write(lambda c: restores.delete_restore(c, restore_id))
