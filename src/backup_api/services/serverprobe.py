"""A connection made as a backup would, and what it finds: the server's version, the
database's size, and the dump client a backup of it would run.

The connection is made by the engine's own client (``psql``, ``mysql``) with the jobs'
handling of credentials (a descriptor, never argv or a file), the address the checks
pinned, and for MySQL the plugin directory without cleartext methods: it succeeds or
fails as the dump's would, and a failure reads as a job's does (``describe_failure``, the
category alone unless ``detailed``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from backup_api.config import Settings
from backup_api.dumpers.base import ConnectionInfo, Dumper, ServerFacts
from backup_api.dumpers.pgclients import NoCompatibleClient, PgClients
from backup_api.dumpers.pgversions import parse_dotted
from backup_api.dumpers.postgresql import PostgreSQLDumper
from backup_api.jobs import markers
from backup_api.jobs.failures import JobError, describe_failure
from backup_api.jobs.supervisor import Progress, ToolNotFoundError, run_tool
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.toolversions import ToolVersions

ACTION = "vérification de la connexion"
UNEXPECTED_ANSWER = f"réponse inattendue du serveur pendant la {ACTION}"
#: How long the query may take once connected (the connect timeout comes on top).
QUERY_SECONDS = 30
#: How long the estimate's query may take once connected: past that, it is not worth it.
ESTIMATE_SECONDS = 10
#: The client's answer is two short fields: more is not what was asked for.
_MAX_ANSWER = 4096

# "mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)", or
# MySQL 8's "mysqldump  Ver 8.0.36 for Linux on x86_64 (...)".
_MYSQL_BANNERS = (re.compile(r"Distrib ([^\s,]+)"), re.compile(r"Ver ([^\s,]+)"))


@dataclass(frozen=True)
class DumpClient:
    """The dump tool a backup would run: its path and the version it reports."""

    path: str
    version: str


class _Answer:
    """The probe's stdout, kept up to ``_MAX_ANSWER`` bytes (the worker owns the fd), read
    on the event loop as the supervisor reads a tool's stderr."""

    def __init__(self) -> None:
        self.data = b""

    async def __call__(self, fd: int, progress: Progress) -> None:
        pipe = os.fdopen(fd, "rb", buffering=0)
        reader = asyncio.StreamReader()
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except BaseException:
            pipe.close()
            raise
        chunks: list[bytes] = []
        kept = 0
        try:
            while chunk := await reader.read(65536):
                progress.advance(len(chunk))
                if kept < _MAX_ANSWER:
                    chunks.append(chunk)
                    kept += len(chunk)
        finally:
            transport.close()
        self.data = b"".join(chunks)[:_MAX_ANSWER]


def mysql_client_version(banner: str | None) -> str | None:
    """The release in a MySQL client's banner (MariaDB's is after "Distrib")."""
    for pattern in _MYSQL_BANNERS:
        match = pattern.search(banner or "")
        if match is not None:
            return match.group(1)
    return None


@dataclass(frozen=True)
class ServerProbe:
    settings: Settings
    clients: PgClients
    tool_versions: ToolVersions
    executor: Executor

    async def facts(
        self,
        dumper: Dumper,
        conn: ConnectionInfo,
        *,
        detailed: bool,
        label: str,
        query_seconds: float = QUERY_SECONDS,
    ) -> ServerFacts:
        """Connect to ``conn`` (already checked and pinned) and read the server's facts.

        Raises ``JobError`` with a secret-free French reason, ``ToolNotFoundError`` when
        the client is not installed.
        """
        dumper = await self._client(dumper)
        limit = conn.connect_timeout + query_seconds
        answer = _Answer()
        with job_workdir(jobs_root(self.settings), label) as workdir:
            outcome = await run_tool(
                dumper.probe_command(conn, workdir),
                worker=answer,
                direction="out",
                executor=self.executor,
                marker=markers.marker(label, self.settings),
                total_timeout=limit,
                idle_timeout=limit,
                stderr_limit=self.settings.error_tail_bytes * 2,
                tool_nice=self.settings.tool_nice,
            )
        if not outcome.ok:
            # The timeouts the message names are the probe's, not a dump's.
            settings = self.settings.model_copy(
                update={"dump_timeout_seconds": limit, "dump_idle_timeout_seconds": limit}
            )
            raise JobError(
                describe_failure(
                    outcome,
                    Path(dumper.restore_tool).name,
                    ACTION,
                    settings,
                    conn.password,
                    diagnose=dumper.diagnose,
                    detailed=detailed,
                    private_paths=[str(workdir)],
                )
            )
        facts = dumper.parse_probe(answer.data.decode("utf-8", "replace"))
        if facts is None:
            raise JobError(UNEXPECTED_ANSWER)
        return facts

    async def _client(self, dumper: Dumper) -> Dumper:
        if isinstance(dumper, PostgreSQLDumper):
            # Any psql runs a query on any server: the newest found, wherever it is.
            chosen = await self.clients.for_restore(None)
            return PostgreSQLDumper(dumper.dump_tool, chosen.path)
        return dumper

    async def dump_estimate(
        self, dumper: Dumper, conn: ConnectionInfo, *, label: str
    ) -> int | None:
        """The server's estimate of the size of a dump of ``conn``'s database (see the
        dumpers' ``estimate_command``); None when it cannot tell (a failed connection, a
        lock not granted in time, an unexpected answer): an estimate is never an error."""
        try:
            dumper = await self._client(dumper)
            answer = _Answer()
            with job_workdir(jobs_root(self.settings), label) as workdir:
                outcome = await run_tool(
                    dumper.estimate_command(conn, workdir),
                    worker=answer,
                    direction="out",
                    executor=self.executor,
                    marker=markers.marker(label, self.settings),
                    total_timeout=conn.connect_timeout + ESTIMATE_SECONDS,
                    idle_timeout=conn.connect_timeout + ESTIMATE_SECONDS,
                    stderr_limit=self.settings.error_tail_bytes,
                    tool_nice=self.settings.tool_nice,
                )
        except (OSError, ToolNotFoundError, NoCompatibleClient):
            return None
        if not outcome.ok:
            return None
        return dumper.parse_estimate(answer.data.decode("utf-8", "replace"))

    async def dump_client(self, dumper: Dumper, server_version: str | None) -> DumpClient:
        """The dump tool a backup of a server of ``server_version`` would run.

        Raises ``NoCompatibleClient`` (PostgreSQL: none new enough, the message names the
        version needed) or ``ToolNotFoundError``.
        """
        if isinstance(dumper, PostgreSQLDumper):
            chosen = await self.clients.for_dump(parse_dotted(server_version))
            path = shutil.which(chosen.path)
            if chosen.version is None or path is None:
                raise ToolNotFoundError(Path(chosen.path).name)
            return DumpClient(path, str(chosen.version))
        status = await self.tool_versions.status(dumper.version_command(dumper.dump_tool))
        version = mysql_client_version(status.version) or status.version
        if not status.available or status.path is None or version is None:
            raise ToolNotFoundError(Path(dumper.dump_tool).name)
        return DumpClient(status.path, version)
