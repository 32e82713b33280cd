"""Injection through connection fields, file names, and the host allow-list."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from backup_api.dumpers.base import ConnectionInfo, SecretPath, ToolCommand
from backup_api.dumpers.mysql import MySQLDumper
from backup_api.dumpers.postgresql import PostgreSQLDumper, build_conninfo
from backup_api.jobs.supervisor import open_secret, rendered
from backup_api.services.backups import safe_stem
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import job_workdir_contents
from tests.support.sample_data import create_filled

BASE = {
    "name": "x",
    "type": "postgresql",
    "host": "127.0.0.1",
    "port": "1",
    "username": "u",
    "password": "p",
    "db_name": "d",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("db_name", "--file=/tmp/pwned"),
        ("db_name", "-Fc"),
        ("username", "-U postgres"),
        ("host", "-h127.0.0.1"),
        ("host", "/var/run/postgresql"),
        ("host", "db1,db2"),
        ("host", "evil host"),
        ("db_name", "bad\x00name"),
        ("username", "line\nbreak"),
    ],
)
async def test_option_like_and_unsafe_fields_are_400(alice: Api, field: str, value: str) -> None:
    response = await alice.post("/api/databases", json={**BASE, field: value})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert (await alice.get("/api/databases")).json()["databases"] == []


def _run(command: ToolCommand) -> subprocess.CompletedProcess[bytes]:
    """The dumper's command, run as the service runs it (credentials as a descriptor)."""
    assert command.secret is not None
    fd = open_secret(command.secret)
    try:
        argv, extra = rendered(command, fd)
        env = dict(os.environ)
        for key, value in extra.items():
            if value == "":
                env.pop(key, None)
            else:
                env[key] = value
        return subprocess.run(
            argv, env=env, pass_fds=(fd,), capture_output=True, check=False, timeout=30
        )
    finally:
        os.close(fd)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_dumpers_cannot_be_turned_into_options(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    target = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    conn = ConnectionInfo(
        host=server.host,
        port=server.port,
        username=server.user,
        password=server.password,
        db_name=f"--file={target}",
    )
    dumper = PostgreSQLDumper() if engine == "postgresql" else MySQLDumper()
    workdir = tmp_path / "work"
    workdir.mkdir(mode=0o700)
    result = _run(dumper.dump_command(conn, workdir))
    assert result.returncode != 0
    assert b"--file=" in result.stderr  # it was taken as a (missing) database name
    assert not target.exists()


def test_conninfo_is_quoted_and_pinned() -> None:
    conn = ConnectionInfo(
        host="db.example.com",
        port=5432,
        username="o'brien",
        password="secret",
        db_name="host=127.0.0.2 dbname=x",
        pinned_address="192.0.2.10",
    )
    conninfo = build_conninfo(conn)
    assert "dbname='host=127.0.0.2 dbname=x'" in conninfo
    assert "user='o\\'brien'" in conninfo
    assert "hostaddr='192.0.2.10'" in conninfo
    assert "secret" not in conninfo


@pytest.mark.parametrize(
    "db_name", ["host=127.0.0.2 dbname=x", "postgresql://127.0.0.2/x", "dbname=postgres port=1"]
)
async def test_conninfo_injection_never_leaves_the_registered_server(
    pg_server: Any, client: httpx.AsyncClient, db_name: str
) -> None:
    # An admin, who reads the server's own answer (a non-admin reads a category).
    admin = await Api(client).signup(role="admin")
    database = await admin.add_database(pg_server, db_name)
    backup = await admin.wait_backup((await admin.start_backup(database["id"]))["id"])
    assert backup["status"] == "failed"
    # It reached the registered server, which answered about the literal name.
    assert f'database "{db_name}" does not exist' in backup["error_msg"]
    assert str(pg_server.port) in backup["error_msg"]


async def test_database_named_like_a_conninfo_is_backed_up(pg_server: Any, alice: Api) -> None:
    name = "host=127.0.0.2 dbname=x"
    pg_server.create_database(name)
    pg_server.execute("CREATE TABLE proof (v text); INSERT INTO proof VALUES ('it is me');", name)
    database = await alice.add_database(pg_server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    response = await alice.get(f"/api/backups/{backup['id']}/download")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        sql = archive.read(archive.namelist()[0]).decode()
    assert "it is me" in sql
    pg_server.drop_database(name)


async def test_mysql_localhost_goes_over_tcp(mysql_server: Any, alice: Api, tmp_path: Path) -> None:
    source = unique_name("tcp")
    create_filled(mysql_server, source)
    # "localhost" would mean the default local socket to the client; this server has
    # none there, so success proves the dump went over TCP to the registered port.
    database = await alice.add_database(mysql_server, source, host="localhost")
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    workdir = tmp_path / "w"
    workdir.mkdir()
    conn = ConnectionInfo("localhost", 3306, "u", "p", "d")
    command = MySQLDumper().dump_command(conn, workdir)
    assert command.secret is not None
    assert "protocol=TCP" in command.secret.content.decode()
    assert command.argv[1] == SecretPath("--defaults-extra-file=")
    assert job_workdir_contents(workdir) == [], "nothing written to disk"
    mysql_server.drop_database(source)


@pytest.mark.parametrize(
    "db_name",
    ["../../x", "/abs/x", "..", "a/../../b", "é" * 300, "x" * 120, "名前", "a b;rm -rf"],
)
def test_safe_stem_never_leaves_the_directory(db_name: str) -> None:
    stem = safe_stem(db_name)
    assert stem
    assert len(stem) <= 80
    assert "/" not in stem
    assert ".." not in stem
    assert not stem.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in stem)


async def test_hostile_db_name_stays_under_the_root(pg_server: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, "../../../../tmp/escape" + "x" * 100)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
    root = settings.backup_root.resolve()
    assert Path(backup["filepath"]).resolve().is_relative_to(root)
    assert "/" not in backup["filename"]
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in backup["filename"])
    assert not list(tmp_path.glob("escape*"))


async def test_allowed_hosts_at_registration_and_at_dump_time(
    pg_server: Any, tmp_path: Path
) -> None:
    source = unique_name("allow")
    create_filled(pg_server, source)
    settings = make_settings(tmp_path, allowed_db_hosts=["127.0.0.0/8"])
    async with running_app(settings) as (_, client):
        api = await Api(client).signup("allow@example.com")
        database = await api.add_database(pg_server, source, host="localhost")
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
    # The same service (same metadata) restarted with a stricter list.
    strict = settings.model_copy(update={"allowed_db_hosts": ["10.0.0.0/8", "db.internal"]})
    async with running_app(strict) as (_, client):
        api = Api(client)
        response = await client.post(
            "/auth/login", json={"email": "allow@example.com", "password": "motdepasse123"}
        )
        api.token = response.json()["token"]
        refused = await api.post("/api/databases", json={**BASE, "host": "127.0.0.1"})
        assert refused.status_code == 403
        assert refused.json() == {"error": "hôte non autorisé par la configuration: 127.0.0.1"}
        # Registered while allowed, refused at dump time now: no tool ever runs.
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "failed"
        assert "non autorisé" in backup["error_msg"]
        assert backup["started_at"] is not None
    pg_server.drop_database(source)
