"""``POST /api/databases/{id}/test`` connects as a backup would, and a registration warns
about a server it could not reach; against the suite's real servers and real clients."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backup_api.dumpers.base import Diagnosis
from backup_api.dumpers.pgversions import from_version_num, parse_banner
from backup_api.jobs.failures import CONNECTION_REASONS, UNCHECKED_SERVER
from backup_api.ratelimit import RateLimiter
from backup_api.services.connectiontests import THROTTLED
from backup_api.services.serverversions import unreachable_warning
from tests.databases.test_connection_security import TrustedRole
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled
from tests.support.serverproc import free_port

MISSING_ID = 2**31 - 1
WRONG_PASSWORD = "pas-le-bon-" + uuid.uuid4().hex[:12]
UNREACHABLE = CONNECTION_REASONS[Diagnosis.UNREACHABLE]
AUTH_FAILED = CONNECTION_REASONS[Diagnosis.AUTH_FAILED]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["pg_server", "mysql_server"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture
def source(server: Any) -> Iterator[str]:
    name = unique_name("probe")
    create_filled(server, name)
    yield name
    server.drop_database(name)


def database_size(server: Any, name: str) -> int:
    if server.kind == "postgresql":
        sql = f"SELECT pg_database_size('{name}')"
    else:
        sql = (
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            f"WHERE table_schema = '{name}'"
        )
    value = server.query(sql, name)[0][0]
    assert value is not None
    return int(value)


def tool_banner(path: str) -> str:
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    return result.stdout


def assert_no_secret(response: httpx.Response, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in response.text


async def test_a_reachable_database_reports_version_size_and_client(
    server: Any, source: str, alice: Api
) -> None:
    database = await alice.add_database(server, source)
    before = database_size(server, source)
    response = await alice.post(f"/api/databases/{database['id']}/test")
    after = database_size(server, source)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ok", "server_version", "size_bytes", "client"}
    assert body["ok"] is True
    assert before <= body["size_bytes"] <= after
    assert body["size_bytes"] > 0
    client = body["client"]
    assert Path(client["path"]).is_absolute()
    banner = tool_banner(client["path"])
    if server.kind == "postgresql":
        assert Path(client["path"]).name == "pg_dump"
        assert body["server_version"] == str(from_version_num(server.server_version_num))
        assert client["version"] == str(parse_banner(banner))
    else:
        assert Path(client["path"]).name == "mysqldump"
        assert body["server_version"] == server.query("SELECT VERSION()", source)[0][0]
        assert f"Distrib {client['version']}," in banner
    assert_no_secret(response, server.password)


async def test_a_wrong_password_is_the_authentication_category(
    server: Any, source: str, client: httpx.AsyncClient
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    body = {
        "name": "mauvais mot de passe",
        "type": server.kind,
        "host": server.host,
        "port": str(server.port),
        "username": server.user,
        "password": WRONG_PASSWORD,
        "db_name": source,
    }
    registered = await alice.post("/api/databases", json=body)
    # Registered all the same (the password may be changed on the server next), with why
    # its backups would fail.
    assert registered.status_code == 201, registered.text
    assert registered.json()["warning"] == unreachable_warning(AUTH_FAILED)
    database_id = registered.json()["database"]["id"]

    response = await alice.post(f"/api/databases/{database_id}/test")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": False, "error": AUTH_FAILED}
    # An admin reads the tool's own message, still without the password.
    detailed = await admin.post(f"/api/databases/{database_id}/test")
    assert detailed.json()["ok"] is False
    error = detailed.json()["error"]
    tool = "psql" if server.kind == "postgresql" else "mysql"
    assert error.startswith(f"{tool} a échoué (code "), error
    assert error != AUTH_FAILED
    for answer in (registered, response, detailed):
        assert_no_secret(answer, WRONG_PASSWORD, server.password)


async def test_an_unreachable_server_is_registered_with_a_warning_and_fails_its_test(
    server: Any, client: httpx.AsyncClient
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    port = free_port()
    body = {
        "name": "éteinte",
        "type": server.kind,
        "host": server.host,
        "port": str(port),
        "username": server.user,
        "password": server.password,
        "db_name": "absente",
    }
    ids: dict[str, int] = {}
    for role, api in (("user", alice), ("admin", admin)):
        registered = await api.post("/api/databases", json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["warning"] == unreachable_warning(UNREACHABLE)
        assert registered.json()["database"]["server_version"] is None
        ids[role] = registered.json()["database"]["id"]
        response = await api.post(f"/api/databases/{ids[role]}/test")
        assert response.status_code == 200, response.text
        if role == "user":
            assert response.json() == {"ok": False, "error": UNREACHABLE}
        else:
            # An admin reads what the client said.
            assert response.json()["ok"] is False
            assert " a échoué (code " in response.json()["error"]
        assert_no_secret(registered, server.password)
        assert_no_secret(response, server.password)
    # Moved to the running server, the warning goes away.
    db_name = "postgres" if server.kind == "postgresql" else "mysql"
    response = await alice.put(
        f"/api/databases/{ids['user']}",
        json={"port": str(server.port), "password": server.password, "db_name": db_name},
    )
    assert response.status_code == 200, response.text
    assert response.json()["warning"] is None
    assert_no_secret(response, server.password)


@pytest.fixture
async def trusted_role(pg_server: Any) -> AsyncIterator[TrustedRole]:
    role = TrustedRole(pg_server)
    pg_server.execute(f'CREATE ROLE "{role.name}" LOGIN SUPERUSER', "postgres")
    try:
        yield role
    finally:
        await role.disable()
        pg_server.execute(f'DROP ROLE "{role.name}"', "postgres")


async def test_a_server_that_stops_checking_passwords_is_refused_to_a_non_admin(
    pg_server: Any, trusted_role: TrustedRole, client: httpx.AsyncClient
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    body = {
        "name": "trust",
        "type": "postgresql",
        "host": pg_server.host,
        "port": str(pg_server.port),
        "username": trusted_role.name,
        "password": WRONG_PASSWORD,
        "db_name": "postgres",
    }
    # Registered while the server checks passwords (this one is wrong: a warning).
    mine = (await alice.post("/api/databases", json=body)).json()["database"]["id"]
    theirs = (await admin.post("/api/databases", json=body)).json()["database"]["id"]
    await trusted_role.enable()
    response = await alice.post(f"/api/databases/{mine}/test")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": False, "error": UNCHECKED_SERVER}
    # The rules are the owner's, as a backup's: an admin tests their own's in full, and a
    # non-admin's as its owner would be served.
    own = await admin.post(f"/api/databases/{theirs}/test")
    assert own.json()["ok"] is True, own.text
    assert (await admin.post(f"/api/databases/{mine}/test")).json() == response.json()
    assert_no_secret(response, WRONG_PASSWORD)


async def test_ownership_and_missing_databases(pg_server: Any, client: httpx.AsyncClient) -> None:
    alice = await Api(client).signup("alice@example.com")
    bob = await Api(client).signup("bob@example.com")
    database = await alice.add_database(pg_server, "postgres")
    response = await bob.post(f"/api/databases/{database['id']}/test")
    assert response.status_code == 403
    assert response.json() == {"error": "Accès non autorisé"}
    response = await alice.post(f"/api/databases/{MISSING_ID}/test")
    assert response.status_code == 404
    assert response.json() == {"error": "Base de données introuvable"}
    response = await client.post(f"/api/databases/{database['id']}/test")
    assert response.status_code == 401


async def test_connection_tests_are_limited_per_user(pg_server: Any, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, connection_tests_per_user=2, connection_tests_window_seconds=60
    )
    async with running_app(settings) as (app, client):
        clock = Clock()
        limiter: RateLimiter = app.state.backup_api.connection_tests
        limiter.clock = clock
        alice = await Api(client).signup("alice@example.com")
        bob = await Api(client).signup("bob@example.com")
        mine = await alice.add_database(pg_server, "postgres")
        theirs = await bob.add_database(pg_server, "postgres")
        url = f"/api/databases/{mine['id']}/test"
        for _ in range(2):
            assert (await alice.post(url)).json()["ok"] is True
        clock.now += 20
        refused = await alice.post(url)
        assert refused.status_code == 429
        assert refused.json() == {"error": THROTTLED}
        assert refused.headers["retry-after"] == "40"
        # Another user's tests are counted apart, and refused requests are not counted.
        assert (await bob.post(f"/api/databases/{theirs['id']}/test")).json()["ok"] is True
        clock.now += 40
        assert (await alice.post(url)).json()["ok"] is True
        # Someone else's database is refused before anything is counted or connected.
        for _ in range(3):
            assert (await alice.post(f"/api/databases/{theirs['id']}/test")).status_code == 403
        assert (await alice.post(url)).json()["ok"] is True


def test_the_limiter_slides_its_window() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 10, clock=clock)
    for _ in range(3):
        assert limiter.acquire("a") == 0
        clock.now += 1
    # Calls at 1000, 1001 and 1002: the first leaves the window at 1010.
    assert limiter.acquire("a") == 7
    assert limiter.acquire("b") == 0
    clock.now += 4
    assert limiter.acquire("a") == 3
    clock.now += 3
    # The oldest call left the window: one more is accepted, then the next waits for the
    # second to leave.
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
