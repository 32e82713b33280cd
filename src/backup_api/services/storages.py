"""Storages (off-site destinations): validation beyond the schema, encryption of the
secret key, deletion's conditions, the destinations a database names, and the test."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from backup_api.db import Metadata
from backup_api.exceptions import BadRequest, Conflict, NotFound
from backup_api.models import StorageCreate, StorageUpdate, utcnow
from backup_api.principals import Principal
from backup_api.repositories import Record, storages
from backup_api.security import Keys, encrypt_secret
from backup_api.services.ownership import STORAGE, load_owned

#: Where a storage is: changing either sends the stored secret somewhere else, so the
#: secret must come with the change.
PLACE_FIELDS = ("endpoint", "bucket")
IN_USE = "Impossible de supprimer le stockage: des bases de données y envoient leurs sauvegardes"
HOLDS_COPIES = "Impossible de supprimer le stockage: il contient encore des sauvegardes"
WRITING = "Impossible de supprimer le stockage: une sauvegarde y écrit en ce moment"
NO_DESTINATION = (
    "Données invalides: keep_local: une sauvegarde doit avoir au moins une destination "
    "(keep_local ou storage_ids)"
)


async def create_storage(
    *, metadata: Metadata, keys: Keys, owner: Principal, data: StorageCreate
) -> Record:
    created = utcnow()
    values: dict[str, Any] = data.model_dump(exclude={"secret_access_key"})
    values.update(
        secret_encrypted=encrypt_secret(keys, data.secret_access_key),
        user_id=owner.id,
        created_at=created,
        updated_at=created,
    )
    return await metadata.write(lambda c: storages.insert_storage(c, values))


async def list_storages(
    *, metadata: Metadata, user: Principal, limit: int, offset: int
) -> list[Record]:
    """Oldest first: the caller's, or everyone's for an admin."""
    owner_id = None if user.is_admin else user.id
    return await metadata.read(lambda c: storages.page(c, owner_id, limit, offset))


async def update_storage(
    *, metadata: Metadata, keys: Keys, storage: Record, data: StorageUpdate
) -> Record:
    # Only object_lock_days may be null (no lock): the model refuses every other null.
    changes = data.model_dump(exclude_unset=True)
    current = storage._mapping
    moved = [name for name in PLACE_FIELDS if changes.get(name, current[name]) != current[name]]
    if moved and "secret_access_key" not in changes:
        raise BadRequest(
            f"Données invalides: secret_access_key: requis pour modifier {', '.join(moved)}"
        )
    if "secret_access_key" in changes:
        changes["secret_encrypted"] = encrypt_secret(keys, changes.pop("secret_access_key"))
    changes["updated_at"] = utcnow()
    storage_id: int = storage.id
    updated = await metadata.write(lambda c: storages.update_storage(c, storage_id, changes))
    if updated is None:
        raise NotFound(STORAGE.missing)
    return updated


def _delete(connection: Connection, storage_id: int) -> None:
    users = storages.databases_using(connection, storage_id)
    if users:
        raise Conflict(f"{IN_USE} ({', '.join(users)}); retirez-le de leurs destinations")
    if storages.copies_being_written(connection, storage_id):
        raise Conflict(WRITING)
    held = storages.held_copies(connection, storage_id)
    if held:
        raise Conflict(f"{HOLDS_COPIES} ({held} copies); supprimez ces sauvegardes d'abord")
    storages.delete_storage(connection, storage_id)


async def delete_storage(*, metadata: Metadata, storage: Record) -> None:
    storage_id: int = storage.id
    try:
        await metadata.write(lambda c: _delete(c, storage_id))
    except IntegrityError:
        # A database named it between the check and the delete (the foreign key refused).
        raise Conflict(IN_USE) from None


def check_destinations(
    connection: Connection, caller: Principal, owner_id: int, storage_ids: list[int]
) -> None:
    """Each storage exists (404) and the caller may reach it (403); and it is the
    database owner's, for an admin naming storages for someone else's database (400):
    a database's backups only go where its owner sends them."""
    for storage_id in storage_ids:
        storage = load_owned(connection, STORAGE, storage_id, caller)
        if storage.user_id != owner_id:
            raise BadRequest(
                f"Données invalides: storage_ids: le stockage {storage_id} n'appartient pas "
                "au propriétaire de la base"
            )


def check_has_destination(keep_local: bool, storage_ids: list[int]) -> None:
    if not keep_local and not storage_ids:
        raise BadRequest(NO_DESTINATION)
