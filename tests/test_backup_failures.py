"""A dump that fails ends `failed` with a useful reason and leaves no archive behind.

The owner here is an admin, who reads the tool's own stderr; what a non-admin reads is
in test_error_categories.py."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.apphelpers import Api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def archives(app: FastAPI) -> list[Path]:
    root: Path = app.state.backup_api.settings.backup_root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


CASES = [
    pytest.param("wrong_password", id="wrong-password"),
    pytest.param("unknown_database", id="unknown-database"),
    pytest.param("closed_port", id="closed-port"),
]


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
@pytest.mark.parametrize("case", CASES)
async def test_failed_dump(
    engine: str, case: str, client: httpx.AsyncClient, app: FastAPI, request: pytest.FixtureRequest
) -> None:
    admin = await Api(client).signup(role="admin")
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    db_name = "postgres" if engine == "postgresql" else "mysql"
    expected: tuple[str, ...]
    if case == "wrong_password":
        overrides: dict[str, Any] = {"password": "not-the-password"}
        expected = ("password", "Access denied")
    elif case == "unknown_database":
        db_name = "no_such_database_here"
        overrides = {}
        expected = ("no_such_database_here",)
    else:
        overrides = {"port": str(_free_port())}
        expected = ("Connection refused", "connect", "Can't connect")
    database = await admin.add_database(server, db_name, **overrides)
    backup = await admin.start_backup(database["id"])
    backup = await admin.wait_backup(backup["id"])

    assert backup["status"] == "failed"
    message = backup["error_msg"]
    tool = "pg_dump" if engine == "postgresql" else "mysqldump"
    assert message.startswith(f"{tool} a échoué (code ")
    assert any(fragment in message for fragment in expected), message
    assert server.password not in message
    assert "backup-api-job" not in message, "the credentials file's path must not show"
    assert backup["size"] == 0
    assert backup["checksum"] is None
    assert archives(app) == [], "a failed dump must leave no file, final or partial"
    response = await admin.get(f"/api/backups/{backup['id']}/download")
    assert response.status_code == 409
    assert "error" in response.json()
