"""Which installed PostgreSQL client runs a job: one at least as new as what it must read.

A dump needs a ``pg_dump`` whose major version is at least the server's (it refuses newer
servers); a restore needs a ``psql`` at least as new as the ``pg_dump`` that wrote the dump
(plain dumps of the 2025 minor releases carry ``\\restrict`` lines older ``psql`` reject).
Clients are looked for in the configured directories (by default Debian's
``/usr/lib/postgresql/*/bin``, one per major version) and on PATH, and each one's version
is read by running it: a directory's name says nothing certain about what it holds.

Among the suitable ``pg_dump``, the one of the server's own major version runs (else the
closest above it): a newer one's dump may not load back into the server it came from
(``pg_dump`` 17 and later start every dump with ``SET transaction_timeout``, which servers
before 17 reject). Among the suitable ``psql``, the newest runs: it only passes the dump's
SQL along, and knows every meta-command an older ``pg_dump`` wrote. When the server's
version is unknown (it did not answer the probe), the newest ``pg_dump`` runs, since it
dumps the most server versions.

A tool configured by path (``pg_dump_path`` / ``psql_path`` other than the plain name) is
the operator's choice and always runs.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from backup_api.config import Settings
from backup_api.dumpers.base import ConnectionInfo, Dumper
from backup_api.dumpers.pgversions import Version, parse_banner, parse_dotted, probe_server_version
from backup_api.dumpers.postgresql import PostgreSQLDumper
from backup_api.toolversions import ToolVersions

DUMP_TOOL = "pg_dump"
RESTORE_TOOL = "psql"


@dataclass(frozen=True)
class InstalledTool:
    """One client binary found, with the version it reports (None: not a usable client)."""

    name: str
    path: str
    version: Version | None


@dataclass(frozen=True)
class ChosenTool:
    """What a job runs: a path (or the bare name), and its version when known."""

    path: str
    version: Version | None


class NoCompatibleClient(Exception):
    """No installed client is new enough; the (French) message names the version needed."""


def _installed_list(tools: list[InstalledTool]) -> str:
    versions = sorted({tool.version for tool in tools if tool.version is not None})
    return ", ".join(map(str, versions)) or "aucun"


def dump_requirement(server: Version, tools: list[InstalledTool]) -> str:
    return (
        f"aucun client PostgreSQL compatible: serveur {server}, "
        f"{DUMP_TOOL} {server.major} ou plus récent requis (installés: {_installed_list(tools)})"
    )


def restore_requirement(dump: Version, tools: list[InstalledTool]) -> str:
    return (
        f"aucun client PostgreSQL compatible: sauvegarde écrite par {DUMP_TOOL} {dump}, "
        f"{RESTORE_TOOL} {dump} ou plus récent requis (installés: {_installed_list(tools)})"
    )


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def _newest(version: Version) -> tuple[int, int]:
    return (version.major, version.minor)


def _never(_: list[InstalledTool]) -> str:
    raise AssertionError("without a minimum version every client is suitable")


class PgClients:
    """The PostgreSQL clients installed on this machine, and the choice among them.

    Versions are asked through ``ToolVersions``: one process per binary, asked again only
    when the binary changes, so looking every job up costs a directory listing and a few
    ``stat`` calls.
    """

    def __init__(self, settings: Settings, versions: ToolVersions) -> None:
        self._settings = settings
        self._versions = versions

    @property
    def probe_timeout(self) -> float:
        """How long a job waits for the server's version: a server that keeps silent this
        long is left to the tool, whose idle and total timeouts then apply as usual."""
        settings = self._settings
        return min(
            settings.connect_timeout_seconds,
            settings.dump_idle_timeout_seconds,
            settings.dump_timeout_seconds,
        )

    def fixed(self, name: str) -> str | None:
        """The operator's own tool for ``name``, when configured as anything but the name."""
        configured = {
            DUMP_TOOL: self._settings.pg_dump_path,
            RESTORE_TOOL: self._settings.psql_path,
        }[name]
        return None if configured == name else configured

    def candidates(self, name: str) -> list[str]:
        """Paths where ``name`` exists: configured directories first, then PATH."""
        paths: list[str] = []
        for pattern in self._settings.pg_client_dirs:
            directories = sorted(glob.glob(pattern)) if _is_pattern(pattern) else [pattern]
            for directory in directories:
                path = os.path.join(directory, name)
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    paths.append(path)
        on_path = shutil.which(name)
        if on_path is not None:
            paths.append(on_path)
        seen: set[str] = set()
        unique: list[str] = []
        for path in paths:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                unique.append(path)
        return unique

    async def installed(self, name: str) -> list[InstalledTool]:
        """Every ``name`` found, in search order, with the version it reports."""
        paths = self.candidates(name)
        statuses = await asyncio.gather(
            *(self._versions.status([path, "--version"]) for path in paths)
        )
        return [
            InstalledTool(name, path, parse_banner(status.version) if status.available else None)
            for path, status in zip(paths, statuses, strict=True)
        ]

    async def all_installed(self) -> list[InstalledTool]:
        """Every ``pg_dump`` and ``psql`` found (for the health report)."""
        dumps, restores = await asyncio.gather(
            self.installed(DUMP_TOOL), self.installed(RESTORE_TOOL)
        )
        return [*dumps, *restores]

    async def _version_of(self, path: str) -> Version | None:
        status = await self._versions.status([path, "--version"])
        return parse_banner(status.version) if status.available else None

    async def _choose(
        self,
        name: str,
        minimum: Version | None,
        requirement: Callable[[list[InstalledTool]], str],
        preference: Callable[[Version], tuple[int, int]] = _newest,
    ) -> ChosenTool:
        """The suitable ``name`` that ``preference`` ranks highest (the newest by default)."""
        fixed = self.fixed(name)
        if fixed is not None:
            return ChosenTool(fixed, await self._version_of(fixed))
        tools = await self.installed(name)
        usable = [(tool, tool.version) for tool in tools if tool.version is not None]
        if not usable:
            # Nothing to choose from: the bare name, whose absence the job reports.
            return ChosenTool(name, None)
        suitable = [
            (order, tool, version)
            for order, (tool, version) in enumerate(usable)
            if minimum is None or version >= minimum
        ]
        if not suitable:
            raise NoCompatibleClient(requirement(tools))
        # Among equals, the first found: a configured directory before PATH.
        _, best, version = max(suitable, key=lambda item: (preference(item[2]), -item[0]))
        return ChosenTool(best.path, version)

    async def for_dump(self, server: Version | None) -> ChosenTool:
        """The ``pg_dump`` for a server of version ``server`` (None: unknown, the newest)."""
        if server is None:
            return await self._choose(DUMP_TOOL, None, _never)
        return await self._choose(
            DUMP_TOOL,
            Version(server.major, 0),
            lambda tools: dump_requirement(server, tools),
            # The lowest suitable major (the server's own when installed), its newest minor.
            lambda version: (-version.major, version.minor),
        )

    async def for_restore(self, dump: Version | None) -> ChosenTool:
        """The ``psql`` for a dump written by ``pg_dump`` ``dump`` (None: the newest)."""
        if dump is None:
            return await self._choose(RESTORE_TOOL, None, _never)
        return await self._choose(
            RESTORE_TOOL, dump, lambda tools: restore_requirement(dump, tools)
        )

    async def dump_warning(self, server: Version) -> str | None:
        """Why a backup of a server of version ``server`` would fail here, if it would."""
        try:
            await self.for_dump(server)
        except NoCompatibleClient as exc:
            return str(exc)
        return None


