"""Registered databases: validation beyond the schema, encryption of the password and of
the backups' passphrase."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    UnsupportedDatabaseType,
)
from backup_api.jobs.connection import connection_address
from backup_api.jobs.failures import ConnectionRefused, ServerUnavailable
from backup_api.jobs.queue import JobQueue
from backup_api.models import DatabaseCreate, DatabaseUpdate, utcnow
from backup_api.principals import Principal
from backup_api.repositories import Record, databases, storages, users
from backup_api.security import CredentialError, Keys, decrypt_secret, encrypt_secret
from backup_api.services import serverversions
from backup_api.services.drills import check_scratch_marking
from backup_api.services.ownership import DATABASE
from backup_api.services.serverprobe import ServerProbe
from backup_api.services.storages import check_destinations, check_has_destination

#: Where a database is: changing any of these sends the password somewhere else, so the
#: password must come with the change (the stored one is never sent to a new place).
PLACE_FIELDS = ("type", "host", "port", "username")


class DatabaseView(NamedTuple):
    """A database's record and the storages its backups go to, in order."""

    record: Record
    storage_ids: list[int]


def _check_type(db_type: str) -> None:
    if db_type not in DUMPERS:
        raise UnsupportedDatabaseType(db_type)


def _has_password(keys: Keys, database: Record) -> bool:
    try:
        return bool(decrypt_secret(keys, database.password_encrypted))
    except CredentialError:
        return True  # unreadable, hence not empty: the job will say it cannot decrypt it


async def _check_connection(
    settings: Settings,
    *,
    owner_is_admin: bool,
    db_type: str,
    host: str,
    port: str,
    username: str,
    has_password: bool,
    db_name: str,
) -> tuple[str | None, str | None]:
    """Refuse what the jobs would refuse, as far as can be told now (see
    ``jobs.connection_address``): a server out of reach is accepted, for it may be down.

    The address to connect to, or why the server cannot be reached (one of the two).
    """
    try:
        address = await connection_address(
            settings,
            db_type=db_type,
            host=host,
            port=int(port),
            username=username,
            has_password=has_password,
            db_name=db_name,
            owner_is_admin=owner_is_admin,
            registering=True,
        )
    except ServerUnavailable as exc:
        return None, str(exc)
    except ConnectionRefused as exc:
        if exc.field == "host":
            # A well-formed host that the operator's policy rules out: refused, not invalid.
            raise Forbidden(str(exc)) from None
        if exc.field is None:
            raise BadRequest(str(exc)) from None
        raise BadRequest(f"Données invalides: {exc.field}: {exc}") from None
    return address, None


async def create_database(
    *,
    metadata: Metadata,
    settings: Settings,
    keys: Keys,
    probe: ServerProbe,
    owner: Principal,
    data: DatabaseCreate,
) -> tuple[DatabaseView, str | None]:
    """The new record, and a warning when a backup of it would fail as things stand."""
    _check_type(data.type)
    check_has_destination(data.keep_local, data.storage_ids)
    address, unreachable = await _check_connection(
        settings,
        owner_is_admin=owner.is_admin,
        db_type=data.type,
        host=data.host,
        port=data.port,
        username=data.username,
        has_password=bool(data.password),
        db_name=data.db_name,
    )
    place = {"type": data.type, "host": data.host, "port": data.port, "db_name": data.db_name}
    await check_scratch_marking(metadata, place, data.scratch, data.confirm)
    created = utcnow()
    values: dict[str, Any] = {
        "scratch": data.scratch,
        "name": data.name,
        "type": data.type,
        "host": data.host,
        "port": data.port,
        "username": data.username,
        "password_encrypted": encrypt_secret(keys, data.password),
        "db_name": data.db_name,
        "user_id": owner.id,
        "created_at": created,
        "updated_at": created,
        "keep_local": data.keep_local,
        **encryption.setting_columns(keys, data.encryption),
    }
    # Before the insert: no write lock is held while the server answers (or not).
    values["server_version"], warning = await serverversions.detect(
        probe, values, data.password, address=address, unreachable=unreachable
    )
    storage_ids = data.storage_ids

    def insert(connection: Connection) -> Record:
        # In the unit that inserts: a storage deleted meanwhile is a 404, never dangling.
        check_destinations(connection, owner, owner.id, storage_ids)
        database = databases.insert_database(connection, values)
        storages.set_destinations(connection, database.id, storage_ids)
        return database

    return DatabaseView(await metadata.write(insert), storage_ids), warning


