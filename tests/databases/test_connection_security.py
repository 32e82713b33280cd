"""A non-admin only ever reaches a server that authenticated the credentials they gave.

The suite's own PostgreSQL gets one ``trust`` entry (for a dedicated role) and its MariaDB
one account without a password, as the attacked machine had; admins keep full reach, and
``BACKUP_API_UNSAFE_ALLOW_UNAUTHENTICATED_DB_FOR_ALL_USERS`` extends it to everyone."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from backup_api.jobs.failures import CREDENTIALS_REQUIRED, UNCHECKED_SERVER
from backup_api.netpolicy import HostNotAllowedError, allowed_among
from tests.support.apphelpers import PASSWORD, Api, make_settings, running_app, unique_name
from tests.support.fakes import fake_tool
from tests.support.fakeservers import mysql_accept_all, serving
from tests.support.sample_data import create_filled


async def _wait_for(check: Any, deadline: float = 20) -> None:
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, "the server's configuration did not apply in time"
        await asyncio.sleep(0.05)


class TrustedRole:
    """A PostgreSQL role with no password that a ``trust`` line lets in, once enabled."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.name = f"trusted_{uuid.uuid4().hex[:8]}"
        self._hba = server.datadir / "pg_hba.conf"
        self._original = self._hba.read_text()

    async def _trusted(self) -> bool:
        try:
            connection = await asyncpg.connect(
                host=self.server.host,
                port=self.server.port,
                user=self.name,
                password="not-checked",
                database="postgres",
                ssl=False,
            )
        except asyncpg.InvalidAuthorizationSpecificationError:
            return False
        await connection.close()
        return True

    async def enable(self) -> None:
        line = f"host all {self.name} 127.0.0.1/32 trust\n"
        self._hba.write_text(line + self._original)
        self.server.execute("SELECT pg_reload_conf()", "postgres")
        await _wait_for(self._trusted)

    async def disable(self) -> None:
        self._hba.write_text(self._original)
        self.server.execute("SELECT pg_reload_conf()", "postgres")
        await _wait_for(lambda: _negate(self._trusted))


async def _negate(check: Any) -> bool:
    return not await check()


@pytest.fixture
async def trusted_role(pg_server: Any) -> AsyncIterator[TrustedRole]:
    role = TrustedRole(pg_server)
    pg_server.execute(f'CREATE ROLE "{role.name}" LOGIN SUPERUSER', "postgres")
    try:
        yield role
    finally:
        await role.disable()
        pg_server.execute(f'DROP ROLE "{role.name}"', "postgres")


@pytest.fixture
def passwordless_account(mysql_server: Any) -> Iterator[str]:
    name = f"nopw_{uuid.uuid4().hex[:8]}"
    mysql_server.execute(f"CREATE USER '{name}'@'%'; GRANT ALL ON *.* TO '{name}'@'%';", "mysql")
    try:
        yield name
    finally:
        mysql_server.execute(f"DROP USER '{name}'@'%'", "mysql")


@pytest.fixture
def pg_source(pg_server: Any) -> Iterator[str]:
    name = unique_name("trust")
    create_filled(pg_server, name)
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def mysql_source(mysql_server: Any) -> Iterator[str]:
    name = unique_name("nopw")
    create_filled(mysql_server, name)
    yield name
    mysql_server.drop_database(name)


def recording_tool(directory: Path, name: str, log: Path) -> str:
    """The real ``name``, with a line in ``log`` each time it is run for a job."""
    real = shutil.which(name)
    assert real is not None
    script = f'case "$1" in --version) ;; *) echo "$1" >> "{log}" ;; esac\nexec "{real}" "$@"\n'
    return str(fake_tool(directory, name, script))


def tool_runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def dumped_sql(response: httpx.Response) -> str:
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return archive.read(archive.namelist()[0]).decode()


async def login(client: httpx.AsyncClient, email: str) -> Api:
    api = Api(client)
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    api.token = response.json()["token"]
    api.user = response.json()["user"]
    return api


