"""Credentials of the registered databases: encrypted at rest, never on argv, never echoed."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import struct
import termios
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from backup_api.jobs import markers
from backup_api.jobs.workdirs import jobs_root
from tests.support.apphelpers import (
    PASSWORD,
    Api,
    make_settings,
    metadata_sql,
    running_app,
    unique_name,
)
from tests.support.fakes import fake_tool
from tests.support.locks import job_workdir_contents, table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled


async def test_passwords_are_encrypted_at_rest(pg_server: Any, tmp_path: Path) -> None:
    source = unique_name("rest")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path)
    async with running_app(settings) as (app, client):
        api = await Api(client).signup("rest@example.com")
        database = await api.add_database(pg_server, source, password=pg_server.password)
        # Read as stored, on whichever metadata database the suite runs.
        [row] = await metadata_sql(app, "SELECT * FROM databases")
    assert all(pg_server.password not in str(value) for value in row)
    key_file = tmp_path / "secrets" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # On SQLite, the files as a whole (journal included) do not hold it either.
    files = [tmp_path / f"meta.sqlite3{suffix}" for suffix in ("", "-wal", "-shm")]
    raw = b"".join(path.read_bytes() for path in files if path.exists())
    assert pg_server.password.encode() not in raw

    # With another key the service cannot decrypt: the backup fails, plainly.
    other = make_settings(
        tmp_path,
        database_url=settings.database_url,
        encryption_key=Fernet.generate_key().decode(),
    )
    async with running_app(other) as (_, client):
        api = Api(client)
        response = await client.post(
            "/auth/login", json={"email": "rest@example.com", "password": PASSWORD}
        )
        api.token = response.json()["token"]
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
    assert backup["status"] == "failed"
    assert "déchiffrer" in backup["error_msg"]
    pg_server.drop_database(source)


def credential_descriptors(pid: int) -> list[Path]:
    """Where a running tool was told to read its credentials (``--defaults-extra-file`` or
    ``PGPASSFILE``), seen from outside: ``/proc/<pid>/fd/<n>``. Anything but a path to one
    of its own descriptors fails."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = [
        word.split(b"=", 1)[1].decode()
        for word in argv
        if word.startswith(b"--defaults-extra-file=")
    ]
    values += [
        item.split(b"=", 1)[1].decode() for item in environ if item.startswith(b"PGPASSFILE=")
    ]
    found = []
    for value in values:
        match = re.fullmatch(r"/proc/self/fd/(\d+)", value)
        assert match, f"credentials read from {value}, not from a descriptor"
        found.append(Path(f"/proc/{pid}/fd/{match[1]}"))
    return found


def held_here(descriptor: Path) -> bool:
    """Whether this process (the service runs in it) has the file behind ``descriptor``
    open too."""
    info = descriptor.stat()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            mine = fd.stat()
            if (mine.st_dev, mine.st_ino) == (info.st_dev, info.st_ino):
                return True
    return False


def unread(descriptor: Path) -> int:
    fd = os.open(descriptor, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)


