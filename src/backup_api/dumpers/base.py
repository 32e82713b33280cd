"""What a dumper is: the engine-specific half of a backup or a restore.

A dumper knows how to turn a registered database into the argv, environment and
credentials of its engine's own tools (``pg_dump``/``psql``, ``mysqldump``/``mysql``).
It runs nothing itself: the job's supervisor spawns the command, hands the credentials over as an
open descriptor, streams its output, enforces the timeouts and decides success by the exit
code. Nothing here knows about users or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, repr=False)
class ConnectionInfo:
    """Where and as whom to connect. ``repr`` hides the password on purpose."""

    host: str
    port: int
    username: str
    password: str
    db_name: str
    # The address the host resolved to when an allow-list pinned it: the tool connects
    # there and nowhere else, so a name that resolves elsewhere later cannot redirect it.
    pinned_address: str | None = None
    connect_timeout: int = 10

    def __repr__(self) -> str:
        return (
            f"ConnectionInfo(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"db_name={self.db_name!r}, password='***')"
        )


@dataclass(frozen=True, repr=False)
class SecretFile:
    """What a tool reads as a file (its credentials), never written to any file system.

    The supervisor hands it over as a descriptor open in the tool's process: a sealed-off
    ``memfd`` when ``regular`` (libpq refuses anything but a plain 0600 file as
    ``PGPASSFILE``), else a pipe written and closed before the tool starts.
    """

    content: bytes
    regular: bool


@dataclass(frozen=True)
class SecretPath:
    """Stands, in ``ToolCommand.argv`` or ``env``, for the path under which the tool opens
    the command's ``secret``; an argv word becomes ``prefix`` followed by that path."""

    prefix: str = ""


@dataclass(frozen=True)
class ToolCommand:
    """A command ready to spawn: ``env`` is merged into ``os.environ``, never replaces it."""

    argv: Sequence[str | SecretPath]
    env: Mapping[str, str | SecretPath] = field(default_factory=dict)
    secret: SecretFile | None = None
    # For tools with no connect timeout of their own (mysqldump): seconds within which the
    # first output byte must arrive, since they print a header as soon as they connect.
    first_output_timeout: float | None = None


class Diagnosis(StrEnum):
    """What a failed tool's stderr shows, in categories that quote nothing of the peer."""

    UNREACHABLE = "unreachable"
    UNKNOWN_HOST = "unknown_host"
    AUTH_FAILED = "auth_failed"
    DATABASE_MISSING = "database_missing"
    #: The server, once connected, refused a statement: ``line`` holds its error.
    SQL_ERROR = "sql_error"
    OTHER = "other"


@dataclass(frozen=True)
class ServerFacts:
    """What a connection test reads from a server: its version (PostgreSQL: ``major.minor``;
    MySQL/MariaDB: as ``VERSION()`` reports it) and the database's size in bytes."""

    version: str
    size_bytes: int


@dataclass(frozen=True)
class ToolDiagnosis:
    kind: Diagnosis
    line: str | None = None


#: Longest server error line kept in a diagnosis.
MAX_ERROR_LINE = 500


class Dumper(Protocol):
    """The strategy interface each engine implements.

    ``workdir`` is a private (0700) directory created for one job under the service's own
    directory and removed when the job ends (or by recovery after a crash): what the tools
    look for on disk (a home, a configuration directory) points there. It never holds
    credentials: those travel in ``ToolCommand.secret``.
    """

    #: The ``type`` value of a registered database, e.g. ``"postgresql"``.
    type: str
    #: Executable names used for dumps and restores (configured paths).
    dump_tool: str
    restore_tool: str

    def dump_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """Command that writes a plain SQL dump of ``conn.db_name`` to stdout."""
        ...

    def restore_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """Command that reads SQL on stdin and applies it, stopping at the first error."""
        ...

    def count_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """The restore tool printing each table's row count as one JSON object (a
        drill's check); credentials as the jobs'."""
        ...

    def probe_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """Command that connects as the dump would and prints what ``parse_probe`` reads:
        the server's version and the database's size (a connection test)."""
        ...

    def parse_probe(self, stdout: str) -> ServerFacts | None:
        """The facts in ``probe_command``'s output; None if it is not what was asked for."""
        ...

    def estimate_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """Command that connects as the dump would and prints what ``parse_estimate``
        reads: the server's figure closest to the size of the database's dump."""
        ...

    def parse_estimate(self, stdout: str) -> int | None:
        """The bytes in ``estimate_command``'s output; None if it is not a size."""
        ...

    def version_command(self, tool: str) -> list[str]:
        """argv printing the version of ``tool`` (for the health report)."""
        ...

    def diagnose(self, stderr: str) -> ToolDiagnosis:
        """Classify a failed run from its stderr.

        A failure while connecting is only ever a category: what the peer sent then may
        come from any service on any port. Once connected, the server's own error line
        (``ERROR: ...``) is kept.
        """
        ...
