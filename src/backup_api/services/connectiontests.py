"""``POST /api/databases/{id}/test``: connect to a registered database as its next backup
would, and say what was found or why that backup would fail.

Every rule of a backup applies, with the owner's role as at job time: the allow-list and
special addresses, the password a non-admin must supply and the server must check (the
wrong-password pre-flight), the one pinned address. The caller reads a failure's category
only, unless they are an admin; never the password. Each test makes the service connect
where the database points: a user gets a limited number per window.
"""

from __future__ import annotations

from backup_api.db import Metadata
from backup_api.dumpers.pgclients import NoCompatibleClient
from backup_api.dumpers.registry import UnknownDatabaseType, get_dumper
from backup_api.exceptions import TooManyRequests
from backup_api.jobs import (
    JobContext,
    JobFailed,
    connection_for,
    database_owner_is_admin,
    record_server_version,
    tool_missing,
)
from backup_api.models import ConnectionTestResult, DumpClientPublic
from backup_api.principals import Principal
from backup_api.process import ToolNotFoundError
from backup_api.ratelimit import RateLimiter
from backup_api.repositories import Record
from backup_api.services.serverprobe import ServerProbe

THROTTLED = "Trop de tests de connexion pour cet utilisateur, réessayez plus tard"


async def run_connection_test(
    *,
    metadata: Metadata,
    jobs: JobContext,
    probe: ServerProbe,
    limiter: RateLimiter,
    caller: Principal,
    database: Record,
) -> ConnectionTestResult:
    wait = limiter.acquire(caller.id)
    if wait:
        raise TooManyRequests(THROTTLED, retry_after=wait)
    # Read in a unit of its own: no transaction stays open while the server answers.
    owner_is_admin = await metadata.read(lambda c: database_owner_is_admin(c, database))
    try:
        dumper = get_dumper(database.type, jobs.settings)
    except UnknownDatabaseType:
        return ConnectionTestResult(
            ok=False, error=f"type de base de données non supporté: {database.type}"
        )
    try:
        conn = await connection_for(jobs, database, owner_is_admin)
        facts = await probe.facts(
            dumper, conn, detailed=caller.is_admin, label=f"test-{database.id}"
        )
        client = await probe.dump_client(dumper, facts.version)
    except (JobFailed, NoCompatibleClient) as exc:
        return ConnectionTestResult(ok=False, error=str(exc))
    except ToolNotFoundError as exc:
        return ConnectionTestResult(ok=False, error=tool_missing(exc.tool))
    if database.type == "postgresql":
        # What a job would record too.
        await record_server_version(metadata, database, facts.version)
    return ConnectionTestResult(
        ok=True,
        server_version=facts.version,
        size_bytes=facts.size_bytes,
        client=DumpClientPublic(path=client.path, version=client.version),
    )
