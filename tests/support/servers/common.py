"""What the throwaway database servers share: the app account, the client runner, the base class.

Each server runs on a free TCP port on 127.0.0.1 with its data in a fresh temporary
directory and uses real password authentication over TCP.  The application account is
``backup_user`` with a password full of characters that need escaping in pgpass and MySQL
option files.

When the process runs as root (as in CI) the servers are run as the ``postgres`` /
``mysql`` system users, because neither server agrees to run as root.

The password never appears on a client's command line: each engine's client reads it from
a 0600 file.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

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

ADDRESS_IN_USE = re.compile(r"address already in use|bind on tcp/ip port", re.IGNORECASE)

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


def sql_string(value: str, *, backslash_escapes: bool) -> str:
    """Quote ``value`` as an SQL string literal."""
    if backslash_escapes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


def is_root() -> bool:
    return os.geteuid() == 0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


def write_private(path: Path, content: str, owner: pwd.struct_passwd | None = None) -> None:
    """Write ``content`` to a new file that only its owner can read (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(path, 0o600)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def make_tempdir(prefix: str, owner: pwd.struct_passwd | None) -> Path:
    # Short paths: unix socket paths are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def system_user(name: str) -> pwd.struct_passwd | None:
    """The account to run a server as: ``name`` when we are root, else ourselves (None)."""
    if not is_root():
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise ServerStartError(
            f"running as root, but the system user {name!r} does not exist "
            "(install the server package: scripts/install-test-deps.sh)"
        ) from exc


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def run_command(
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
    run_env = dict(env) if env is not None else client_env()
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


def find_binary(names: Sequence[str], dirs: Sequence[str] = ()) -> str:
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
