"""A registered server's version, read when it is registered or its connection changes.

The version is kept on the record, and a registration is answered with a warning when no
installed client could dump that server: the backups would fail until one is installed.
An unreachable server is accepted as before (it may be down for a while); its version
stays unknown until a job reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backup_api.config import Settings
from backup_api.dumpers.base import ConnectionInfo
from backup_api.dumpers.pgclients import PgClients
from backup_api.dumpers.pgversions import probe_server_version
from backup_api.netpolicy import HostNotAllowedError, UnknownHostError, allowed_addresses

# A registration waits this long at most for a silent server (it is accepted anyway).
REGISTRATION_PROBE_SECONDS = 5


async def detect(
    settings: Settings, clients: PgClients, database: Mapping[str, Any], password: str
) -> tuple[str | None, str | None]:
    """The server's version, if it tells, and the warning to give, if any.

    ``database``: the record's connection fields (``type``, ``host``, ``port``,
    ``username``, ``db_name``), as they are or are about to be stored.
    """
    if database["type"] != "postgresql":
        return None, None
    try:
        addresses = await allowed_addresses(
            database["host"], int(database["port"]), settings.allowed_db_hosts
        )
    except (HostNotAllowedError, UnknownHostError):
        return None, None
    if not addresses:
        return None, None
    pinned = addresses[0]
    version = await probe_server_version(
        ConnectionInfo(
            host=database["host"],
            port=int(database["port"]),
            username=database["username"],
            password=password,
            db_name=database["db_name"],
            pinned_address=pinned,
            connect_timeout=settings.connect_timeout_seconds,
        ),
        min(settings.connect_timeout_seconds, REGISTRATION_PROBE_SECONDS),
    )
    if version is None:
        return None, None
    return str(version), await clients.dump_warning(version)
