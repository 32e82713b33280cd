"""A registered server's version, read when it is registered or its connection changes.

The version is kept on the record, and a registration is answered with a warning when no
installed client could dump that server: the backups would fail until one is installed.
An unreachable server is accepted as before (it may be down for a while); its version
stays unknown until a job reaches it.
"""

from __future__ import annotations

from backup_api.config import Settings
from backup_api.dumpers.pgclients import PgClients
from backup_api.dumpers.pgversions import probe_server_version
from backup_api.jobs.connection import connection_info
from backup_api.models import Database
from backup_api.netpolicy import HostNotAllowedError, UnknownHostError, allowed_addresses

# A registration waits this long at most for a silent server (it is accepted anyway).
REGISTRATION_PROBE_SECONDS = 5


async def detect(
    settings: Settings, clients: PgClients, database: Database, password: str
) -> str | None:
    """Set ``database.server_version``; the warning to give, if any."""
    database.server_version = None
    if database.type != "postgresql":
        return None
    try:
        addresses = await allowed_addresses(
            database.host, int(database.port), settings.allowed_db_hosts
        )
    except (HostNotAllowedError, UnknownHostError):
        return None
    if not addresses:
        return None
    pinned = addresses[0]
    version = await probe_server_version(
        connection_info(settings, database, password, pinned),
        min(settings.connect_timeout_seconds, REGISTRATION_PROBE_SECONDS),
    )
    if version is None:
        return None
    database.server_version = str(version)
    return await clients.dump_warning(version)