async def view(metadata: Metadata, database: Record) -> DatabaseView:
    database_id: int = database.id
    ids = await metadata.read(lambda c: storages.destination_ids(c, database_id))
    return DatabaseView(database, ids)


async def list_databases(
    *, metadata: Metadata, user: Principal, limit: int, offset: int
) -> list[DatabaseView]:
    """Oldest first: the caller's, or everyone's for an admin."""
    owner_id = None if user.is_admin else user.id

    def read(connection: Connection) -> list[DatabaseView]:
        page = databases.page(connection, owner_id, limit, offset)
        ids = storages.destination_ids_of(connection, (d.id for d in page))
        return [DatabaseView(d, ids[d.id]) for d in page]

    return await metadata.read(read)


async def update_database(
    *,
    metadata: Metadata,
    settings: Settings,
    keys: Keys,
    probe: ServerProbe,
    queue: JobQueue,
    caller: Principal,
    database: Record,
    data: DatabaseUpdate,
) -> tuple[DatabaseView, str | None]:
    """The updated record, and a warning when a backup of it would fail as things stand."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    new_storage_ids: list[int] | None = changes.pop("storage_ids", None)
    confirm: str | None = changes.pop("confirm", None)
    changes.pop("encryption", None)
    if "encryption" in data.model_fields_set:  # null: new backups are no longer encrypted
        changes.update(encryption.setting_columns(keys, data.encryption))
    if "type" in changes:
        _check_type(changes["type"])
    current = database._mapping
    moved = [name for name in PLACE_FIELDS if changes.get(name, current[name]) != current[name]]
    if moved and "password" not in changes:
        raise BadRequest(f"Données invalides: password: requis pour modifier {', '.join(moved)}")
    connection_fields = {"type", "host", "port", "username", "password", "db_name"}
    # The record as it is to be, for the checks and the probe.
    place = {**current, **changes}
    # Only a real change reconnects: the same values sent again leave the record as it is.
    reconnect = any(
        name == "password" or changes[name] != current[name]
        for name in connection_fields & changes.keys()
    )
    address: str | None = None
    unreachable: str | None = None
    owner_id: int = database.user_id
    if reconnect:
        address, unreachable = await _check_connection(
            settings,
            owner_is_admin=await metadata.read(lambda c: users.is_admin(c, owner_id)),
            db_type=place["type"],
            host=place["host"],
            port=place["port"],
            username=place["username"],
            has_password=bool(changes["password"])
            if "password" in changes
            else _has_password(keys, database),
            db_name=place["db_name"],
        )
    scratch = bool(changes.get("scratch", database.scratch))
    replaced = any(place[name] != current[name] for name in ("type", "host", "port", "db_name"))
    if scratch and (not database.scratch or replaced):
        # Newly marked, or moved while marked: confirmed and checked again.
        await check_scratch_marking(metadata, place, scratch, confirm)
    database_id: int = database.id
    if connection_fields & changes.keys() and queue.database_busy(database_id):
        raise Conflict("Une sauvegarde ou restauration de cette base est en cours")
    password = changes.pop("password", None)
    if password is not None:
        changes["password_encrypted"] = encrypt_secret(keys, password)
    warning = None
    if reconnect:
        try:
            if password is None:
                password = decrypt_secret(keys, database.password_encrypted)
        except CredentialError:
            # Undecipherable (the key changed): the jobs will say so; nothing to probe with.
            changes["server_version"] = None
        else:
            changes["server_version"], warning = await serverversions.detect(
                probe, place, password, address=address, unreachable=unreachable
            )
    changes["updated_at"] = utcnow()
    keep_local: bool = changes.get("keep_local", database.keep_local)

    def update(connection: Connection) -> DatabaseView | None:
        if new_storage_ids is None:
            storage_ids = storages.destination_ids(connection, database_id)
        else:
            check_destinations(connection, caller, owner_id, new_storage_ids)
            storage_ids = new_storage_ids
        check_has_destination(keep_local, storage_ids)
        updated = databases.update_database(connection, database_id, changes)
        if updated is None:
            return None
        if new_storage_ids is not None:
            storages.set_destinations(connection, database_id, new_storage_ids)
        return DatabaseView(updated, storage_ids)

    result = await metadata.write(update)
    if result is None:
        raise NotFound(DATABASE.missing)
    return result, warning


async def delete_database(*, metadata: Metadata, queue: JobQueue, database: Record) -> None:
    database_id: int = database.id
    if queue.database_busy(database_id):
        raise Conflict(
            "Impossible de supprimer la base: une sauvegarde ou restauration est en cours"
        )
    await metadata.write(lambda c: databases.delete_database(c, database_id))
