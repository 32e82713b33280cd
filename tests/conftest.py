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


# --- the application, in-process ---
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