async def check_credentials(pid: int, engine: str, password: str) -> None:
    """The tool reads its credentials from a descriptor open on no file system, readable
    by its owner alone, and the service keeps no copy of it."""
    descriptors = credential_descriptors(pid)
    assert len(descriptors) == 1
    descriptor = descriptors[0]
    target = os.readlink(descriptor)
    info = descriptor.stat()  # the open file itself, not the /proc link
    assert stat.S_IMODE(info.st_mode) == 0o600
    # The service closes its copy once the start returns, a moment after the tool exists.
    await wait_until(lambda: not held_here(descriptor))
    if engine == "postgresql":
        # libpq reads a plain file: an anonymous memory file, written once and sealed.
        assert target.startswith("/memfd:"), target
        assert stat.S_ISREG(info.st_mode)
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        assert descriptor.read_text() == f"*:*:*:*:{escaped}\n"
        fd = os.open(descriptor, os.O_WRONLY | os.O_APPEND)
        try:
            with pytest.raises(PermissionError):  # sealed: the tool cannot change it
                os.write(fd, b"*:*:*:*:other\n")
        finally:
            os.close(fd)
    else:
        # The option file came through a pipe, which the tool reads once connecting; then,
        # opened without waiting for a writer, it reads as ended: nothing holds its write
        # end, nobody else can read what it carried.
        assert target.startswith("pipe:["), target
        assert stat.S_ISFIFO(info.st_mode)
        await wait_until(lambda: unread(descriptor) == 0)
        fd = os.open(descriptor, os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert os.read(fd, 4096) == b""
        finally:
            os.close(fd)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_password_never_on_argv_nor_in_env(
    engine: str,
    request: pytest.FixtureRequest,
    app: FastAPI,
    alice: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    # The service's own secrets, as an operator passes them, must not reach its children.
    service_secret = "service-key-" + "7" * 40
    monkeypatch.setenv("BACKUP_API_ENCRYPTION_KEY", service_secret)
    settings = app.state.backup_api.settings
    workdirs = jobs_root(settings)
    source = unique_name("argv")
    create_filled(server, source)
    database = await alice.add_database(server, source)
    tool = "pg_dump" if engine == "postgresql" else "mysqldump"
    for outcome in ("completed", "cancelled"):
        with table_locked(server, source):
            backup = await alice.start_backup(database["id"])
            # This instance's processes only: other services may run on this machine.
            marker = markers.marker(f"backup:{backup['id']}", settings)
            pids = await wait_until(
                lambda m=marker: tool_processes(tool, m) or tool_processes("mariadb-dump", m)
            )
            # The archive processes (the job's and the one waiting for the next job) carry
            # the instance's marker.
            archive_processes = await wait_until(
                lambda: tool_processes(
                    "backup_api.archiving.child", markers.marker("archive", settings)
                )
            )
            for pid in [*pids, *archive_processes]:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert server.password.encode() not in argv
                assert server.password.encode() not in environ
                assert service_secret.encode() not in environ
                assert b"BACKUP_API_ENCRYPTION_KEY" not in environ
            for pid in pids:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                await check_credentials(pid, engine, server.password)
                if engine == "mysql":
                    words = [w.decode() for w in argv.split(b"\0")]
                    tool_index = next(
                        i for i, w in enumerate(words) if w.endswith(("mysqldump", "mariadb-dump"))
                    )
                    assert words[tool_index + 1].startswith("--defaults-extra-file=")
            # What the tool may look for on disk is a directory of the job's own, empty
            # (beside a first backup, the client asking the server for the dump's size may
            # hold one of its own for a while, see jobs.progress).
            (workdir,) = workdirs.glob(f"backup-{backup['id']}-*")
            assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
            assert job_workdir_contents(workdir) == []
            if outcome == "cancelled":
                assert (await alice.delete(f"/api/backups/{backup['id']}")).status_code == 200
        if outcome == "completed":
            # The tricky password (: \ ' " # = space) went through the file's escaping.
            assert (await alice.wait_backup(backup["id"]))["status"] == "completed"
        assert list(workdirs.iterdir()) == [], "a job directory outlived its job"

    # A failing dump removes its directory too.
    failing = await alice.add_database(server, source, password="wrong password")
    backup = await alice.wait_backup((await alice.start_backup(failing["id"]))["id"])
    assert backup["status"] == "failed"
    assert list(workdirs.iterdir()) == []
    server.drop_database(source)


async def test_mysql_tool_echoing_the_password_is_scrubbed(
    mysql_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A stand-in mysqldump that finds the password in its option file and prints it.
    script = (
        'file=$(echo "$1" | sed "s/^--defaults-extra-file=//")\n'
        'pw=$(sed -n \'s/^password="\\(.*\\)"$/\\1/p\' "$file")\n'
        'echo "mysqldump: Got error: 1045: Access denied (using password: $pw)" >&2\n'
        "exit 2\n"
    )
    tool = fake_tool(tmp_path / "bin", "mysqldump", script)
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, mysqldump_path=str(tool), log_level="debug")
    secret = "Visible-Secret-42"
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(mysql_server, "mysql", password=secret)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        pages = [
            (await api.get(url)).text
            for url in ("/api/databases", f"/api/databases/{database['id']}", "/api/backups")
        ]
    assert backup["status"] == "failed"
    assert "Access denied (using password: ***)" in backup["error_msg"]
    assert secret not in backup["error_msg"]
    assert all(secret not in page for page in pages)
    assert secret not in caplog.text
