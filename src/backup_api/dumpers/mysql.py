"""MySQL and MariaDB: ``mysqldump`` to dump, ``mysql`` to restore."""

from __future__ import annotations

import re
from pathlib import Path

from backup_api.dumpers.base import (
    MAX_ERROR_LINE,
    ConnectionInfo,
    Diagnosis,
    ToolCommand,
    ToolDiagnosis,
    write_private_file,
)


def option_value(value: str) -> str:
    """A double-quoted option-file value with the escapes the MySQL clients understand."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def write_defaults_file(conn: ConnectionInfo, workdir: Path) -> Path:
    """A per-job 0600 option file: the password never reaches argv or the environment."""
    path = workdir / "my.cnf"
    host = conn.pinned_address or conn.host
    lines = [
        "[client]",
        f"user={option_value(conn.username)}",
        f"password={option_value(conn.password)}",
        f"host={option_value(host)}",
        f"port={conn.port}",
        # TCP even for "localhost": the user registered a host and port, not a socket.
        "protocol=TCP",
        # mysqldump rejects connect-timeout, and already dumps in utf8mb4; the restore
        # client alone reads this group (its own default charset is the locale's).
        "[mysql]",
        f"connect-timeout={conn.connect_timeout}",
        "default-character-set=utf8mb4",
    ]
    write_private_file(path, "\n".join(lines) + "\n")
    return path


class MySQLDumper:
    type = "mysql"

    def __init__(self, dump_tool: str = "mysqldump", restore_tool: str = "mysql") -> None:
        self.dump_tool = dump_tool
        self.restore_tool = restore_tool

    def _env(self, workdir: Path) -> dict[str, str]:
        return {
            # The clients read ~/.my.cnf after the extra file: a HOME with none in it keeps
            # the service account's own option file from overriding the registered values.
            "HOME": str(workdir),
            "MYSQL_PWD": "",
            "MYSQL_HOST": "",
            "MYSQL_TCP_PORT": "",
        }

    def dump_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        defaults = write_defaults_file(conn, workdir)
        argv = [
            self.dump_tool,
            # Must be the very first option, or the client ignores it.
            f"--defaults-extra-file={defaults}",
            "--single-transaction",
            "--quick",
            "--hex-blob",
            "--triggers",
            "--no-tablespaces",
            "--skip-dump-date",
            # Everything after "--" is a database name, never an option.
            "--",
            conn.db_name,
        ]
        return ToolCommand(
            argv=argv, env=self._env(workdir), first_output_timeout=conn.connect_timeout
        )

    def restore_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        defaults = write_defaults_file(conn, workdir)
        argv = [
            self.restore_tool,
            f"--defaults-extra-file={defaults}",
            "--batch",
            "--silent",
            "--",
            conn.db_name,
        ]
        return ToolCommand(argv=argv, env=self._env(workdir))

    def version_command(self, tool: str) -> list[str]:
        return [tool, "--version"]

    def diagnose(self, stderr: str) -> ToolDiagnosis:
        return diagnose_mysql(stderr)


# mysqldump: 'Got error: 2002: "..." when trying to connect'; the restore client:
# 'ERROR 1045 (28000): ...' (a statement's error says "at line N" after the SQLSTATE).
# The peer's message may span lines, hence DOTALL up to the closing words.
_CONNECT_ERROR = re.compile(
    r"Got error: (\d+): .*? when (?:trying to connect|selecting the database)"
    r"|^ERROR (\d+) \([0-9A-Z]{5}\): ",
    re.MULTILINE | re.DOTALL,
)
_STATEMENT_ERROR = re.compile(
    r"^(ERROR \d+ \([0-9A-Z]{5}\) at line \d+: .*)"
    r"|^[\w.-]+: ((?:Couldn't execute|Error|Got error).*)",
    re.MULTILINE,
)
_UNKNOWN_HOST = {2005}
_DATABASE_MISSING = {1049}
#: Access denied (to the server or the database), no password, host not allowed,
#: authentication method refused or not loadable, account locked or expired.
_AUTH_FAILED = {1044, 1045, 1698, 1130, 1251, 2049, 2059, 1862, 3118, 4151}


def diagnose_mysql(stderr: str) -> ToolDiagnosis:
    connect = _CONNECT_ERROR.search(stderr)
    if connect is not None:
        code = int(connect.group(1) or connect.group(2))
        if code in _UNKNOWN_HOST:
            return ToolDiagnosis(Diagnosis.UNKNOWN_HOST)
        if code in _DATABASE_MISSING:
            return ToolDiagnosis(Diagnosis.DATABASE_MISSING)
        if code in _AUTH_FAILED:
            return ToolDiagnosis(Diagnosis.AUTH_FAILED)
        return ToolDiagnosis(Diagnosis.UNREACHABLE)
    statement = _STATEMENT_ERROR.search(stderr)
    if statement is not None:
        line = (statement.group(1) or statement.group(2)).strip()
        return ToolDiagnosis(Diagnosis.SQL_ERROR, line[:MAX_ERROR_LINE])
    return ToolDiagnosis(Diagnosis.OTHER)
