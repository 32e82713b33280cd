"""PostgreSQL versions: of a server (asked over the wire) and of a client tool (its banner).

``pg_dump`` refuses a server of a newer major version than its own, and since the 2025
minor releases its plain dumps hold ``\\restrict`` lines that an older ``psql`` rejects: the
client to run depends on both versions, which this module reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import NamedTuple

import asyncpg

from backup_api.dumpers.base import ConnectionInfo

logger = logging.getLogger("backup_api.pgversions")

# "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "psql (PostgreSQL) 18beta1"
_BANNER = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DOTTED = re.compile(r"^\s*(\d+)(?:\.(\d+))?")


class Version(NamedTuple):
    """A PostgreSQL release: ``major.minor`` (9.6 for the old ``9.6.x`` scheme)."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse_banner(text: str | None) -> Version | None:
    """The version in a ``--version`` line of a PostgreSQL tool, or None."""
    match = _BANNER.search(text or "")
    if match is None:
        return None
    return Version(int(match.group(1)), int(match.group(2) or 0))


def parse_dotted(text: str | None) -> Version | None:
    """A version stored as text (``"18.6"``), or None."""
    match = _DOTTED.match(text or "")
    if match is None:
        return None
    return Version(int(match.group(1)), int(match.group(2) or 0))


def from_version_num(number: int) -> Version:
    """``server_version_num`` (180006, or 90624 before version 10) as a version."""
    if number >= 100000:
        return Version(number // 10000, number % 10000)
    return Version(number // 10000, number // 100 % 100)


async def read_server_version(connection: asyncpg.Connection) -> Version:
    """The version of the server behind an open connection."""
    value = await connection.fetchval("SHOW server_version_num")
    return from_version_num(int(value))


async def probe_server_version(conn: ConnectionInfo, within: float) -> Version | None:
    """Connect as a backup would and read the server's version; None if that fails.

    Failing is not this function's to report: the tool that runs next connects the same
    way, under the job's supervision, and says why in its own words.
    """
    try:
        async with asyncio.timeout(within):
            connection = await asyncpg.connect(
                host=conn.pinned_address or conn.host,
                port=conn.port,
                user=conn.username,
                password=conn.password,
                database=conn.db_name,
                timeout=within,
                server_settings={"application_name": "backup-api"},
            )
            try:
                return await read_server_version(connection)
            finally:
                await connection.close()
    except Exception as exc:
        # The type only: a driver's message may quote what it was given.
        logger.info(
            "server version of %s:%s unknown (%s)", conn.host, conn.port, type(exc).__name__
        )
        return None