@dataclass(frozen=True)
class JobTools:
    """What a job runs: the dumper with its chosen tools, and the versions it learned."""

    dumper: Dumper
    server_version: Version | None = None
    tool_version: Version | None = None


async def tools_for_backup(clients: PgClients, dumper: Dumper, conn: ConnectionInfo) -> JobTools:
    """The dumper to run for a backup; raises ``NoCompatibleClient`` when none fits."""
    if not isinstance(dumper, PostgreSQLDumper):
        return JobTools(dumper)
    server = await probe_server_version(conn, clients.probe_timeout)
    chosen = await clients.for_dump(server)
    return JobTools(PostgreSQLDumper(chosen.path, dumper.restore_tool), server, chosen.version)


async def tools_for_restore(
    clients: PgClients, dumper: Dumper, conn: ConnectionInfo, dump_version: str | None
) -> JobTools:
    """The dumper to run for a restore of a dump written by ``pg_dump`` ``dump_version``."""
    if not isinstance(dumper, PostgreSQLDumper):
        return JobTools(dumper)
    server = await probe_server_version(conn, clients.probe_timeout)
    chosen = await clients.for_restore(parse_dotted(dump_version))
    return JobTools(PostgreSQLDumper(dumper.dump_tool, chosen.path), server, chosen.version)
