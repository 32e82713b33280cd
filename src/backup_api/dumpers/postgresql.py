"""PostgreSQL: ``pg_dump`` to dump, ``psql`` to restore."""

from __future__ import annotations

import re
from pathlib import Path

from backup_api.dumpers.base import (
    MAX_ERROR_LINE,
    ConnectionInfo,
    Diagnosis,
    SecretFile,
    SecretPath,
    ServerFacts,
    ToolCommand,
    ToolDiagnosis,
)
from backup_api.dumpers.pgversions import from_version_num

_PROBE_QUERY = "SELECT current_setting('server_version_num'), pg_database_size(current_database())"
_PROBE_ANSWER = re.compile(r"(\d{1,9})\|(\d{1,20})")
# The rows' pages (heap and TOAST, main fork: no indexes, no free space map), the figure
# nearest to a plain dump's size: pg_database_size counts the catalogs (some 7 MB of any
# database) and the indexes, which a dump does not carry.
_ESTIMATE_QUERY = (
    "SELECT COALESCE(SUM(pg_relation_size(c.oid)"
    " + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)), 0)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)
_ESTIMATE_ANSWER = re.compile(r"\d{1,20}")
#: Reading a relation's size waits for its lock: a table held exclusively (an ALTER under
#: way) leaves the estimate unknown instead of holding the query.
ESTIMATE_LOCK_TIMEOUT_MS = 1000


# Every ordinary table's rows, named as pg_dump names it in its COPY lines (quote_ident
# quotes exactly where pg_dump's fmtId does), in one statement: query_to_xml runs each
# count, since psql's --command takes no \gexec.
_COUNT_QUERY = (
    "SELECT coalesce(json_object_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "n.nspname, c.relname), false, true, '')))[1]::text::bigint), '{}') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
)


def conninfo_quote(value: str) -> str:
    """Quote a libpq keyword value: single quotes, with ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def build_conninfo(conn: ConnectionInfo) -> str:
    """One fully quoted conninfo string.

    Passing the database name inside a quoted ``dbname='...'`` means a name such as
    ``host=evil dbname=x`` or ``postgresql://evil/x`` stays a plain name: libpq expands
    only the outer string, so nothing in a field can redirect the connection.
    """
    params = {
        "host": conn.host,
        "port": str(conn.port),
        "user": conn.username,
        "dbname": conn.db_name,
        "connect_timeout": str(conn.connect_timeout),
        "application_name": "backup-api",
    }
    if conn.pinned_address is not None:
        params["hostaddr"] = conn.pinned_address
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in params.items())


def _passfile(conn: ConnectionInfo) -> SecretFile:
    content = f"*:*:*:*:{pgpass_escape(conn.password)}\n"
    return SecretFile(content.encode("utf-8"), regular=True)


class PostgreSQLDumper:
    type = "postgresql"

    def __init__(self, dump_tool: str = "pg_dump", restore_tool: str = "psql") -> None:
        self.dump_tool = dump_tool
        self.restore_tool = restore_tool

    def _env(self, conn: ConnectionInfo, workdir: Path) -> dict[str, str | SecretPath]:
        return {
            "PGPASSFILE": SecretPath(),
            # Whatever the service's own environment says, these must not leak in.
            "PGPASSWORD": "",
            "PGSERVICEFILE": str(workdir / "no-service-file"),
            "PGSYSCONFDIR": str(workdir),
            "PGCONNECT_TIMEOUT": str(conn.connect_timeout),
            "PGAPPNAME": "backup-api",
        }

    def dump_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv = [
            self.dump_tool,
            "--no-password",
            "--format=plain",
            "--encoding=UTF8",
            # Drop-then-create makes the dump restorable over the database it came from;
            # no owner/ACL statements makes it restorable into another database and role.
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            f"--dbname={build_conninfo(conn)}",
        ]
        return ToolCommand(argv=argv, env=self._env(conn, workdir), secret=_passfile(conn))

    def restore_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv = [
            self.restore_tool,
            "--no-password",
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--output=/dev/null",
            f"--dbname={build_conninfo(conn)}",
        ]
        return ToolCommand(argv=argv, env=self._env(conn, workdir), secret=_passfile(conn))

    def probe_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv = [
            self.restore_tool,
            "--no-password",
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "--field-separator=|",
            f"--command={_PROBE_QUERY}",
            f"--dbname={build_conninfo(conn)}",
        ]
        return ToolCommand(argv=argv, env=self._env(conn, workdir), secret=_passfile(conn))

    def count_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """``psql`` printing every table's row count as one JSON object."""
        argv = [
            self.restore_tool,
            "--no-password",
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            f"--command={_COUNT_QUERY}",
            f"--dbname={build_conninfo(conn)}",
        ]
        return ToolCommand(argv=argv, env=self._env(conn, workdir), secret=_passfile(conn))

    def estimate_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv = [
            self.restore_tool,
            "--no-password",
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            f"--command={_ESTIMATE_QUERY}",
            f"--dbname={build_conninfo(conn)}",
        ]
        env = {
            **self._env(conn, workdir),
            "PGOPTIONS": f"-c lock_timeout={ESTIMATE_LOCK_TIMEOUT_MS}",
        }
        return ToolCommand(argv=argv, env=env, secret=_passfile(conn))

    def parse_estimate(self, stdout: str) -> int | None:
        match = _ESTIMATE_ANSWER.fullmatch(stdout.strip())
        return None if match is None else int(match.group(0))

    def parse_probe(self, stdout: str) -> ServerFacts | None:
        match = _PROBE_ANSWER.fullmatch(stdout.strip())
        if match is None:
            return None
        version = from_version_num(int(match.group(1)))
        return ServerFacts(version=str(version), size_bytes=int(match.group(2)))

    def version_command(self, tool: str) -> list[str]:
        return [tool, "--version"]

    def diagnose(self, stderr: str) -> ToolDiagnosis:
        return diagnose_postgresql(stderr)


