"""A dump that fails ends `failed` with a useful reason and leaves no archive behind.

The owner here is an admin, who reads the tool's own stderr; what a non-admin reads is
in test_error_categories.py."""

from __future__ import annotations

import re
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


def expected_message(engine: str, case: str, server: Any, overrides: dict[str, Any]) -> str:
    """The tool's own words, whole (a pattern: a few parts vary from run to run)."""
    port = overrides.get("port", server.port)
    if engine == "postgresql":
        head = (
            f'pg_dump a échoué (code 1): pg_dump: error: connection to server at "{server.host}",'
            f" port {port} failed: "
        )
        tail = {
            "wrong_password": f'FATAL:  password authentication failed for user "{server.user}"\n'
            'password retrieved from file "/proc/self/fd/',
            "unknown_database": 'FATAL:  database "no_such_database_here" does not exist',
            "closed_port": "Connection refused\n\tIs the server running on that host and"
            " accepting TCP/IP connections?",
        }[case]
        # The descriptor the password file was handed on varies.
        rest = r'\d+"' if case == "wrong_password" else ""
        return re.escape(head + tail) + rest
    words = {
        "wrong_password": f"1045: \"Access denied for user '{server.user}'@'{server.host}'"
        ' (using password: YES)" when trying to connect',
        "unknown_database": "1049: \"Unknown database 'no_such_database_here'\" when selecting"
        " the database",
        # The errno (connection refused) as the client reports it.
        "closed_port": f"2002: \"Can't connect to server on '{server.host}' (",
    }[case]
    rest = r'\d+\)" when trying to connect' if case == "closed_port" else ""
    return re.escape(f"mysqldump a échoué (code 2): mysqldump: Got error: {words}") + rest


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
    if case == "wrong_password":
        overrides: dict[str, Any] = {"password": "not-the-password"}
    elif case == "unknown_database":
        db_name = "no_such_database_here"
        overrides = {}
    else:
        overrides = {"port": str(_free_port())}
    database = await admin.add_database(server, db_name, **overrides)
    backup = await admin.start_backup(database["id"])
    backup = await admin.wait_backup(backup["id"])

    assert backup["status"] == "failed"
    message = backup["error_msg"]
    tool = "pg_dump" if engine == "postgresql" else "mysqldump"
    assert message.startswith(f"{tool} a échoué (code ")
    assert re.fullmatch(expected_message(engine, case, server, overrides), message), message
    assert server.password not in message
    assert "backup-api-job" not in message, "the credentials file's path must not show"
    assert backup["size"] == 0
    assert backup["checksum"] is None
    assert archives(app) == [], "a failed dump must leave no file, final or partial"
    response = await admin.get(f"/api/backups/{backup['id']}/download")
    assert response.status_code == 409
    assert response.json() == {"error": "La sauvegarde n'est pas terminée (statut: failed)"}
