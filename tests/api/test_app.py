"""The application shell: migrations, OpenAPI, health, key files, defaults."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI

from backup_api.exceptions import METADATA_UNAVAILABLE
from backup_api.migrate import alembic_config
from tests.support.apphelpers import Api, make_settings, pg_metadata_url, running_app, unique_name
from tests.support.serverproc import server_process


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    env.update(
        {
            "BACKUP_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'meta.sqlite3'}",
            "BACKUP_API_SECRETS_DIR": str(tmp_path / "secrets"),
        }
    )
    return env


def test_migrate_command_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "backup_api.cli", "migrate"]
    for _ in range(2):
        result = subprocess.run(
            command, env=_cli_env(tmp_path), capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "meta.sqlite3") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"users", "databases", "backups", "restores", "alembic_version"} <= tables
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert version == [(head,)]


async def test_key_files_are_generated_once_and_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings):
        pass
    secrets_dir = tmp_path / "secrets"
    keys = {name: (secrets_dir / name).read_text() for name in ("jwt.key", "encryption.key")}
    for name in keys:
        mode = stat.S_IMODE((secrets_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    if settings.sqlite_path is not None:
        assert stat.S_IMODE(settings.sqlite_path.stat().st_mode) == 0o600
    async with running_app(settings):
        pass
    assert {name: (secrets_dir / name).read_text() for name in keys} == keys


SECURED = [{"OAuth2Password": []}, {"HTTPBearer": []}]


async def test_openapi_documents_bearer_auth_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    # Swagger UI's Authorize offers both: e-mail and password (OAuth2 password flow, at
    # /auth/token), or a token pasted as is (a login's or a personal API token).
    assert schemes["OAuth2Password"]["type"] == "oauth2"
    assert schemes["OAuth2Password"]["flows"] == {
        "password": {"tokenUrl": "/auth/token", "scopes": {}}
    }
    assert schemes["HTTPBearer"]["type"] == "http"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert "POST /api/tokens" in schemes["HTTPBearer"]["description"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
            assert "400" in operation["responses"], (method, path)
            assert "422" not in operation["responses"], (method, path)
            if path.startswith("/api/"):
                assert operation.get("security") == SECURED, (method, path)
                assert "401" in operation["responses"], (method, path)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_health_reports_tools_database_and_space_to_admins(
    client: httpx.AsyncClient,
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    response = await admin.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    for tool in ("pg_dump", "psql", "mysqldump", "mysql"):
        assert body["tools"][tool]["available"] is True
        assert body["tools"][tool]["version"]
    assert body["storage"]["free_bytes"] > 0
    assert body["jobs"] == {"running": 0, "queued": 0}


async def test_health_tells_others_only_that_the_service_is_up(client: httpx.AsyncClient) -> None:
    await Api(client).signup("root@example.com", role="admin")
    user = await Api(client).signup("user@example.com")
    answers = [
        await client.get("/health"),
        await user.get("/health"),
        await client.get("/health", headers={"Authorization": "Bearer not.a.token"}),
    ]
    for response in answers:
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_health_is_503_when_the_metadata_database_is_gone(
    pg_server: Any, tmp_path: Path
) -> None:
    name = unique_name("meta")
    pg_server.create_database(name)
    settings = make_settings(tmp_path, database_url=pg_metadata_url(pg_server, name))
    async with running_app(settings) as (_, client):
        assert (await client.get("/health")).json() == {"status": "ok"}
        pg_server.drop_database(name)
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}


def test_api_answers_503_while_the_metadata_database_is_away_then_recovers(
    pg_server: Any, tmp_path: Path
) -> None:
    """The service as its own process (in-process, the test client would see the
    exception itself rather than the answer)."""
    name = unique_name("meta")
    pg_server.create_database(name)
    gone = (
        f"ALTER DATABASE {name} ALLOW_CONNECTIONS false;"
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    )
    body = {"email": "alice@example.com", "password": "correct horse battery"}
    try:
        with server_process(tmp_path, pg_metadata_url(pg_server, name)) as server:
            server.workdir.mkdir(exist_ok=True)
            server.start()
            with httpx.Client(base_url=server.url, timeout=30) as client:
                assert client.post("/auth/register", json=body).status_code == 201
                token = client.post("/auth/login", json=body).json()["token"]
                client.headers["Authorization"] = f"Bearer {token}"
                assert client.get("/api/databases").status_code == 200
                # No new connection to it, and the pool's are cut: as a restarting server.
                pg_server.execute(gone, "postgres")
                away = [client.get("/api/databases"), client.get("/api/backups")]
                pg_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true", "postgres")
                back = client.get("/api/databases")
    finally:
        pg_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true", "postgres")
        pg_server.drop_database(name)
    for response in away:
        assert response.status_code == 503, response.text
        assert response.json() == {"error": METADATA_UNAVAILABLE}
        assert response.headers["retry-after"] == "5"
    # The same process, reconnected by itself.
    assert back.status_code == 200, back.text


async def test_responses_carry_defensive_headers(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("variable", ["BACKUP_API_JWT_SECRET"])
def test_short_jwt_secret_is_refused(tmp_path: Path, variable: str) -> None:
    env = _cli_env(tmp_path)
    env[variable] = "too-short"
    code = (
        "from backup_api.security import load_keys; from backup_api.config import Settings; "
        "load_keys(Settings())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "at least 32 characters" in result.stderr
