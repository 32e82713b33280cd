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
from backup_api.dumpers.registry import DUMPERS, get_dumper
from backup_api.exceptions import TooManyRequests, UnsupportedDatabaseType
from backup_api.jobs.connection import connection_for, database_owner_is_admin
from backup_api.jobs.failures import JobError, Where, reason_for
from backup_api.jobs.records import record_server_version
from backup_api.jobs.supervisor import ToolNotFoundError
from backup_api.models import ConnectionTestResult, DumpClientPublic
from backup_api.principals import Principal
from backup_api.ratelimit import RateLimiter
from backup_api.repositories import Record
from backup_api.security import CredentialError, Keys
from backup_api.services.serverprobe import ACTION, ServerProbe

THROTTLED = "Trop de tests de connexion pour cet utilisateur, réessayez plus tard"
#: What makes a test fail as the backup would, worded as the job's failure would be.
TEST_FAILURES = (
    JobError,
    CredentialError,
    NoCompatibleClient,
    ToolNotFoundError,
    UnsupportedDatabaseType,
)


async def run_connection_test(
    *,
    metadata: Metadata,
    keys: Keys,
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
        if database.type not in DUMPERS:
            raise UnsupportedDatabaseType(database.type)
        dumper = get_dumper(database.type, probe.settings)
        conn = await connection_for(probe.settings, keys, database, owner_is_admin)
        facts = await probe.facts(
            dumper, conn, detailed=caller.is_admin, label=f"test-{database.id}"
        )
        client = await probe.dump_client(dumper, facts.version)
    except TEST_FAILURES as exc:
        reason = reason_for(exc, ACTION, Where.JOB_STEP)
        assert reason is not None  # each of TEST_FAILURES has its row in the table
        return ConnectionTestResult(ok=False, error=reason)
    if database.type == "postgresql":
        # What a job would record too.
        await record_server_version(metadata, database, facts.version)
    return ConnectionTestResult(
        ok=True,
        server_version=facts.version,
        size_bytes=facts.size_bytes,
        client=DumpClientPublic(path=client.path, version=client.version),
    )
