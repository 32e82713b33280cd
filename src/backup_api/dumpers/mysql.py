"""MySQL and MariaDB: ``mysqldump`` to dump, ``mysql`` to restore."""

from __future__ import annotations

from pathlib import Path

from backup_api.dumpers.base import ConnectionInfo, SecretFile, SecretPath, ToolCommand


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


def defaults_file(conn: ConnectionInfo) -> SecretFile:
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
        # mysqldump rejects connect-timeout, and already dumps in utf8mb4; the restore
        # client alone reads this group (its own default charset is the locale's).
        "[mysql]",
        f"connect-timeout={conn.connect_timeout}",
        "default-character-set=utf8mb4",
    ]
    return SecretFile(("\n".join(lines) + "\n").encode("utf-8"), regular=False)


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
            secret=defaults_file(conn),
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
        return ToolCommand(argv=argv, env=self._env(workdir), secret=defaults_file(conn))

    def version_command(self, tool: str) -> list[str]:
        return [tool, "--version"]