# libpq: 'connection to server at "h", port p failed: <why>', possibly once per address.
_CONNECT_FAILED = re.compile(
    r"connection to server (?:at|on) .*? failed:|could not connect to server", re.DOTALL
)
_UNKNOWN_HOST = re.compile(r"could not translate host name")
_DATABASE_MISSING = re.compile(r'FATAL:\s+database ".*?" does not exist', re.DOTALL)
_AUTH_FAILED = re.compile(
    r"FATAL:\s+(?:password authentication failed|no pg_hba\.conf entry|role \".*?\" "
    r"(?:does not exist|is not permitted to log in)|\w+ authentication failed)"
    r"|no password supplied|SSL authentication",
    re.DOTALL,
)
_SERVER_ERROR = re.compile(r"\b((?:ERROR|FATAL|PANIC):\s+.*)")
# psql's own refusal of a line of its input (a meta-command while restricted, say): it reads
# the SQL on stdin, so the line names no file.
_CLIENT_ERROR = re.compile(
    r"^(?:psql:<stdin>:\d+: )?((?:error: )?(?:backslash commands are restricted|invalid "
    r"command \\).*)$",
    re.MULTILINE,
)


def diagnose_postgresql(stderr: str) -> ToolDiagnosis:
    if _UNKNOWN_HOST.search(stderr):
        return ToolDiagnosis(Diagnosis.UNKNOWN_HOST)
    if _CONNECT_FAILED.search(stderr):
        if _DATABASE_MISSING.search(stderr):
            return ToolDiagnosis(Diagnosis.DATABASE_MISSING)
        if _AUTH_FAILED.search(stderr):
            return ToolDiagnosis(Diagnosis.AUTH_FAILED)
        return ToolDiagnosis(Diagnosis.UNREACHABLE)
    error = _SERVER_ERROR.search(stderr)
    if error is not None:
        return ToolDiagnosis(Diagnosis.SQL_ERROR, error.group(1).strip()[:MAX_ERROR_LINE])
    client = _CLIENT_ERROR.search(stderr)
    if client is not None:
        return ToolDiagnosis(Diagnosis.SQL_ERROR, client.group(1).strip()[:MAX_ERROR_LINE])
    return ToolDiagnosis(Diagnosis.OTHER)
