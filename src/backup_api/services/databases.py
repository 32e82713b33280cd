"""Registered databases: validation beyond the schema, encryption of the password."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.config import Settings
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import BadRequest, Conflict, Forbidden, UnsupportedDatabaseType
from backup_api.jobs.connection import connection_address
from backup_api.jobs.failures import ConnectionRefused, ServerUnavailable
from backup_api.jobs.queue import JobQueue
from backup_api.models import Database, DatabaseCreate, DatabaseUpdate, Role, User, utcnow
from backup_api.principals import Principal
from backup_api.security import CredentialError, Keys, decrypt_secret, encrypt_secret
from backup_api.services import serverversions
from backup_api.services.serverprobe import ServerProbe

#: Where a database is: changing any of these sends the password somewhere else, so the
#: password must come with the change (the stored one is never sent to a new place).
PLACE_FIELDS = ("type", "host", "port", "username")


def _check_type(db_type: str) -> None:
    if db_type not in DUMPERS:
        raise UnsupportedDatabaseType(db_type)


def _has_password(keys: Keys, database: Database) -> bool:
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
    session: AsyncSession,
    settings: Settings,
    keys: Keys,
    probe: ServerProbe,
    owner: Principal,
    data: DatabaseCreate,
) -> tuple[Database, str | None]:
    """The new record, and a warning when a backup of it would fail as things stand."""
    _check_type(data.type)
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
    database = Database(
        name=data.name,
        type=data.type,
        host=data.host,
        port=data.port,
        username=data.username,
        password_encrypted=encrypt_secret(keys, data.password),
        db_name=data.db_name,
        user_id=owner.id,
    )
    # Before the insert: no write lock is held while the server answers (or not).
    warning = await serverversions.detect(
        probe, database, data.password, address=address, unreachable=unreachable
    )
    session.add(database)
    await session.flush()
    return database, warning


async def list_databases(
    *, session: AsyncSession, user: Principal, limit: int, offset: int
) -> list[Database]:
    query = select(Database).order_by(col(Database.id))
    if not user.is_admin:
        query = query.where(Database.user_id == user.id)
    result = await session.exec(query.limit(limit).offset(offset))
    return list(result.all())


async def update_database(
    *,
    session: AsyncSession,
    settings: Settings,
    keys: Keys,
    probe: ServerProbe,
    queue: JobQueue,
    database: Database,
    data: DatabaseUpdate,
) -> tuple[Database, str | None]:
    """The updated record, and a warning when a backup of it would fail as things stand."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "type" in changes:
        _check_type(changes["type"])
    moved = [
        name
        for name in PLACE_FIELDS
        if changes.get(name, getattr(database, name)) != getattr(database, name)
    ]
    if moved and "password" not in changes:
        raise BadRequest(f"Données invalides: password: requis pour modifier {', '.join(moved)}")
    connection_fields = {"type", "host", "port", "username", "password", "db_name"}
    # Only a real change reconnects: the same values sent again leave the record as it is.
    reconnect = any(
        name == "password" or changes[name] != getattr(database, name)
        for name in connection_fields & changes.keys()
    )
    address: str | None = None
    unreachable: str | None = None
    if reconnect:
        owner = await session.get(User, database.user_id)
        address, unreachable = await _check_connection(
            settings,
            owner_is_admin=owner is not None and owner.role == Role.ADMIN.value,
            db_type=changes.get("type", database.type),
            host=changes.get("host", database.host),
            port=changes.get("port", database.port),
            username=changes.get("username", database.username),
            has_password=bool(changes["password"])
            if "password" in changes
            else _has_password(keys, database),
            db_name=changes.get("db_name", database.db_name),
        )
    assert database.id is not None
    if connection_fields & changes.keys() and queue.database_busy(database.id):
        raise Conflict("Une sauvegarde ou restauration de cette base est en cours")
    password = changes.pop("password", None)
    if password is not None:
        database.password_encrypted = encrypt_secret(keys, password)
    for name, value in changes.items():
        setattr(database, name, value)
    warning = None
    if reconnect:
        try:
            if password is None:
                password = decrypt_secret(keys, database.password_encrypted)
        except CredentialError:
            # Undecipherable (the key changed): the jobs will say so; nothing to probe with.
            database.server_version = None
        else:
            warning = await serverversions.detect(
                probe, database, password, address=address, unreachable=unreachable
            )
    database.updated_at = utcnow()
    session.add(database)
    await session.flush()
    return database, warning


async def delete_database(*, session: AsyncSession, queue: JobQueue, database: Database) -> None:
    assert database.id is not None
    if queue.database_busy(database.id):
        raise Conflict(
            "Impossible de supprimer la base: une sauvegarde ou restauration est en cours"
        )
    # Backups stay (their database_id becomes null through the foreign key).
    await session.delete(database)
    await session.flush()
