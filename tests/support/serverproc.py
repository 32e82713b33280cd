"""The service as its own process (``backup-api serve``), for tests that need a real one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ServerProcess:
    """``backup-api serve`` as users run it, with its settings in the environment."""

    def __init__(self, workdir: Path, database_url: str | None = None, **settings: str) -> None:
        """``database_url`` is the metadata database (by default a SQLite file in ``workdir``;
        the ``metadata_url`` fixture gives either engine)."""
        self.workdir = workdir
        self.port = free_port()
        self.backup_root = workdir / "backups"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
        self.env.update(
            {
                "BACKUP_API_DATABASE_URL": database_url
                or f"sqlite+aiosqlite:///{workdir / 'meta.sqlite3'}",
                "BACKUP_API_BACKUP_ROOT": str(self.backup_root),
                "BACKUP_API_SECRETS_DIR": str(workdir / "secrets"),
                "BACKUP_API_SHUTDOWN_GRACE_SECONDS": "5",
                "BACKUP_API_PORT": str(self.port),
                **{f"BACKUP_API_{k.upper()}": v for k, v in settings.items()},
            }
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "backup_api.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A session of its own, as a service manager gives it (and with it, its
                # own scheduling group, apart from the test or benchmark driving it).
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def server_process(
    workdir: Path, database_url: str | None = None, **settings: str
) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir, database_url, **settings)
    try:
        yield server
    finally:
        server.stop()
