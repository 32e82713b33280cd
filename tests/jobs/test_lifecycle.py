"""The real server process (``backup-api serve``) killed and stopped mid-dump."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backup_api.db import Metadata, create_engine
from backup_api.jobs.queue import CancelReason, InProcessQueue, Job, JobKind
from backup_api.repositories import backups
from tests.support.apphelpers import PASSWORD, Api, make_settings, running_app, unique_name
from tests.support.locks import (
    archive_processes,
    job_workdir_contents,
    table_locked,
    tool_processes,
    wait_until,
)
from tests.support.sample_data import create_bulky, create_filled
from tests.support.serverproc import server_process

BACKUP_STOPPED = "le serveur s'est arrêté pendant la sauvegarde"
RESTORE_STOPPED = "le serveur s'est arrêté pendant la restauration"


class Client:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.token = ""

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.request(method, url, headers=headers, **kwargs)

    def login(self, email: str, register: bool) -> None:
        body = {"email": email, "password": PASSWORD}
        if register:
            assert self.call("POST", "/auth/register", json=body).status_code == 201
        response = self.call("POST", "/auth/login", json=body)
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]

    def add_database(self, server: Any, db_name: str) -> int:
        response = self.call(
            "POST",
            "/api/databases",
            json={
                "name": db_name,
                "type": server.kind,
                "host": server.host,
                "port": server.port,
                "username": server.user,
                "password": server.password,
                "db_name": db_name,
            },
        )
        assert response.status_code == 201, response.text
        database_id: int = response.json()["database"]["id"]
        return database_id

    def record(self, kind: str, record_id: int) -> dict[str, Any]:
        response = self.call("GET", f"/api/{kind}s/{record_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()[kind]
        return record

    def wait_done(self, kind: str, record_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (record := self.record(kind, record_id))["status"] == "pending":
            assert time.monotonic() < deadline, record
            time.sleep(0.1)
        return record


def wait_for(predicate: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def alive(pid: int) -> bool:
    try:
        return ") Z" not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def source(pg_server: Any) -> Iterator[str]:
    name = unique_name("life")
    create_filled(pg_server, name)
    yield name
    pg_server.drop_database(name)


def test_sigkill_mid_dump_then_restart(pg_server: Any, source: str, tmp_path: Path) -> None:
    other = unique_name("queued")
    create_filled(pg_server, other)
    with server_process(tmp_path, max_concurrent_jobs="1") as server:
        server.start()
        client = Client(server.url)
        try:
            client.login("crash@example.com", register=True)
            blocked_db = client.add_database(pg_server, source)
            queued_db = client.add_database(pg_server, other)
            with table_locked(pg_server, source):
                blocked = client.call("POST", f"/api/backups/database/{blocked_db}").json()
                queued = client.call("POST", f"/api/backups/database/{queued_db}").json()
                blocked_id, queued_id = blocked["backup"]["id"], queued["backup"]["id"]
                pids = wait_for(lambda: tool_processes("pg_dump", f"backup:{blocked_id}@"))
                pids += wait_for(lambda: archive_processes(server.backup_root))
                assert client.record("backup", queued_id)["started_at"] is None
                server.signal(signal.SIGKILL)
                server.wait(10)
                # The dump and its archive process die with the server (parent-death
                # signal), no orphan runs on.
                wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
            server.start()
            record = client.record("backup", blocked_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == BACKUP_STOPPED
            # The queued backup that never started is resumed and completes.
            assert client.wait_done("backup", queued_id)["status"] == "completed"
            assert leftovers(server.backup_root) == [
                server.backup_root / "postgresql" / client.record("backup", queued_id)["filename"]
            ], "a partial file survived the crash"
            again = client.call("POST", f"/api/backups/database/{blocked_db}").json()
            assert client.wait_done("backup", again["backup"]["id"])["status"] == "completed"
        finally:
            client.close()
    pg_server.drop_database(other)


def test_sigterm_mid_dump_stops_cleanly(pg_server: Any, source: str, tmp_path: Path) -> None:
    with server_process(tmp_path) as server:
        server.start()
        client = Client(server.url)
        try:
            client.login("term@example.com", register=True)
            database = client.add_database(pg_server, source)
            with table_locked(pg_server, source):
                backup = client.call("POST", f"/api/backups/database/{database}").json()
                backup_id = backup["backup"]["id"]
                pids = wait_for(lambda: tool_processes("pg_dump", f"backup:{backup_id}@"))
                began = time.monotonic()
                server.signal(signal.SIGTERM)
                # uvicorn re-raises the signal after its graceful shutdown.
                assert server.wait(5 + 15) in (0, -signal.SIGTERM)
                assert time.monotonic() - began < 5 + 10
                assert "Application shutdown complete" in server.log.read_text()
                assert not any(alive(pid) for pid in pids), "the dump outlived the server"
            assert leftovers(server.backup_root) == []
            server.start()
            record = client.record("backup", backup_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == BACKUP_STOPPED
        finally:
            client.close()


def test_sigkill_mid_restore(pg_server: Any, source: str, tmp_path: Path) -> None:
    with server_process(tmp_path) as server:
        server.start()
        client = Client(server.url)
        try:
            client.login("restore@example.com", register=True)
            database = client.add_database(pg_server, source)
            backup = client.call("POST", f"/api/backups/database/{database}").json()
            assert client.wait_done("backup", backup["backup"]["id"])["status"] == "completed"
            with table_locked(pg_server, source):
                response = client.call(
                    "POST",
                    f"/api/backups/{backup['backup']['id']}/restore",
                    json={"database_id": database, "confirm": source},
                )
                restore_id = response.json()["restore"]["id"]
                pids = wait_for(lambda: tool_processes("psql", f"restore:{restore_id}@"))
                server.signal(signal.SIGKILL)
                server.wait(10)
                wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
            server.start()
            record = client.record("restore", restore_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == RESTORE_STOPPED
        finally:
            client.close()


def test_start_kills_tool_processes_left_by_a_crash(tmp_path: Path) -> None:
    with server_process(tmp_path) as server:
        root = server.backup_root
        root.mkdir(parents=True)
        env = {**os.environ, "BACKUP_API_JOB": f"backup:999@{root.resolve()}"}
        stranger_env = {**os.environ, "BACKUP_API_JOB": f"backup:999@{tmp_path / 'elsewhere'}"}
        orphan = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
        stranger = subprocess.Popen(["sleep", "300"], env=stranger_env, start_new_session=True)
        try:
            server.start()
            wait_for(lambda: orphan.poll() is not None, timeout=10)
            assert orphan.returncode == -signal.SIGKILL
            assert stranger.poll() is None, "a process of another instance was killed"
        finally:
            for process in (orphan, stranger):
                if process.poll() is None:
                    process.kill()
                process.wait()


def scram_verifier(password: str) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, 7677): the server is
    given this, never the password itself, so its files cannot hold it."""
    salt, iterations = os.urandom(16), 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


