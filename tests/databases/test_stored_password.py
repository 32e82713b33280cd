"""A stored password only ever goes where it was typed for, and never in clear.

Fake servers (written here, speaking the real protocols) ask for the password in clear:
PostgreSQL's AuthenticationCleartextPassword, MySQL's switch to ``mysql_clear_password``;
they record what they receive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.apphelpers import Api, unique_name
from tests.support.fakeservers import mysql_clear_switch, pg_cleartext, serving
from tests.support.sample_data import create_filled

AUTH_FAILED = "connexion impossible: authentification refusée par le serveur"


@pytest.fixture
def pg_source(pg_server: Any) -> Iterator[str]:
    name = unique_name("moved")
    create_filled(pg_server, name)
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def mysql_source(mysql_server: Any) -> Iterator[str]:
    name = unique_name("moved")
    create_filled(mysql_server, name)
    yield name
    mysql_server.drop_database(name)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"port": "{fake}"}, "port"),
        ({"host": "localhost", "port": "{fake}"}, "host, port"),
        ({"username": "someone_else"}, "username"),
        ({"type": "mysql", "port": "{fake}"}, "type, port"),
    ],
)
async def test_moving_a_database_needs_its_password(
    pg_server: Any, pg_source: str, alice: Api, change: dict[str, str], named: str
) -> None:
    database = await alice.add_database(pg_server, pg_source)
    async with serving(pg_cleartext) as fake:
        body = {key: value.format(fake=fake.port) for key, value in change.items()}
        response = await alice.put(f"/api/databases/{database['id']}", json=body)
        assert response.status_code == 400
        assert response.json() == {
            "error": f"Données invalides: password: requis pour modifier {named}"
        }
        # Nothing changed: the backup goes where it always went, and works.
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        assert fake.connections == []
    stored = (await alice.get(f"/api/databases/{database['id']}")).json()["database"]
    assert {key: stored[key] for key in ("type", "host", "port", "username")} == {
        "type": "postgresql",
        "host": pg_server.host,
        "port": str(pg_server.port),
        "username": pg_server.user,
    }


async def test_the_same_values_need_no_password(pg_server: Any, pg_source: str, alice: Api) -> None:
    """A client sending the whole object back, without the password it never had."""
    database = await alice.add_database(pg_server, pg_source)
    unchanged = {key: database[key] for key in ("type", "host", "port", "username", "db_name")}
    response = await alice.put(
        f"/api/databases/{database['id']}", json={**unchanged, "name": "renommée"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["database"]["name"] == "renommée"


@pytest.mark.parametrize("role", ["user", "admin"])
async def test_stored_postgresql_password_never_reaches_a_new_host(
    pg_server: Any, pg_source: str, client: httpx.AsyncClient, role: str
) -> None:
    api = await Api(client).signup(role=role)
    database = await api.add_database(pg_server, pg_source)
    async with serving(pg_cleartext) as fake:
        response = await api.put(f"/api/databases/{database['id']}", json={"port": fake.port})
        assert response.status_code == 400
        # With the password typed again, the move is the user's own doing: the fake gets
        # what they typed for it, and nothing else.
        response = await api.put(
            f"/api/databases/{database['id']}",
            json={"port": fake.port, "password": "typed-for-the-new-host"},
        )
        assert response.status_code == 200, response.text
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
    assert backup["status"] == "failed"
    assert b"typed-for-the-new-host" in fake.passwords, "the fake did ask, and was answered"
    assert pg_server.password.encode() not in fake.received
    if role == "user":
        assert backup["error_msg"] == AUTH_FAILED


@pytest.mark.parametrize("role", ["user", "admin"])
async def test_mysql_tools_never_send_a_password_in_clear(
    mysql_server: Any, mysql_source: str, client: httpx.AsyncClient, role: str
) -> None:
    """Even the password the user typed for that very server: mysqldump and mysql refuse
    the switch to ``mysql_clear_password``."""
    api = await Api(client).signup(role=role)
    source = await api.add_database(mysql_server, mysql_source)
    backup = await api.wait_backup((await api.start_backup(source["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    secret = "typed-for-this-server"
    async with serving(mysql_clear_switch) as fake:
        target = await api.add_database(
            mysql_server, "target", port=str(fake.port), password=secret
        )
        dump = await api.wait_backup((await api.start_backup(target["id"]))["id"])
        response = await api.post(
            f"/api/backups/{backup['id']}/restore", json={"database_id": target["id"]}
        )
        assert response.status_code == 202, response.text
        restore = await api.wait_restore(response.json()["restore"]["id"])
    assert dump["status"] == "failed"
    assert restore["status"] == "failed"
    # The registration's connection (the mysql client) and both tools connected (besides
    # a non-admin's pre-flights, at registration and before each job, which answered the
    # switch with a random wrong password of their own); the size estimate's mysql client,
    # which runs beside the first dump and is stopped when it ends, may have connected
    # too before the dump failed...
    handshakes = [c for c in fake.connections if mysql_server.user.encode() in c]
    probes = 3 if role == "user" else 0
    assert 3 + probes <= len(handshakes) <= 4 + probes
    answers = [p for p in fake.passwords if p]  # a tool that cannot comply answers nothing
    assert len(answers) == probes
    assert all(p.startswith(b"backup-api-probe-") for p in answers)
    # ...and never sent the password, in clear or otherwise readable.
    assert secret.encode() not in fake.received
    if role == "user":
        assert dump["error_msg"] == AUTH_FAILED
        assert restore["error_msg"] == AUTH_FAILED
    else:
        assert "mysql_clear_password" in dump["error_msg"], dump["error_msg"]
        assert "backup-api-job" not in dump["error_msg"]


async def test_ed25519_accounts_still_work(
    mysql_server: Any, mysql_source: str, alice: Api
) -> None:
    """The plugin directory the clients get keeps the authentication methods that prove
    the password without sending it."""
    account = f"ed_{unique_name('u')[-8:]}"
    installed = "SELECT 1 FROM information_schema.plugins WHERE plugin_name = 'ed25519'"
    if not mysql_server.query(installed, "mysql"):
        mysql_server.execute("INSTALL SONAME 'auth_ed25519'", "mysql")
    mysql_server.execute(
        f"CREATE USER '{account}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('Ed-pw-1');"
        f"GRANT ALL ON *.* TO '{account}'@'%';",
        "mysql",
    )
    try:
        database = await alice.add_database(
            mysql_server, mysql_source, username=account, password="Ed-pw-1"
        )
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
    finally:
        mysql_server.execute(f"DROP USER '{account}'@'%'", "mysql")
