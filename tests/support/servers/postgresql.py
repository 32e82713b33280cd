"""A throwaway PostgreSQL server: SCRAM password authentication over TCP, ``psql`` as client.

``psql`` reads the password from a 0600 ``PGPASSFILE``.

Usage::

    pg = start_postgresql()
    try:
        pg.create_database("app")
        pg.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1);", "app")
        assert pg.query("SELECT a FROM t", "app") == [("1",)]
    finally:
        pg.stop()
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.servers.common import (
    ADDRESS_IN_USE,
    APP_PASSWORD,
    APP_USER,
    HOST,
    PORT_ATTEMPTS,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    ClientError,
    DbServer,
    ServerStartError,
    client_env,
    find_binary,
    free_port,
    make_tempdir,
    pgpass_escape,
    run_command,
    sql_string,
    system_user,
    write_private,
)

#: psql prints SQL NULL as this string in :meth:`PostgresServer.query` (ASCII "SUB").
PG_NULL_MARKER = "\x1a"


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_bindir() -> Path:
    def version_key(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_key)
    if candidates:
        return Path(candidates[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(run_command([pg_config, "--bindir"]).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServerStartError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/install-test-deps.sh"
    )


class PostgresServer(DbServer):
    kind = "postgresql"

    def __init__(self, tmpdir: Path, bindir: Path, owner: pwd.struct_passwd | None) -> None:
        super().__init__(tmpdir, tmpdir / "postgres.log")
        self.bindir = bindir
        self.datadir = tmpdir / "data"
        self.socket_dir = tmpdir
        self.server_version_num = 0
        self._owner = owner
        self._psql = find_binary(["psql"], [str(bindir)])
        self._pgpass = tmpdir / "pgpass"

    # -- lifecycle ------------------------------------------------------------------

    def _initdb(self) -> None:
        args = [
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.datadir),
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        try:
            run_command(args, as_user=self._owner, cwd=self.tmpdir, timeout=STARTUP_TIMEOUT)
        except ClientError as exc:
            raise ServerStartError(f"initdb failed:\n{exc}") from exc
        (self.datadir / "pg_hba.conf").write_text(
            "# throwaway test server: password (SCRAM) authentication over TCP\n"
            "local   all          all                    trust\n"
            "host    all          all      127.0.0.1/32  scram-sha-256\n"
            "host    all          all      ::1/128       scram-sha-256\n"
            "host    replication  all      127.0.0.1/32  scram-sha-256\n",
            encoding="utf-8",
        )
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# --- throwaway test server ---\n"
                f"listen_addresses = '{HOST}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "shared_buffers = 32MB\n"
                "max_connections = 100\n"
                "fsync = off\n"
                "full_page_writes = off\n"
                "synchronous_commit = off\n"
                "max_wal_size = 256MB\n"
                "logging_collector = off\n"
                "log_min_messages = warning\n"
            )

    def _start(self) -> None:
        """Start on a free port; retry on another one if the port got taken meanwhile."""
        last_error = ""
        for _attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            log_offset = self._log_size()
            proc = run_command(
                [
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "--wait",
                    f"--timeout={int(STARTUP_TIMEOUT)}",
                    "--pgdata",
                    str(self.datadir),
                    "--log",
                    str(self.logfile),
                    "-o",
                    f"-p {self.port}",
                ],
                as_user=self._owner,
                cwd=self.tmpdir,
                timeout=STARTUP_TIMEOUT + 15,
                check=False,
                env=client_env(),
            )
            if proc.returncode == 0:
                return
            log = self._log_since(log_offset)
            last_error = f"{proc.stdout}\n{proc.stderr}\n--- server log ---\n{log}"
            # pg_ctl may have timed out while the postmaster is still starting up.
            self._pg_ctl_stop()
            if not ADDRESS_IN_USE.search(log):
                break
        raise ServerStartError(f"PostgreSQL did not start in {self.tmpdir}:\n{last_error}")

    def _setup_roles(self) -> None:
        sql = (
            f"CREATE ROLE {_pg_ident(APP_USER)} LOGIN SUPERUSER PASSWORD "
            f"{sql_string(APP_PASSWORD, backslash_escapes=False)};\n"
        )
        # Trusted unix-socket connection as the bootstrap superuser (setup only).
        proc = run_command(
            [
                self._psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                "-",
            ],
            input_text=sql,
            check=False,
        )
        if proc.returncode != 0:
            raise ServerStartError(f"creating the PostgreSQL app role failed:\n{proc.stderr}")
        self._write_pgpass(self._pgpass, APP_PASSWORD)
        rows = self.query("SHOW server_version_num", "postgres")
        self.server_version_num = int(rows[0][0] or 0)

    def _write_pgpass(self, path: Path, password: str) -> None:
        line = ":".join(
            pgpass_escape(field) for field in (HOST, str(self.port), "*", APP_USER, password)
        )
        write_private(path, line + "\n")

    def _pg_ctl_stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        run_command(
            [
                str(self.bindir / "pg_ctl"),
                "stop",
                "--pgdata",
                str(self.datadir),
                "--mode=immediate",
                "--wait",
                f"--timeout={int(STOP_TIMEOUT)}",
            ],
            as_user=self._owner,
            cwd=self.tmpdir,
            timeout=STOP_TIMEOUT + 15,
            check=False,
            env=client_env(),
        )
        self._kill_leftover()

    def _kill_leftover(self) -> None:
        """SIGKILL the postmaster if ``pg_ctl stop`` did not manage to stop it."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text(encoding="utf-8").splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    def _shutdown(self) -> None:
        self._pg_ctl_stop()

    # -- client ---------------------------------------------------------------------

    def run_client(
        self, sql: str, database: str, *, password: str | None = None, tabular: bool = False
    ) -> subprocess.CompletedProcess[str]:
        pgpass = self._pgpass
        if password is not None:
            pgpass = self._private_file("pgpass")
            self._write_pgpass(pgpass, password)
        args = [
            self._psql,
            "-X",
            "-w",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
        ]
        if tabular:
            args += ["--csv", "-t", "-P", f"null={PG_NULL_MARKER}"]
        args += ["-f", "-"]
        # PGDATABASE rather than -d: a name containing "=" would be taken as a conninfo.
        env = client_env({"PGPASSFILE": str(pgpass), "PGDATABASE": database})
        try:
            return run_command(args, input_text=sql, env=env, check=False)
        finally:
            if pgpass != self._pgpass:
                pgpass.unlink(missing_ok=True)

    def _parse_rows(self, stdout: str) -> list[tuple[str | None, ...]]:
        # psql --csv quotes values as needed (so embedded newlines/commas survive) and prints
        # NULL as PG_NULL_MARKER; an empty line is a single-column row holding ''.
        reader = csv.reader(io.StringIO(stdout, newline=""))
        return [
            tuple(None if value == PG_NULL_MARKER else value for value in row) if row else ("",)
            for row in reader
        ]

    def create_database(self, name: str) -> None:
        self.execute(f"CREATE DATABASE {_pg_ident(name)}", "postgres")

    def drop_database(self, name: str) -> None:
        if self.server_version_num >= 130000:
            sql = f"DROP DATABASE IF EXISTS {_pg_ident(name)} WITH (FORCE)"
        else:
            sql = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = {sql_string(name, backslash_escapes=False)} "
                "AND pid <> pg_backend_pid();\n"
                f"DROP DATABASE IF EXISTS {_pg_ident(name)};"
            )
        self.execute(sql, "postgres")


def start_postgresql(bindir: Path | None = None) -> PostgresServer:
    """Start a throwaway PostgreSQL server (see module docstring).

    ``bindir`` holds ``initdb``, ``pg_ctl`` and ``psql`` of another installation (a newer
    major than the system's); by default the newest under ``/usr/lib/postgresql``.
    """
    bindir = bindir or _pg_bindir()
    owner = system_user("postgres")
    tmpdir = make_tempdir("bk-pg-", owner)
    server = PostgresServer(tmpdir, bindir, owner)
    server._register()
    try:
        server._initdb()
        server._start()
        server._setup_roles()
    except BaseException:
        server.stop()
        raise
    return server
