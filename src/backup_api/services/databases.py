"""Registered databases: validation beyond the schema, encryption of the password."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.config import Settings
from backup_api.dumpers.pgclients import PgClients
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import Conflict, Forbidden, UnsupportedDatabaseType
from backup_api.models import Database, DatabaseCreate, DatabaseUpdate, utcnow
from backup_api.netpolicy import HostNotAllowedError, pin_allowed_address
from backup_api.principals import Principal
from backup_api.runner import Runner
from backup_api.security import CredentialError, Keys, decrypt_secret, encrypt_secret
from backup_api.services import serverversions


def _check_type(db_type: str) -> None:
    if db_type not in DUMPERS:
        raise UnsupportedDatabaseType(db_type)


async def _check_host(settings: Settings, host: str, port: str) -> None:
    try:
        await pin_allowed_address(host, int(port), settings.allowed_db_hosts)
    except HostNotAllowedError as exc:
        # A well-formed host that the operator's policy rules out: refused, not invalid.
        raise Forbidden(str(exc)) from None


async def create_database(
    *,
    session: AsyncSession,
    settings: Settings,
    keys: Keys,
    clients: PgClients,
    owner: Principal,
    data: DatabaseCreate,
) -> tuple[Database, str | None]:
    """The new record, and a warning when no installed client can back it up."""
    _check_type(data.type)
    await _check_host(settings, data.host, data.port)
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
    warning = await serverversions.detect(settings, clients, database, data.password)
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
    clients: PgClients,
    runner: Runner,
    database: Database,
    data: DatabaseUpdate,
) -> tuple[Database, str | None]:
    """The updated record, and a warning when no installed client can back it up."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "type" in changes:
        _check_type(changes["type"])
    if {"host", "port"} & changes.keys():
        await _check_host(
            settings, changes.get("host", database.host), changes.get("port", database.port)
        )
    assert database.id is not None
    connection_fields = {"type", "host", "port", "username", "password", "db_name"}
    if connection_fields & changes.keys() and runner.database_busy(database.id):
        raise Conflict("Une sauvegarde ou restauration de cette base est en cours")
    reconnect = bool(connection_fields & changes.keys())
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
            warning = await serverversions.detect(settings, clients, database, password)
    database.updated_at = utcnow()
    session.add(database)
    await session.flush()
    return database, warning


async def delete_database(*, session: AsyncSession, runner: Runner, database: Database) -> None:
    assert database.id is not None
    if runner.database_busy(database.id):
        raise Conflict(
            "Impossible de supprimer la base: une sauvegarde ou restauration est en cours"
        )
    # Backups stay (their database_id becomes null through the foreign key).
    await session.delete(database)
    await session.flush()
