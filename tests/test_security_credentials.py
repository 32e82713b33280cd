"""Credentials of the registered databases: encrypted at rest, never on argv, never echoed."""

from __future__ import annotations

import logging
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.apphelpers import PASSWORD, Api, make_settings, running_app, unique_name
from tests.fakes import fake_tool
from tests.locks import table_locked, tool_processes, wait_until
from tests.sample_data import create_filled


async def test_passwords_are_encrypted_at_rest(pg_server: Any, tmp_path: Path) -> None:
    source = unique_name("rest")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup("rest@example.com")
        database = await api.add_database(pg_server, source, password=pg_server.password)
    key_file = tmp_path / "secrets" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    raw = (tmp_path / "meta.sqlite3").read_bytes()
    for suffix in ("-wal", "-shm"):
        extra = tmp_path / f"meta.sqlite3{suffix}"
        if extra.exists():
            raw += extra.read_bytes()
    assert pg_server.password.encode() not in raw
    with sqlite3.connect(tmp_path / "meta.sqlite3") as connection:
        row = connection.execute("SELECT * FROM databases").fetchone()
    assert all(pg_server.password not in str(value) for value in row)

    # With another key the service cannot decrypt: the backup fails, plainly.
    other = make_settings(tmp_path, encryption_key=Fernet.generate_key().decode())
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


def credential_files(pid: int) -> list[Path]:
    """The credentials files a running tool was pointed to (argv option or PGPASSFILE)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    files = [
        Path(word.split(b"=", 1)[1].decode())
        for word in argv
        if word.startswith(b"--defaults-extra-file=")
    ]
    files += [
        Path(item.split(b"=", 1)[1].decode()) for item in environ if item.startswith(b"PGPASSFILE=")
    ]
    return files


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_password_never_on_argv_nor_in_env(
    engine: str, request: pytest.FixtureRequest, alice: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    # The service's own secrets, as an operator passes them, must not reach its children.
    service_secret = "service-key-" + "7" * 40
    monkeypatch.setenv("BACKUP_API_ENCRYPTION_KEY", service_secret)
    source = unique_name("argv")
    create_filled(server, source)
    database = await alice.add_database(server, source)
    tool = "pg_dump" if engine == "postgresql" else "mysqldump"
    seen: list[Path] = []
    for outcome in ("completed", "cancelled"):
        with table_locked(server, source):
            backup = await alice.start_backup(database["id"])
            marker = f"backup:{backup['id']}@"
            pids = await wait_until(
                lambda m=marker: tool_processes(tool, m) or tool_processes("mariadb-dump", m)
            )
            # The archive writers (the job's and the spare) carry the instance's marker.
            archivers = await wait_until(lambda: tool_processes("backup_api.archiver", "archiver@"))
            for pid in [*pids, *archivers]:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert server.password.encode() not in argv
                assert server.password.encode() not in environ
                assert service_secret.encode() not in environ
                assert b"BACKUP_API_ENCRYPTION_KEY" not in environ
            for pid in pids:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                files = credential_files(pid)
                assert len(files) == 1
                assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
                assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
                content = files[0].read_text()
                assert content.startswith(("*:*:*:*:", "[client]"))
                seen += files
                if engine == "mysql":
                    words = [w.decode() for w in argv.split(b"\0")]
                    tool_index = next(
                        i for i, w in enumerate(words) if w.endswith(("mysqldump", "mariadb-dump"))
                    )
                    assert words[tool_index + 1].startswith("--defaults-extra-file=")
            if outcome == "cancelled":
                assert (await alice.delete(f"/api/backups/{backup['id']}")).status_code == 200
        if outcome == "completed":
            # The tricky password (: \ ' " # = space) went through the file's escaping.
            assert (await alice.wait_backup(backup["id"]))["status"] == "completed"
    for path in seen:
        assert not path.exists(), f"{path} outlived its job"
        assert not path.parent.exists()

    # A failing dump removes its credentials file too.
    before = set(Path(tempfile.gettempdir()).glob("backup-api-job-*"))
    failing = await alice.add_database(server, source, password="wrong password")
    backup = await alice.wait_backup((await alice.start_backup(failing["id"]))["id"])
    assert backup["status"] == "failed"
    assert set(Path(tempfile.gettempdir()).glob("backup-api-job-*")) <= before
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
