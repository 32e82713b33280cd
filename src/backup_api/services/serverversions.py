"""What registering a database (or changing its connection) learns from its server.

One connection, made as a backup would (``ServerProbe``): the server's version is kept on
the record, and the registration is answered with a warning when a backup would fail as
things stand: the server could not be reached (with the reason's category; it is
registered all the same, since it may be down for a while), or no installed client can
dump it. The reason is the category alone, for every caller: a registration is not where
a server's own words are read (``POST /api/databases/{id}/test`` is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backup_api.dumpers.base import ConnectionInfo, ServerFacts
from backup_api.dumpers.pgclients import NoCompatibleClient
from backup_api.dumpers.postgresql import PostgreSQLDumper
from backup_api.dumpers.registry import get_dumper
from backup_api.jobs import JobFailed, tool_missing
from backup_api.process import ToolNotFoundError
from backup_api.services.serverprobe import ServerProbe

# A registration waits this long at most for a silent server to connect, and as long for
# its answer (it is accepted anyway).
REGISTRATION_PROBE_SECONDS = 5


def unreachable_warning(reason: str) -> str:
    return (
        f"le serveur n'a pas pu être joint ({reason}): la base est enregistrée, mais ses "
        "sauvegardes échoueront tant que la connexion ne réussit pas"
    )


async def detect(
    probe: ServerProbe,
    database: Mapping[str, Any],
    password: str,
    *,
    address: str | None,
    unreachable: str | None,
) -> tuple[str | None, str | None]:
    """The server's version to store (PostgreSQL's, if it tells), and the warning to
    give, if any.

    ``database``: the record's connection fields (``type``, ``host``, ``port``,
    ``username``, ``db_name``), as they are or are about to be stored. ``address`` is where
    the checks pinned the connection; ``unreachable`` the reason they could not (then
    nothing more is tried).
    """
    version: str | None = None
    dumper = get_dumper(database["type"], probe.settings)
    warnings: list[str] = []
    facts: ServerFacts | None = None
    if unreachable is not None or address is None:
        warnings.append(unreachable_warning(unreachable or ""))
    else:
        timeout = min(probe.settings.connect_timeout_seconds, REGISTRATION_PROBE_SECONDS)
        conn = ConnectionInfo(
            host=database["host"],
            port=int(database["port"]),
            username=database["username"],
            password=password,
            db_name=database["db_name"],
            pinned_address=address,
            connect_timeout=timeout,
        )
        try:
            facts = await probe.facts(
                dumper,
                conn,
                detailed=False,
                label="register",
                query_seconds=REGISTRATION_PROBE_SECONDS,
            )
        except JobFailed as exc:
            warnings.append(unreachable_warning(str(exc)))
        except ToolNotFoundError as exc:
            warnings.append(tool_missing(exc.tool))
    if facts is not None and isinstance(dumper, PostgreSQLDumper):
        version = facts.version
    # PostgreSQL's client depends on the server's version: unknown, nothing to say.
    if facts is not None or not isinstance(dumper, PostgreSQLDumper):
        try:
            await probe.dump_client(dumper, None if facts is None else facts.version)
        except NoCompatibleClient as exc:
            warnings.append(str(exc))
        except ToolNotFoundError as exc:
            warnings.append(tool_missing(exc.tool))
    return version, "; ".join(dict.fromkeys(warnings)) or None
