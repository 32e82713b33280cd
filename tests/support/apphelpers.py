"""Fixtures and helpers to run the application in-process against real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, Executable, Row, text

from backup_api.clock import Clock
from backup_api.config import Settings
from backup_api.main import create_app

PASSWORD = "motdepasse123"


#: Set by conftest when BACKUP_API_TEST_METADATA=postgresql: the server that then holds
#: every test app's metadata (a fresh database each time) instead of a SQLite file.
METADATA_SERVER: Any = None
#: The metadata databases made on METADATA_SERVER for the running test, dropped when it
#: ends (see :func:`drop_metadata_databases`).
_metadata_databases: list[str] = []


def default_metadata_url(tmp_path: Path) -> str:
    if METADATA_SERVER is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'meta.sqlite3'}"
    name = unique_name("meta")
    METADATA_SERVER.create_database(name)
    _metadata_databases.append(name)
    return pg_metadata_url(METADATA_SERVER, name)


def drop_metadata_databases(since: int = 0) -> None:
    """Drop the metadata databases made after the first ``since`` (their apps have stopped
    by then); those of module- or session-scoped apps are dropped at the session's end."""
    while len(_metadata_databases) > since:
        METADATA_SERVER.drop_database(_metadata_databases.pop())


def metadata_databases_made() -> int:
    return len(_metadata_databases)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": default_metadata_url(tmp_path),
        "backup_root": tmp_path / "db" / "backups",
        "secrets_dir": tmp_path / "secrets",
        "max_concurrent_jobs": 2,
        "connect_timeout_seconds": 5,
        "log_level": "warning",
    }
    values.update(overrides)
    return Settings(**values)


def pg_metadata_url(server: Any, database: str) -> str:
    return (
        f"postgresql+asyncpg://{quote(server.user, safe='')}:{quote(server.password, safe='')}"
        f"@{server.host}:{server.port}/{database}"
    )


@asynccontextmanager
async def running_app(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


class Api:
    """A thin client speaking the seed's API, for readable tests."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.token: str | None = None
        self.user: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def signup(self, email: str | None = None, role: str = "user") -> Api:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = await self.client.post(
            "/auth/register", json={"email": email, "password": PASSWORD, "role": role}
        )
        assert response.status_code == 201, response.text
        return await self.login(email)

    async def login(self, email: str, password: str = PASSWORD) -> Api:
        response = await self.client.post(
            "/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        self.user = response.json()["user"]
        return self

    async def add_database(self, server: Any, db_name: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "name": f"{server.kind} {db_name}",
            "type": server.kind,
            "host": server.host,
            "port": str(server.port),
            "username": server.user,
            "password": server.password,
            "db_name": db_name,
        }
        body.update(overrides)
        response = await self.post("/api/databases", json=body)
        assert response.status_code == 201, response.text
        database: dict[str, Any] = response.json()["database"]
        return database

    async def start_backup(self, database_id: int) -> dict[str, Any]:
        response = await self.post(f"/api/backups/database/{database_id}")
        assert response.status_code == 202, response.text
        backup: dict[str, Any] = response.json()["backup"]
        return backup

    async def wait_backup(self, backup_id: int, timeout: float = 60) -> dict[str, Any]:
        return await self._wait(f"/api/backups/{backup_id}", "backup", timeout)

    async def wait_restore(self, restore_id: int, timeout: float = 60) -> dict[str, Any]:
        return await self._wait(f"/api/restores/{restore_id}", "restore", timeout)

    async def _wait(self, url: str, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = await self.get(url)
            assert response.status_code == 200, response.text
            record: dict[str, Any] = response.json()[key]
            if record["status"] != "pending":
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} still pending after {timeout}s: {record}")
            await asyncio.sleep(0.05)


async def metadata_sql(app: FastAPI, statement: str | Executable, **params: Any) -> list[Row[Any]]:
    """Run one statement (SQL text, or a Core statement: its columns come back typed) on
    the app's metadata database, SQLite or PostgreSQL as the suite runs, through the app's
    own ``Metadata``, as one transaction; its rows (compared as tuples, read by attribute)."""
    executable = text(statement) if isinstance(statement, str) else statement

    def work(connection: Connection) -> list[Row[Any]]:
        result = connection.execute(executable, params)
        return list(result) if result.returns_rows else []

    rows: list[Row[Any]] = await app.state.backup_api.metadata.write(work)
    return rows


def unique_name(prefix: str = "db") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        return make_settings(tmp_path, **overrides)

    return factory


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Both metadata backends: SQLite file, or a fresh database on the throwaway PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'meta.sqlite3'}"
        return
    server = request.getfixturevalue("pg_server")
    name = unique_name("meta")
    server.create_database(name)
    yield pg_metadata_url(server, name)
    server.drop_database(name)


@pytest.fixture
async def app_client(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_app(settings_factory()) as pair:
        yield pair


@pytest.fixture
async def client(app_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_client[1]


@pytest.fixture
def app(app_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return app_client[0]


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Api:
    return await Api(client).signup("alice@example.com")


@pytest.fixture
async def bob(client: httpx.AsyncClient, alice: Api) -> Api:
    return await Api(client).signup("bob@example.com")
