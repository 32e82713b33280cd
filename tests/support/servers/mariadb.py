"""A throwaway MariaDB server: ``mysql_native_password`` over TCP, ``mariadb`` as client.

The client reads the password from a 0600 ``--defaults-extra-file``.  Usage as for
:func:`tests.support.servers.postgresql.start_postgresql`.
"""

from __future__ import annotations

import contextlib
import pwd
import re
import signal
import subprocess
import time
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
    mysql_option_value,
    run_command,
    sql_string,
    system_user,
    write_private,
)


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_MYSQL_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_MYSQL_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "r": "\r", "Z": "\x1a", "b": "\b"}


def _mysql_unescape(value: str) -> str:
    return _MYSQL_UNESCAPE.sub(lambda m: _MYSQL_ESCAPES.get(m.group(1), m.group(0)), value)


class MariaDBServer(DbServer):
    kind = "mysql"

    def __init__(self, tmpdir: Path, owner: pwd.struct_passwd | None) -> None:
        super().__init__(tmpdir, tmpdir / "mysqld.err")
        self.datadir = tmpdir / "data"
        self.socket_path = tmpdir / "mysqld.sock"
        self.pidfile = tmpdir / "mysqld.pid"
        self._owner = owner
        self._mariadbd = find_binary(["mariadbd", "mysqld"], ["/usr/sbin", "/usr/libexec"])
        self._install_db = find_binary(
            ["mariadb-install-db", "mysql_install_db"], ["/usr/bin", "/usr/sbin"]
        )
        self._mysql = find_binary(["mariadb", "mysql"])
        self._option_file = tmpdir / "client.cnf"
        self._proc: subprocess.Popen[bytes] | None = None

    def _base_options(self) -> list[str]:
        """Options shared by ``mariadb-install-db`` (bootstrap) and the running server."""
        opts = [
            f"--datadir={self.datadir}",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-use-native-aio=0",
            "--performance-schema=0",
        ]
        if self._owner is not None:
            opts.append(f"--user={self._owner.pw_name}")
        return opts

    def _runtime_options(self) -> list[str]:
        # Durability is irrelevant for a throwaway server whose data is deleted at the end.
        return [
            *self._base_options(),
            "--innodb-log-buffer-size=8M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-fast-shutdown=2",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=200",
            "--skip-networking=0",
            f"--bind-address={HOST}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.pidfile}",
            f"--log-error={self.logfile}",
        ]

    # -- lifecycle ------------------------------------------------------------------

    def _install(self) -> None:
        setup = self.tmpdir / "setup.sql"
        pw = sql_string(APP_PASSWORD, backslash_escapes=True)
        # Bootstrap mode runs with the grant tables disabled; FLUSH PRIVILEGES loads them.
        statements = ["FLUSH PRIVILEGES;", "DROP USER IF EXISTS ''@'localhost';"]
        for host in ("%", "localhost", "127.0.0.1"):
            account = f"{sql_string(APP_USER, backslash_escapes=True)}@'{host}'"
            statements += [
                f"CREATE USER {account} IDENTIFIED VIA mysql_native_password USING PASSWORD({pw});",
                f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
            ]
        statements.append("FLUSH PRIVILEGES;")
        write_private(setup, "\n".join(statements) + "\n", self._owner)
        try:
            run_command(
                [
                    self._install_db,
                    "--no-defaults",
                    *self._base_options(),
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    f"--extra-file={setup}",
                ],
                cwd=self.tmpdir,
                timeout=STARTUP_TIMEOUT + 60,
                env=client_env(),
            )
        except ClientError as exc:
            raise ServerStartError(f"mariadb-install-db failed:\n{exc}") from exc
        finally:
            setup.unlink(missing_ok=True)
        write_private(
            self._option_file,
            f"[client]\nuser={APP_USER}\npassword={mysql_option_value(APP_PASSWORD)}\n",
        )

    def _start(self) -> None:
        last_error = ""
        for _attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            log_offset = self._log_size()
            args = [self._mariadbd, "--no-defaults", *self._runtime_options()]
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.tmpdir,
                env=client_env(),
                start_new_session=True,
            )
            error = self._wait_ready()
            if error is None:
                return
            self._terminate()
            log = self._log_since(log_offset)
            last_error = f"{error}\n--- server log ---\n{log}"
            if not ADDRESS_IN_USE.search(log):
                break
        raise ServerStartError(f"MariaDB did not start in {self.tmpdir}:\n{last_error}")

    def _wait_ready(self) -> str | None:
        """Poll until the app user can log in over TCP; return an error text on failure."""
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"mariadbd exited with code {self._proc.returncode}"
            proc = self.run_client("SELECT 1", "mysql", tabular=True, connect_timeout=2)
            if proc.returncode == 0 and proc.stdout.strip() == "1" and self._proc.poll() is None:
                return None
            last = proc.stderr.strip() or proc.stdout.strip()
            time.sleep(0.05)
        return f"mariadbd not ready after {STARTUP_TIMEOUT:.0f}s (last client error: {last})"

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _shutdown(self) -> None:
        self._terminate()

    # -- client ---------------------------------------------------------------------

    def run_client(
        self,
        sql: str,
        database: str,
        *,
        password: str | None = None,
        tabular: bool = False,
        connect_timeout: int = 10,
    ) -> subprocess.CompletedProcess[str]:
        option_file = self._option_file
        if password is not None:
            option_file = self._private_file("client.cnf")
            write_private(
                option_file,
                f"[client]\nuser={APP_USER}\npassword={mysql_option_value(password)}\n",
            )
        # --defaults-extra-file must be the first option; the password lives only there.
        args = [
            self._mysql,
            f"--defaults-extra-file={option_file}",
            "--protocol=TCP",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.user}",
            f"--connect-timeout={connect_timeout}",
            "--default-character-set=utf8mb4",
            "--batch",
        ]
        if tabular:
            args.append("--skip-column-names")
        args.append(f"--database={database}")
        # HOME -> tmpdir: a developer's ~/.my.cnf (read after the extra file) must not
        # override the credentials.
        env = client_env({"HOME": str(self.tmpdir)})
        try:
            return run_command(args, input_text=sql, env=env, check=False)
        finally:
            if option_file != self._option_file:
                option_file.unlink(missing_ok=True)

    def _parse_rows(self, stdout: str) -> list[tuple[str | None, ...]]:
        # --batch output: one row per line, tab-separated; \n \t \\ \0 escaped; NULL as
        # the bare word NULL (indistinguishable from the string 'NULL' - use QUOTE()/ISNULL()
        # in the query if that matters).
        lines = stdout.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [
            tuple(None if field == "NULL" else _mysql_unescape(field) for field in line.split("\t"))
            for line in lines
        ]

    def create_database(self, name: str) -> None:
        self.execute(f"CREATE DATABASE {_mysql_ident(name)}", "mysql")

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {_mysql_ident(name)}", "mysql")


def start_mariadb() -> MariaDBServer:
    """Start a throwaway MariaDB server (see module docstring)."""
    owner = system_user("mysql")
    tmpdir = make_tempdir("bk-my-", owner)
    server = MariaDBServer(tmpdir, owner)
    server._register()
    try:
        server._install()
        server._start()
    except BaseException:
        server.stop()
        raise
    return server
