"""Does a database server check the password it is given? The pre-flight for accounts
that must not borrow the service's own network position.

The service connects from its own host: a server that trusts that host (PostgreSQL
``trust`` or ``ident``, a MySQL account without a password, a server run with
``--skip-grant-tables``) would let anyone who registers it in, whatever credentials they
typed. So before a non-admin's connection the server is asked to accept a deliberately
wrong, random password: a server that checks passwords refuses it with an authentication
error; one that lets it in does not check, and is refused.

The probe speaks to one address, the one the tool is then given, so a name that resolves
elsewhere in between cannot swap the checked server for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable
from enum import StrEnum

import asyncpg


class Verdict(StrEnum):
    #: The server refused a wrong password: it authenticates what it is given.
    CHECKED = "checked"
    #: The server let a wrong password in (or asked for no password at all).
    NOT_CHECKED = "not_checked"
    #: No answer that tells: closed, filtered, not a database server, busy.
    UNREACHABLE = "unreachable"


def wrong_password() -> str:
    return "backup-api-probe-" + secrets.token_urlsafe(24)


# ---------------------------------------------------------------------------- PostgreSQL

#: Errors a server returns before authenticating anyone (too many clients, starting up,
#: shutting down, protocol): they say nothing about how it authenticates.
_PG_BEFORE_AUTH = {"53300", "57P03", "57P01", "0A000"}


def _postgresql_verdict(exc: BaseException) -> Verdict:
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        # SQLSTATE class 28: wrong password, no pg_hba.conf entry, role refused.
        return Verdict.CHECKED
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        if sqlstate in _PG_BEFORE_AUTH or sqlstate.startswith("08"):
            return Verdict.UNREACHABLE
        # Anything else (database missing, no CONNECT privilege) comes after the server
        # accepted the wrong password.
        return Verdict.NOT_CHECKED
    if isinstance(exc, asyncpg.InterfaceError) and "authentication" in str(exc).lower():
        # GSSAPI, SSPI, SCM (supported or not): they prove the service's own identity,
        # not the password.
        return Verdict.NOT_CHECKED
    return Verdict.UNREACHABLE


async def probe_postgresql(
    address: str, port: int, username: str, db_name: str, connect_timeout: float
) -> Verdict:
    try:
        connection = await asyncpg.connect(
            host=address,
            port=port,
            user=username,
            password=wrong_password(),
            database=db_name,
            timeout=connect_timeout,
            server_settings={"application_name": "backup-api"},
        )
    except Exception as exc:
        return _postgresql_verdict(exc)
    with contextlib.suppress(Exception):
        await connection.close(timeout=connect_timeout)
    return Verdict.NOT_CHECKED


# ---------------------------------------------------------------------------- MySQL / MariaDB

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_LONG_FLAG = 0x4
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_TRANSACTIONS = 0x2000
_CLIENT_SECURE_CONNECTION = 0x8000
_CLIENT_PLUGIN_AUTH = 0x80000
_MAX_PACKET = 1 << 16
_UTF8MB4 = 45

#: Refusals of the credentials (access denied, password required, host not allowed,
#: account locked, authentication method not supported).
_MYSQL_REFUSED = {1045, 1698, 1130, 1251, 3118, 4151}
#: Errors that only come once the account is authenticated.
_MYSQL_AFTER_AUTH = {1044, 1049, 1862}


class _NotMySQL(Exception):
    pass


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(4)
    length = int.from_bytes(header[:3], "little")
    if length == 0 or length > _MAX_PACKET:
        # A banner such as "SSH-2.0-..." read as a MySQL header claims megabytes.
        raise _NotMySQL
    return header[3], await reader.readexactly(length)


def _packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence & 0xFF]) + payload


def _error_verdict(payload: bytes) -> Verdict:
    code = int.from_bytes(payload[1:3], "little")
    if code in _MYSQL_REFUSED:
        return Verdict.CHECKED
    if code in _MYSQL_AFTER_AUTH:
        return Verdict.NOT_CHECKED
    return Verdict.UNREACHABLE


def _switch_answer(payload: bytes) -> bytes:
    """A wrong answer of the size the requested method expects."""
    plugin = payload[1:].split(b"\0", 1)[0]
    if plugin in (b"mysql_clear_password", b"dialog"):
        return wrong_password().encode() + b"\0"
    if plugin == b"client_ed25519":
        return os.urandom(64)
    if plugin == b"caching_sha2_password":
        return os.urandom(32)
    return os.urandom(20)


async def _mysql_exchange(address: str, port: int, username: str) -> Verdict:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        sequence, greeting = await _read_packet(reader)
        if greeting[0] == 0xFF:
            # Refused before any handshake: this host is not allowed (the tool would be
            # refused too), or the server is busy.
            code = int.from_bytes(greeting[1:3], "little")
            return Verdict.CHECKED if code == 1130 else Verdict.UNREACHABLE
        if greeting[0] != 10:
            raise _NotMySQL
        version_end = greeting.index(b"\0", 1)
        capabilities = int.from_bytes(greeting[version_end + 14 : version_end + 16], "little")
        if len(greeting) > version_end + 19:
            upper = greeting[version_end + 19 : version_end + 21]
            capabilities |= int.from_bytes(upper, "little") << 16
        if not capabilities & _CLIENT_PROTOCOL_41:
            raise _NotMySQL
        flags = (
            _CLIENT_LONG_PASSWORD
            | _CLIENT_LONG_FLAG
            | _CLIENT_PROTOCOL_41
            | _CLIENT_TRANSACTIONS
            | _CLIENT_SECURE_CONNECTION
            | (capabilities & _CLIENT_PLUGIN_AUTH)
        )
        scramble = os.urandom(20)
        response = (
            flags.to_bytes(4, "little")
            + _MAX_PACKET.to_bytes(4, "little")
            + bytes([_UTF8MB4])
            + bytes(23)
            + username.encode() + b"\0"
            + bytes([len(scramble)]) + scramble
        )  # fmt: skip
        if flags & _CLIENT_PLUGIN_AUTH:
            response += b"mysql_native_password\0"
        writer.write(_packet(sequence + 1, response))
        for _ in range(4):
            sequence, reply = await _read_packet(reader)
            if reply[0] == 0x00:
                return Verdict.NOT_CHECKED
            if reply[0] == 0xFF:
                return _error_verdict(reply)
            if reply[0] == 0xFE:
                writer.write(_packet(sequence + 1, _switch_answer(reply)))
            elif reply[0] == 0x01 and reply[1:] == b"\x03":
                continue  # "fast authentication succeeded": the OK packet follows
            elif reply[0] == 0x01:
                # The server wants the full password (over TLS or RSA): it checks it.
                return Verdict.CHECKED
            else:
                raise _NotMySQL
        return Verdict.UNREACHABLE
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def probe_mysql(
    address: str, port: int, username: str, db_name: str, connect_timeout: float
) -> Verdict:
    try:
        async with asyncio.timeout(connect_timeout):
            return await _mysql_exchange(address, port, username)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, _NotMySQL, ValueError):
        return Verdict.UNREACHABLE


# ---------------------------------------------------------------------------- entry points

Probe = Callable[[str, int, str, str, float], Awaitable[Verdict]]

PROBES: dict[str, Probe] = {
    "postgresql": probe_postgresql,
    "mysql": probe_mysql,
}


async def check_server(
    db_type: str,
    addresses: list[str],
    port: int,
    username: str,
    db_name: str,
    connect_timeout: float,
) -> tuple[str, Verdict]:
    """Probe ``addresses`` in order; the first that answers decides, and is the one to use."""
    probe = PROBES[db_type]
    for address in addresses:
        verdict = await probe(address, port, username, db_name, connect_timeout)
        if verdict is not Verdict.UNREACHABLE:
            return address, verdict
    return addresses[0], Verdict.UNREACHABLE


async def first_reachable(addresses: list[str], port: int, connect_timeout: float) -> str:
    """The first address accepting a TCP connection (the first one when none does).

    Only asked when a name has several addresses, as ``localhost`` may (``::1`` and
    ``127.0.0.1``): the tools would try each, and are given exactly one.
    """
    if len(addresses) == 1:
        return addresses[0]
    for address in addresses:
        try:
            async with asyncio.timeout(connect_timeout):
                _, writer = await asyncio.open_connection(address, port)
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return address
    return addresses[0]
