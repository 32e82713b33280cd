"""MySQL and MariaDB: ``mysqldump`` to dump, ``mysql`` to restore."""

from __future__ import annotations

import glob
import os
import re
from functools import lru_cache
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

#: Client authentication plugins the tools may load. The others are left out on purpose:
#: ``mysql_clear_password`` and ``dialog`` send the password as typed to whichever server
#: asks (a server the user pointed the service to), and ``auth_gssapi_client`` proves the
#: service's own Kerberos identity instead of the credentials the user supplied.
#: ``mysql_native_password`` and ``mysql_old_password`` are built into the clients.
SAFE_AUTH_PLUGINS = ("client_ed25519.so", "caching_sha2_password.so", "sha256_password.so")

_SYSTEM_PLUGIN_DIRS = (
    "/usr/lib/*/libmariadb3/plugin",
    "/usr/lib/mysql/plugin",
    "/usr/lib64/mariadb/plugin",
    "/usr/lib64/mysql/plugin",
    "/usr/lib/mariadb/plugin",
    "/usr/local/mysql/lib/plugin",
)


@lru_cache(maxsize=1)
def system_auth_plugins() -> dict[str, str]:
    """Where the clients' own copies of ``SAFE_AUTH_PLUGINS`` are installed."""
    found: dict[str, str] = {}
    for pattern in _SYSTEM_PLUGIN_DIRS:
        for directory in sorted(glob.glob(pattern)):
            for name in SAFE_AUTH_PLUGINS:
                path = os.path.join(directory, name)
                if name not in found and os.path.isfile(path):
                    found[name] = path
    return found


def safe_plugin_dir(workdir: Path) -> Path:
    """A plugin directory holding only the safe authentication plugins (as links).

    Given as ``plugin-dir``, it is where the clients look for any plugin a server asks
    for, so a server switching the client to a cleartext method gets an error instead.
    """
    directory = workdir / "plugins"
    directory.mkdir(mode=0o700, exist_ok=True)
    for name, path in system_auth_plugins().items():
        os.symlink(path, directory / name)
    return directory


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


def defaults_file(conn: ConnectionInfo, workdir: Path) -> SecretFile:
    """The option file read through ``--defaults-extra-file``: the password never reaches
    argv, the environment or a file system."""
    host = conn.pinned_address or conn.host
    lines = [
        "[client]",
        f"user={option_value(conn.username)}",
        f"password={option_value(conn.password)}",
        f"host={option_value(host)}",
        f"port={conn.port}",
        # TCP even for "localhost": the user registered a host and port, not a socket.
        "protocol=TCP",
        f"plugin-dir={option_value(str(safe_plugin_dir(workdir)))}",
        # mysqldump rejects connect-timeout, and already dumps in utf8mb4; the restore
        # client alone reads this group (its own default charset is the locale's).
        "[mysql]",
        f"connect-timeout={conn.connect_timeout}",
        "default-character-set=utf8mb4",
    ]
    return SecretFile(("\n".join(lines) + "\n").encode("utf-8"), regular=False)


# The data and indexes of the database's tables, as the server accounts for them (InnoDB's
# figures are estimates, refreshed by ANALYZE TABLE).
_PROBE_QUERY = (
    "SELECT VERSION(), (SELECT COALESCE(SUM(data_length + index_length), 0) "
    "FROM information_schema.tables WHERE table_schema = DATABASE())"
)
_PROBE_ANSWER = re.compile(r"([0-9][\w.+~-]{0,31})\t(\d{1,20})")


# Every base table's rows, by name as mysqldump writes it: one UNION of counts built from
# the catalog and run as a prepared statement.
_COUNT_QUERY = (
    "SET SESSION group_concat_max_len = 67108864; "
    "SELECT COALESCE(CONCAT('SELECT JSON_OBJECTAGG(t, n) FROM (', GROUP_CONCAT("
    "CONCAT('SELECT ', QUOTE(table_name), ' AS t, COUNT(*) AS n FROM `', "
    "REPLACE(table_name, '`', '``'), '`') SEPARATOR ' UNION ALL '), ') AS counts'), "
    "'SELECT ''{}''') INTO @drill_counts FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'; "
    "PREPARE drill_counts FROM @drill_counts; EXECUTE drill_counts"
)


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
            # These would point the clients to another plugin directory, or preload plugins.
            "MARIADB_PLUGIN_DIR": "",
            "LIBMYSQL_PLUGIN_DIR": "",
            "LIBMYSQL_PLUGINS": "",
        }

    def dump_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv: list[str | SecretPath] = [
            self.dump_tool,
            # Must be the very first option, or the client ignores it.
            SecretPath("--defaults-extra-file="),
            "--single-transaction",
            "--quick",
            "--hex-blob",
            # Stored code is part of the database: without these a restore silently
            # loses its procedures, functions and scheduled events.
            "--triggers",
            "--routines",
            "--events",
            "--no-tablespaces",
            "--skip-dump-date",
            # Everything after "--" is a database name, never an option.
            "--",
            conn.db_name,
        ]
        return ToolCommand(
            argv=argv,
            env=self._env(workdir),
            secret=defaults_file(conn, workdir),
            first_output_timeout=conn.connect_timeout,
        )

    def restore_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv: list[str | SecretPath] = [
            self.restore_tool,
            SecretPath("--defaults-extra-file="),
            # Refuses the client's own commands that reach the service's host (system,
            # source, tee...), whatever the SQL holds.
            "--sandbox",
            "--batch",
            "--silent",
            "--",
            conn.db_name,
        ]
        return ToolCommand(argv=argv, env=self._env(workdir), secret=defaults_file(conn, workdir))

    def probe_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        argv: list[str | SecretPath] = [
            self.restore_tool,
            SecretPath("--defaults-extra-file="),
            "--sandbox",
            "--batch",
            "--skip-column-names",
            f"--execute={_PROBE_QUERY}",
            "--",
            conn.db_name,
        ]
        return ToolCommand(argv=argv, env=self._env(workdir), secret=defaults_file(conn, workdir))

    def count_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        """``mysql`` printing every base table's row count as one JSON object."""
        argv: list[str | SecretPath] = [
            self.restore_tool,
            SecretPath("--defaults-extra-file="),
            "--sandbox",
            "--batch",
            "--raw",
            "--skip-column-names",
            f"--execute={_COUNT_QUERY}",
            "--",
            conn.db_name,
        ]
        return ToolCommand(argv=argv, env=self._env(workdir), secret=defaults_file(conn, workdir))

    def estimate_command(self, conn: ConnectionInfo, workdir: Path) -> ToolCommand:
        # The probe's size (data and indexes, as the server accounts for them): on a table
        # whose statistics are not yet refreshed, data_length alone says one page.
        return self.probe_command(conn, workdir)

    def parse_estimate(self, stdout: str) -> int | None:
        facts = self.parse_probe(stdout)
        return None if facts is None else facts.size_bytes

    def parse_probe(self, stdout: str) -> ServerFacts | None:
        match = _PROBE_ANSWER.fullmatch(stdout.strip())
        if match is None:
            return None
        return ServerFacts(version=match.group(1), size_bytes=int(match.group(2)))

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
    r"^(ERROR \d+ \([0-9A-Z]{5}\) at line \d+: .*|ERROR at line \d+: .*)"
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