@contextlib.contextmanager
def account_of_its_own(server: Any, database: str) -> Iterator[tuple[str, str]]:
    """A database account whose password appears nowhere but in the service's hands."""
    user, password = unique_name("crash"), "Crash-" + uuid.uuid4().hex
    if server.kind == "postgresql":
        server.execute(
            f"CREATE ROLE {user} LOGIN PASSWORD '{scram_verifier(password)}';"
            f"GRANT {server.user} TO {user};",
            "postgres",
        )
        drop = f"DROP ROLE {user}"
    else:
        # mysql_native_password's stored form, SHA1(SHA1(password)): the server's own scheme.
        inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
        native = "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()
        account = f"'{user}'@'{server.host}'"
        server.execute(
            f"CREATE USER {account} IDENTIFIED BY PASSWORD '{native}';"
            f"GRANT ALL ON `{database}`.* TO {account};",
            database,
        )
        drop = f"DROP USER {account}"
    try:
        yield user, password
    finally:
        server.execute(drop, "postgres" if server.kind == "postgresql" else database)


def files_holding(secret: bytes, roots: list[Path], since: float) -> list[Path]:
    """Regular files under ``roots``, written since ``since``, whose content holds
    ``secret`` (a credentials file is small: larger files are not read)."""
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                with contextlib.suppress(OSError):
                    info = path.lstat()
                    recent = info.st_mtime >= since or info.st_ctime >= since
                    small = stat.S_ISREG(info.st_mode) and info.st_size < 1 << 20
                    if recent and small and secret in path.read_bytes():
                        found.append(path)
    return found


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_sigkill_mid_dump_leaves_no_credentials_behind(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    began = time.time() - 1  # file times are coarser than the clock
    source = unique_name("crashcred")
    create_filled(server, source)
    tool = "pg_dump" if engine == "postgresql" else "mysqldump"
    with account_of_its_own(server, source) as (user, password), server_process(tmp_path) as api:
        jobs_dir = Path(api.env["BACKUP_API_SECRETS_DIR"]) / ".jobs"
        api.start()
        client = Client(api.url)
        try:
            client.login("crashcred@example.com", register=True)
            response = client.call(
                "POST",
                "/api/databases",
                json={
                    "name": source,
                    "type": engine,
                    "host": server.host,
                    "port": server.port,
                    "username": user,
                    "password": password,
                    "db_name": source,
                },
            )
            assert response.status_code == 201, response.text
            database_id = response.json()["database"]["id"]
            with table_locked(server, source):
                backup = client.call("POST", f"/api/backups/database/{database_id}").json()
                backup_id = backup["backup"]["id"]
                marker = f"backup:{backup_id}@{api.backup_root.resolve()}"
                pids = wait_for(
                    lambda: tool_processes(tool, marker) or tool_processes("mariadb-dump", marker)
                )
                api.signal(signal.SIGKILL)
                api.wait(10)
                wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
            roots = {Path(tempfile.gettempdir()).resolve(), Path("/tmp"), tmp_path.resolve()}
            assert files_holding(password.encode(), sorted(roots), began) == []
            # What stayed on disk is the job's directory, under the service's own, empty
            # (and that of the estimate asked beside a first backup, if it still ran).
            left = list(jobs_dir.iterdir())
            assert [d for d in left if d.name.startswith(f"backup-{backup_id}-")]
            assert all(job_workdir_contents(directory) == [] for directory in left)
            api.start()
            assert list(jobs_dir.iterdir()) == [], "recovery left a job directory"
            record = client.record("backup", backup_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == BACKUP_STOPPED
            # The account works: the same backup, uninterrupted, completes.
            again = client.call("POST", f"/api/backups/database/{database_id}").json()
            assert client.wait_done("backup", again["backup"]["id"])["status"] == "completed"
            assert list(jobs_dir.iterdir()) == []
        finally:
            client.close()
    server.drop_database(source)


async def test_a_job_stopped_before_its_first_step_still_ends() -> None:
    """Cancelled in the very step that started it (the task never ran its coroutine), a
    job still ends: neither ``cancel`` nor ``shutdown`` waits for it forever."""
    started: list[int] = []

    async def body(job: Job) -> None:
        started.append(job.id)
        await asyncio.Event().wait()

    queue = InProcessQueue(2, body, max_per_user=2)
    async with asyncio.timeout(30):
        queue.submit(JobKind.BACKUP, 1, 1, 1)
        assert await queue.cancel(JobKind.BACKUP, 1, CancelReason.DELETED)
        queue.submit(JobKind.BACKUP, 2, 1, 1)
        queue.submit(JobKind.RESTORE, 3, 2, 1)
        await queue.shutdown()
    assert started == []
    assert (queue.running_count, queue.queued_count) == (0, 0)


async def test_leaving_the_app_while_a_mysql_dump_waits_on_a_lock(
    mysql_server: Any, tmp_path: Path
) -> None:
    """The app stops while its dump is blocked on a table lock, writing nothing: the stop
    kills the tool and its archive process, and the backup is failed for that reason."""
    source = unique_name("held")
    create_bulky(mysql_server, source)
    settings = make_settings(tmp_path)
    try:
        with table_locked(mysql_server, source, "items"):
            async with running_app(settings) as (_, client):
                alice = await Api(client).signup()
                database = await alice.add_database(mysql_server, source)
                backup = await alice.start_backup(database["id"])
                marker = f"backup:{backup['id']}@{settings.backup_root.resolve()}"
                tools = await wait_until(lambda: tool_processes("mysqldump", marker))
                # The dump has written ``bulk`` and waits on ``items``, archive running.
                archivers = await wait_until(lambda: archive_processes(settings.backup_root))
            assert not any(alive(pid) for pid in [*tools, *archivers])
            assert leftovers(settings.backup_root) == []
        # Read as the stop left it: a restart would fail a started job the same way.
        engine = create_engine(settings)
        metadata = Metadata(engine, settings)
        try:
            record = await metadata.read(lambda c: backups.get(c, backup["id"]))
        finally:
            metadata.close()
            await engine.dispose()
        assert record is not None
        assert (record.status, record.error_msg) == ("failed", BACKUP_STOPPED)
    finally:
        mysql_server.drop_database(source)
