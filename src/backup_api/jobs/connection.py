"""The checks every connection to a registered database passes, and the connection a job
is then given: the host resolved once, its addresses allowed, and for an owner who is not
an admin, a server that really checks the password at the very address the tool uses."""

from __future__ import annotations

from sqlalchemy import Connection

from backup_api.authcheck import Verdict, check_server, first_reachable
from backup_api.config import Settings
from backup_api.dumpers.base import ConnectionInfo, Diagnosis
from backup_api.jobs.failures import (
    CONNECTION_REASONS,
    CREDENTIALS_REQUIRED,
    UNCHECKED_SERVER,
    ConnectionRefused,
    ServerUnavailable,
)
from backup_api.netpolicy import HostNotAllowedError, UnknownHostError, allowed_addresses
from backup_api.repositories import Record, users
from backup_api.security import Keys, decrypt_secret


def must_prove_credentials(settings: Settings, owner_is_admin: bool) -> bool:
    """Whether the owner may only reach servers that check the password they supplied."""
    return not owner_is_admin and not settings.unsafe_allow_unauthenticated_db_for_all_users


async def connection_address(
    settings: Settings,
    *,
    db_type: str,
    host: str,
    port: int,
    username: str,
    has_password: bool,
    db_name: str,
    owner_is_admin: bool,
    registering: bool = False,
) -> str:
    """Every check a connection needs, and the one address the tool is then given.

    The host is resolved once; its addresses are checked (allow-list, link-local and
    friends); for a non-admin owner the server must refuse a wrong password at the very
    address returned. Raises ``ConnectionRefused``, or its ``ServerUnavailable`` when a
    name that no allow-list needs to check does not resolve, or nothing answers the
    pre-flight (a registration accepts those: the server may be down for a while, and
    every job checks again). ``registering`` spares an admin's registration the search
    for a reachable address among several.
    """
    prove = must_prove_credentials(settings, owner_is_admin)
    if prove and not has_password:
        raise ConnectionRefused(CREDENTIALS_REQUIRED, "password")
    try:
        addresses = await allowed_addresses(host, port, settings.allowed_db_hosts)
    except UnknownHostError as exc:
        if not settings.allowed_db_hosts:
            raise ServerUnavailable(str(exc), "host") from None
        raise ConnectionRefused(str(exc), "host") from None
    except HostNotAllowedError as exc:
        raise ConnectionRefused(str(exc), "host") from None
    timeout = settings.connect_timeout_seconds
    if not prove:
        return addresses[0] if registering else await first_reachable(addresses, port, timeout)
    address, verdict = await check_server(db_type, addresses, port, username, db_name, timeout)
    if verdict is Verdict.NOT_CHECKED:
        raise ConnectionRefused(UNCHECKED_SERVER)
    if verdict is Verdict.UNREACHABLE:
        raise ServerUnavailable(CONNECTION_REASONS[Diagnosis.UNREACHABLE])
    return address


def database_owner_is_admin(connection: Connection, database: Record | None) -> bool:
    """Whether the owner of ``database`` is an admin (the connection rules depend on it);
    a read for a ``Metadata`` unit."""
    return database is not None and users.is_admin(connection, database.user_id)


async def connection_for(
    settings: Settings, keys: Keys, database: Record, owner_is_admin: bool
) -> ConnectionInfo:
    """What a job's tool connects with: ``CredentialError`` if the stored password cannot
    be read, ``ConnectionRefused`` as ``connection_address`` says."""
    password = decrypt_secret(keys, database.password_encrypted)
    address = await connection_address(
        settings,
        db_type=database.type,
        host=database.host,
        port=int(database.port),
        username=database.username,
        has_password=bool(password),
        db_name=database.db_name,
        owner_is_admin=owner_is_admin,
    )
    return connection_info(settings, database, password, address)


def connection_info(
    settings: Settings, database: Record, password: str, address: str | None
) -> ConnectionInfo:
    """What a tool connects to ``database`` with, pinned to ``address``."""
    return ConnectionInfo(
        host=database.host,
        port=int(database.port),
        username=database.username,
        password=password,
        db_name=database.db_name,
        pinned_address=address,
        connect_timeout=settings.connect_timeout_seconds,
    )