def pg_body(server: Any, role: str, db_name: str, password: str = "a guess") -> dict[str, Any]:  # noqa: S107
    return {
        "name": "trust",
        "type": "postgresql",
        "host": server.host,
        "port": str(server.port),
        "username": role,
        "password": password,
        "db_name": db_name,
    }


def mysql_body(server: Any, account: str, db_name: str, password: str = "") -> dict[str, Any]:
    return {
        "name": "sans mot de passe",
        "type": "mysql",
        "host": server.host,
        "port": str(server.port),
        "username": account,
        "password": password,
        "db_name": db_name,
    }


# ---------------------------------------------------------------------------- registration


async def test_non_admin_cannot_register_a_trusting_postgresql(
    pg_server: Any, trusted_role: TrustedRole, pg_source: str, alice: Api
) -> None:
    await trusted_role.enable()
    for password in ("anything", ""):
        body = pg_body(pg_server, trusted_role.name, pg_source, password)
        response = await alice.post("/api/databases", json=body)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": UNCHECKED_SERVER
            if password
            else f"Données invalides: password: {CREDENTIALS_REQUIRED}"
        }
    # The same role, once the server checks passwords again, is accepted: it will refuse
    # whatever wrong password the user gives.
    await trusted_role.disable()
    response = await alice.post(
        "/api/databases", json=pg_body(pg_server, trusted_role.name, pg_source)
    )
    assert response.status_code == 201, response.text
    # Changing it back to the trusting server through a PUT is refused the same way.
    await trusted_role.enable()
    database_id = response.json()["database"]["id"]
    response = await alice.put(f"/api/databases/{database_id}", json={"db_name": "postgres"})
    assert response.status_code == 400
    assert response.json() == {"error": UNCHECKED_SERVER}


async def test_non_admin_cannot_register_a_passwordless_mysql_account(
    mysql_server: Any, passwordless_account: str, mysql_source: str, alice: Api
) -> None:
    body = mysql_body(mysql_server, passwordless_account, mysql_source)
    response = await alice.post("/api/databases", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"Données invalides: password: {CREDENTIALS_REQUIRED}"}
    assert (await alice.get("/api/databases")).json()["databases"] == []
    # With a password, the account refuses it: registering is harmless, and the backup
    # fails on the server's refusal.
    database = await alice.add_database(
        mysql_server, mysql_source, username=passwordless_account, password="a guess"
    )
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "failed"
    assert backup["error_msg"] == "connexion impossible: authentification refusée par le serveur"


async def test_non_admin_cannot_register_a_server_that_lets_anyone_in(alice: Api) -> None:
    """A MySQL server that accepts any password (--skip-grant-tables) is refused too."""
    async with serving(mysql_accept_all) as fake:
        response = await alice.post(
            "/api/databases",
            json={**mysql_body_for_port(fake.port), "password": "any password at all"},
        )
    assert response.status_code == 400
    assert response.json() == {"error": UNCHECKED_SERVER}
    assert fake.connections, "the pre-flight asked the server"


def mysql_body_for_port(port: int) -> dict[str, Any]:
    return {
        "name": "x",
        "type": "mysql",
        "host": "127.0.0.1",
        "port": str(port),
        "username": "root",
        "db_name": "mysql",
    }


async def test_unreachable_server_is_accepted_at_registration(alice: Api) -> None:
    async with serving(mysql_accept_all) as fake:
        port = fake.port
    response = await alice.post(
        "/api/databases", json={**mysql_body_for_port(port), "password": "x"}
    )
    assert response.status_code == 201, response.text


# ---------------------------------------------------------------------------- admins


