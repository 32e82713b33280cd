"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import MariaDBServer, PostgresServer, start_mariadb, start_postgresql

# --- throwaway database servers ---
# Started once per test session (only if a test asks for them) and stopped at the end.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_postgresql()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MariaDBServer]:
    server = start_mariadb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _session_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    tests.locks.SESSION_ROOT = tmp_path_factory.getbasetemp().resolve()


# --- the application, in-process ---
import os  # noqa: E402

import tests.apphelpers  # noqa: E402
import tests.locks  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _metadata_backend(request: pytest.FixtureRequest) -> None:
    """BACKUP_API_TEST_METADATA=postgresql runs the app tests on PostgreSQL metadata."""
    if os.environ.get("BACKUP_API_TEST_METADATA") == "postgresql":
        tests.apphelpers.METADATA_SERVER = request.getfixturevalue("pg_server")


from tests.apphelpers import (  # noqa: E402
    alice,
    app,
    app_client,
    bob,
    client,
    metadata_url,
    settings_factory,
)

__all__ = [
    "alice",
    "app",
    "app_client",
    "bob",
    "client",
    "metadata_url",
    "mysql_server",
    "pg_server",
    "settings_factory",
]
