"""Throwaway PostgreSQL and MariaDB servers for the test-suite.

Each server runs on a free TCP port on 127.0.0.1 with its data in a fresh temporary
directory and uses real password authentication over TCP (scram-sha-256 for PostgreSQL,
mysql_native_password for MariaDB).  The application account is ``backup_user`` with a
password full of characters that need escaping in pgpass and MySQL option files.

When the process runs as root (as in CI) the servers are run as the ``postgres`` /
``mysql`` system users, because neither server agrees to run as root.

The password never appears on a client's command line: ``psql`` gets it from a 0600
``PGPASSFILE``, ``mysql`` from a 0600 ``--defaults-extra-file``.

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

import atexit
import contextlib
import csv
import glob
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "APP_PASSWORD",
    "APP_USER",
    "ClientError",
    "DbServer",
    "MariaDBServer",
    "PostgresServer",
    "ServerStartError",
    "mysql_option_value",
    "pgpass_escape",
    "start_mariadb",
    "start_postgresql",
]

APP_USER = "backup_user"
#: Characters: P a : s s \ w ' o " r d <space> # 1 =
APP_PASSWORD = "Pa:ss\\w'o\"rd #1="

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CLIENT_TIMEOUT = 120.0
PORT_ATTEMPTS = 5
#: Ports that belong to the machine's own database services; never use them.
RESERVED_PORTS = frozenset({3306, 5432})
#: psql prints SQL NULL as this string in :meth:`PostgresServer.query` (ASCII "SUB").
PG_NULL_MARKER = "\x1a"

_ADDRESS_IN_USE = re.compile(r"address already in use|bind on tcp/ip port", re.IGNORECASE)

# Environment variables that would silently change how the clients connect/authenticate.
_CLIENT_ENV_PREFIXES = ("PG", "MYSQL", "MARIADB")


class ServerStartError(RuntimeError):
    """A throwaway database server did not come up."""


class ClientError(RuntimeError):
    """A database client (psql / mysql) exited with an error."""


# --------------------------------------------------------------------------- helpers


def pgpass_escape(value: str) -> str:
    """Escape one field of a pgpass line (``\\`` and ``:`` are special)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def mysql_option_value(value: str) -> str:
    """Return ``value`` double-quoted and escaped for a MySQL/MariaDB option file."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sql_string(value: str, *, backslash_escapes: bool) -> str:
    """Quote ``value`` as an SQL string literal."""
    if backslash_escapes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _is_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


def _write_private(path: Path, content: str, owner: pwd.struct_passwd | None = None) -> None:
    """Write ``content`` to a new file that only its owner can read (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(path, 0o600)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _make_tempdir(prefix: str, owner: pwd.struct_passwd | None) -> Path:
    # Short paths: unix socket paths are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def _system_user(name: str) -> pwd.struct_passwd | None:
    """The account to run a server as: ``name`` when we are root, else ourselves (None)."""
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise ServerStartError(
            f"running as root, but the system user {name!r} does not exist "
            "(install the server package: scripts/install-test-deps.sh)"
        ) from exc


def _client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def _run(
    args: Sequence[str],
    *,
    as_user: pwd.struct_passwd | None = None,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = CLIENT_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command (optionally as another system user) and capture its output."""
    run_env = dict(env) if env is not None else _client_env()
    if as_user is not None:
        run_env["HOME"] = as_user.pw_dir
        run_env["USER"] = run_env["LOGNAME"] = as_user.pw_name
    proc = subprocess.run(
        list(args),
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=run_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
        # Drop root privileges for the server tools (they refuse to run as root).
        user=None if as_user is None else as_user.pw_uid,
        group=None if as_user is None else as_user.pw_gid,
        extra_groups=None if as_user is None else [],
    )
    if check and proc.returncode != 0:
        raise ClientError(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n"
            f"stderr:\n{proc.stderr.strip()}\nstdout:\n{proc.stdout.strip()}"
        )
    return proc


def _find_binary(names: Sequence[str], dirs: Sequence[str] = ()) -> str:
    for name in names:
        for directory in dirs:
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    raise ServerStartError(
        f"none of {list(names)} found (run scripts/install-test-deps.sh to install them)"
    )


# --------------------------------------------------------------------------- registry

_live_servers: set[DbServer] = set()
_live_lock = threading.Lock()


def _stop_all_servers() -> None:
    """atexit safety net: stop whatever a crashed/aborted test session left running."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_servers)


# --------------------------------------------------------------------------- base class


class DbServer(ABC):
    """Common interface of the throwaway servers."""

    kind: str
    host: str
    port: int
    user: str
    password: str
    tmpdir: Path
    logfile: Path

    def __init__(self, tmpdir: Path, logfile: Path) -> None:
        self.host = HOST
        self.port = 0
        self.user = APP_USER
        self.password = APP_PASSWORD
        self.tmpdir = tmpdir
        self.logfile = logfile
        self._stopped = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.host}:{self.port} dir={self.tmpdir}>"

    # -- public API -----------------------------------------------------------------

    @abstractmethod
    def create_database(self, name: str) -> None:
        """Create database ``name``."""

    @abstractmethod
    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists (disconnecting other sessions first)."""

    @abstractmethod
    def run_client(
        self, sql: str, database: str, *, password: str | None = None, tabular: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Feed ``sql`` to the real command-line client over TCP as the app user.

        ``password`` overrides the app password (e.g. to check that a wrong one is
        rejected); the result is returned unchecked.
        """

    @abstractmethod
    def _parse_rows(self, stdout: str) -> list[tuple[str | None, ...]]: ...

    @abstractmethod
    def _shutdown(self) -> None: ...

    def execute(self, sql: str, database: str) -> None:
        """Run ``sql`` (one or more statements); raise :class:`ClientError` on failure."""
        self._check(self.run_client(sql, database), sql)

    def query(self, sql: str, database: str) -> list[tuple[str | None, ...]]:
        """Run ``sql`` and return the rows as tuples of strings (SQL NULL -> None)."""
        proc = self._check(self.run_client(sql, database, tabular=True), sql)
        return self._parse_rows(proc.stdout)

    def stop(self) -> None:
        """Stop the server (fast), and remove its temporary directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._shutdown()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            with _live_lock:
                _live_servers.discard(self)

    # -- helpers --------------------------------------------------------------------

    def _register(self) -> None:
        with _live_lock:
            _live_servers.add(self)

    def _private_file(self, stem: str) -> Path:
        return self.tmpdir / f"{stem}-{uuid.uuid4().hex}"

    def _log_size(self) -> int:
        try:
            return self.logfile.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int, lines: int = 40) -> str:
        """The last ``lines`` lines the server logged after byte ``offset``."""
        try:
            with self.logfile.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except OSError as exc:
            return f"<cannot read {self.logfile}: {exc}>"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def _check(
        self, proc: subprocess.CompletedProcess[str], sql: str
    ) -> subprocess.CompletedProcess[str]:
        if proc.returncode != 0:
            snippet = sql if len(sql) <= 2000 else sql[:2000] + "..."
            raise ClientError(
                f"{self.kind} client failed (exit {proc.returncode}) on {self.host}:{self.port}"
                f"\nstderr:\n{proc.stderr.strip()}\nSQL:\n{snippet}"
            )
        return proc


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path:
    def version_key(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_key)
    if candidates:
        return Path(candidates[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(_run([pg_config, "--bindir"]).stdout.strip())
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
        self._psql = _find_binary(["psql"], [str(bindir)])
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
            _run(args, as_user=self._owner, cwd=self.tmpdir, timeout=STARTUP_TIMEOUT)
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
            self.port = _free_port()
            log_offset = self._log_size()
            proc = _run(
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
                env=_client_env(),
            )
            if proc.returncode == 0:
                return
            log = self._log_since(log_offset)
            last_error = f"{proc.stdout}\n{proc.stderr}\n--- server log ---\n{log}"
            # pg_ctl may have timed out while the postmaster is still starting up.
            self._pg_ctl_stop()
            if not _ADDRESS_IN_USE.search(log):
                break
        raise ServerStartError(f"PostgreSQL did not start in {self.tmpdir}:\n{last_error}")

    def _setup_roles(self) -> None:
        sql = (
            f"CREATE ROLE {_pg_ident(APP_USER)} LOGIN SUPERUSER PASSWORD "
            f"{_sql_string(APP_PASSWORD, backslash_escapes=False)};\n"
        )
        # Trusted unix-socket connection as the bootstrap superuser (setup only).
        proc = _run(
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
        _write_private(path, line + "\n")

    def _pg_ctl_stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        _run(
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
            env=_client_env(),
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
        env = _client_env({"PGPASSFILE": str(pgpass), "PGDATABASE": database})
        try:
            return _run(args, input_text=sql, env=env, check=False)
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
                f"WHERE datname = {_sql_string(name, backslash_escapes=False)} "
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
    owner = _system_user("postgres")
    tmpdir = _make_tempdir("bk-pg-", owner)
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


# --------------------------------------------------------------------------- MariaDB

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
        self._mariadbd = _find_binary(["mariadbd", "mysqld"], ["/usr/sbin", "/usr/libexec"])
        self._install_db = _find_binary(
            ["mariadb-install-db", "mysql_install_db"], ["/usr/bin", "/usr/sbin"]
        )
        self._mysql = _find_binary(["mariadb", "mysql"])
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
        pw = _sql_string(APP_PASSWORD, backslash_escapes=True)
        # Bootstrap mode runs with the grant tables disabled; FLUSH PRIVILEGES loads them.
        statements = ["FLUSH PRIVILEGES;", "DROP USER IF EXISTS ''@'localhost';"]
        for host in ("%", "localhost", "127.0.0.1"):
            account = f"{_sql_string(APP_USER, backslash_escapes=True)}@'{host}'"
            statements += [
                f"CREATE USER {account} IDENTIFIED VIA mysql_native_password USING PASSWORD({pw});",
                f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
            ]
        statements.append("FLUSH PRIVILEGES;")
        _write_private(setup, "\n".join(statements) + "\n", self._owner)
        try:
            _run(
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
                env=_client_env(),
            )
        except ClientError as exc:
            raise ServerStartError(f"mariadb-install-db failed:\n{exc}") from exc
        finally:
            setup.unlink(missing_ok=True)
        _write_private(
            self._option_file,
            f"[client]\nuser={APP_USER}\npassword={mysql_option_value(APP_PASSWORD)}\n",
        )

    def _start(self) -> None:
        last_error = ""
        for _attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            log_offset = self._log_size()
            args = [self._mariadbd, "--no-defaults", *self._runtime_options()]
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.tmpdir,
                env=_client_env(),
                start_new_session=True,
            )
            error = self._wait_ready()
            if error is None:
                return
            self._terminate()
            log = self._log_since(log_offset)
            last_error = f"{error}\n--- server log ---\n{log}"
            if not _ADDRESS_IN_USE.search(log):
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
            _write_private(
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
        env = _client_env({"HOME": str(self.tmpdir)})
        try:
            return _run(args, input_text=sql, env=env, check=False)
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
    owner = _system_user("mysql")
    tmpdir = _make_tempdir("bk-my-", owner)
    server = MariaDBServer(tmpdir, owner)
    server._register()
    try:
        server._install()
        server._start()
    except BaseException:
        server.stop()
        raise
    return server