async def test_admin_backs_up_through_trust_and_a_passwordless_account(
    pg_server: Any,
    mysql_server: Any,
    trusted_role: TrustedRole,
    passwordless_account: str,
    pg_source: str,
    mysql_source: str,
    client: httpx.AsyncClient,
) -> None:
    await trusted_role.enable()
    admin = await Api(client).signup(role="admin")
    bodies = [
        pg_body(pg_server, trusted_role.name, pg_source, password=""),
        mysql_body(mysql_server, passwordless_account, mysql_source),
    ]
    for body in bodies:
        response = await admin.post("/api/databases", json=body)
        assert response.status_code == 201, response.text
        database = response.json()["database"]
        backup = await admin.wait_backup((await admin.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        sql = dumped_sql(await admin.get(f"/api/backups/{backup['id']}/download"))
        assert "item 1 l" in sql


async def test_the_unsafe_setting_extends_full_reach_to_everyone(
    pg_server: Any,
    mysql_server: Any,
    trusted_role: TrustedRole,
    passwordless_account: str,
    pg_source: str,
    mysql_source: str,
    tmp_path: Path,
) -> None:
    await trusted_role.enable()
    settings = make_settings(tmp_path, unsafe_allow_unauthenticated_db_for_all_users=True)
    async with running_app(settings) as (_, client):
        user = await Api(client).signup()
        assert user.user["role"] == "user"
        for body in (
            pg_body(pg_server, trusted_role.name, pg_source),
            mysql_body(mysql_server, passwordless_account, mysql_source),
        ):
            response = await user.post("/api/databases", json=body)
            assert response.status_code == 201, response.text
            database = response.json()["database"]
            backup = await user.wait_backup((await user.start_backup(database["id"]))["id"])
            assert backup["status"] == "completed", backup["error_msg"]


# ---------------------------------------------------------------------------- at job time


async def test_jobs_are_refused_when_the_server_stops_checking(
    pg_server: Any, trusted_role: TrustedRole, pg_source: str, tmp_path: Path
) -> None:
    """Registered while the server checked passwords; it trusts the role now: neither a
    backup nor a restore reaches it, and no tool is even started."""
    log = tmp_path / "runs.log"
    bin_dir = tmp_path / "bin"
    settings = make_settings(
        tmp_path,
        pg_dump_path=recording_tool(bin_dir, "pg_dump", log),
        psql_path=recording_tool(bin_dir, "psql", log),
    )
    async with running_app(settings) as (_, client):
        user = await Api(client).signup()
        own = await user.add_database(pg_server, pg_source)
        backup = await user.wait_backup((await user.start_backup(own["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        # The registration's connection (psql, as a backup connects) and the dump; and,
        # if it got to start before the dump ended, the client asking the server for the
        # dump's size beside this first backup (psql again, see jobs.progress).
        assert tool_runs(log) in (2, 3)
        trusting = await user.add_database(
            pg_server, pg_source, username=trusted_role.name, password="a guess"
        )
        await trusted_role.enable()
        runs = tool_runs(log)

        refused = await user.wait_backup((await user.start_backup(trusting["id"]))["id"])
        assert refused["status"] == "failed"
        assert refused["error_msg"] == UNCHECKED_SERVER
        response = await user.post(
            # The same server and database as the backup's source: confirmed, as a user must.
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": trusting["id"], "confirm": pg_source},
        )
        assert response.status_code == 202, response.text
        restore = await user.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "failed"
        assert restore["error_msg"] == UNCHECKED_SERVER
        assert tool_runs(log) == runs, "no dump or restore tool may run"


async def test_the_owner_role_at_job_time_is_what_counts(
    mysql_server: Any, passwordless_account: str, mysql_source: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    settings = make_settings(
        tmp_path, mysqldump_path=recording_tool(tmp_path / "bin", "mysqldump", log)
    )
    async with running_app(settings) as (_, client):
        root = await Api(client).signup("root@example.com", role="admin")
        response = await root.post(
            "/auth/register",
            json={"email": "ops@example.com", "password": PASSWORD, "role": "admin"},
        )
        assert response.status_code == 201, response.text
        ops = await login(client, "ops@example.com")
        response = await ops.post(
            "/api/databases", json=mysql_body(mysql_server, passwordless_account, mysql_source)
        )
        assert response.status_code == 201, response.text
        database = response.json()["database"]
        backup = await ops.wait_backup((await ops.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        assert tool_runs(log) == 1

        response = await root.put(f"/api/users/{ops.user['id']}/role", json={"role": "user"})
        assert response.status_code == 200, response.text
        # The role change ended the earlier token.
        ops = await login(client, "ops@example.com")
        backup = await ops.wait_backup((await ops.start_backup(database["id"]))["id"])
        assert backup["status"] == "failed"
        assert backup["error_msg"] == CREDENTIALS_REQUIRED
        assert tool_runs(log) == 1
        # An admin backing up the (now) non-admin's database is held to the owner's rule.
        backup = await root.wait_backup((await root.start_backup(database["id"]))["id"])
        assert backup["error_msg"] == CREDENTIALS_REQUIRED


# ---------------------------------------------------------------------------- addresses

SPECIAL_HOSTS = [
    "169.254.169.254",
    "0.0.0.0",
    "::",
    "fe80::1",
    "224.0.0.1",
    "ff02::1",
    "::ffff:169.254.169.254",
]


@pytest.mark.parametrize("role", ["user", "admin"])
async def test_special_addresses_are_refused_for_everyone(
    client: httpx.AsyncClient, role: str
) -> None:
    api = await Api(client).signup(role=role)
    for host in SPECIAL_HOSTS:
        body = {**mysql_body_for_port(1), "host": host, "password": "x"}
        response = await api.post("/api/databases", json=body)
        assert response.status_code == 403, (host, response.text)
        assert response.json()["error"] == (
            f"adresse non autorisée (lien local, multicast ou non spécifiée): {host}"
        )
    assert (await api.get("/api/databases")).json()["databases"] == []


async def test_special_addresses_are_allowed_when_listed(
    pg_server: Any, pg_source: str, tmp_path: Path
) -> None:
    # 0.0.0.0 reaches this very host: listed, a non-admin backs up the suite's server
    # through it (the pre-flight went there too and was refused a wrong password).
    settings = make_settings(tmp_path, allowed_db_hosts=["0.0.0.0", "169.254.0.0/16"])
    async with running_app(settings) as (_, client):
        user = await Api(client).signup("listed@example.com")
        database = await user.add_database(pg_server, pg_source, host="0.0.0.0")
        backup = await user.wait_backup((await user.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        response = await user.post(
            "/api/databases", json={**mysql_body_for_port(1), "host": "::", "password": "x"}
        )
        assert response.status_code == 403
        assert "hôte non autorisé par la configuration" in response.json()["error"]
    # The same service restarted without the listing: the registered database is refused
    # at job time, before any connection.
    async with running_app(settings.model_copy(update={"allowed_db_hosts": []})) as (_, client):
        user = await login(client, "listed@example.com")
        backup = await user.wait_backup((await user.start_backup(database["id"]))["id"])
        assert backup["status"] == "failed"
        assert backup["error_msg"] == (
            "adresse non autorisée (lien local, multicast ou non spécifiée): 0.0.0.0"
        )


def test_address_policy() -> None:
    assert allowed_among("db", ["10.0.0.1"], []) == ["10.0.0.1"]
    assert allowed_among("db", ["169.254.1.1", "10.0.0.1"], []) == ["10.0.0.1"]
    for address in SPECIAL_HOSTS:
        with pytest.raises(HostNotAllowedError, match="adresse non autorisée"):
            allowed_among("db", [address], [])
    assert allowed_among("db", ["169.254.169.254"], ["169.254.169.254"]) == ["169.254.169.254"]
    assert allowed_among("meta.internal", ["169.254.169.254"], ["meta.internal"]) == [
        "169.254.169.254"
    ]
    assert allowed_among("db", ["::ffff:10.1.2.3"], ["10.0.0.0/8"]) == ["::ffff:10.1.2.3"]
    with pytest.raises(HostNotAllowedError, match="non autorisé par la configuration"):
        allowed_among("db", ["169.254.1.1"], ["10.0.0.0/8"])
