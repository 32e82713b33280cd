"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import MariaDBServer, PostgresServer, start_mariadb, start_postgresql
from tests.support.servers.s3 import S3Server, start_s3

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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server with authentication enforced (see tests/support/servers/s3.py)."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


# --- the application, in-process ---
import os  # noqa: E402

import tests.support.apphelpers  # noqa: E402
import tests.support.locks  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _session_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Process checks see only this session's jobs (see ``tests.support.locks.SESSION_ROOT``)."""
    tests.support.locks.SESSION_ROOT = str(tmp_path_factory.getbasetemp().resolve())


@pytest.fixture(scope="session", autouse=True)
def _metadata_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """BACKUP_API_TEST_METADATA=postgresql runs the app tests on PostgreSQL metadata."""
    if os.environ.get("BACKUP_API_TEST_METADATA") == "postgresql":
        tests.support.apphelpers.METADATA_SERVER = request.getfixturevalue("pg_server")
    yield
    if tests.support.apphelpers.METADATA_SERVER is not None:
        tests.support.apphelpers.drop_metadata_databases()


@pytest.fixture(autouse=True)
def _metadata_databases_dropped() -> Iterator[None]:
    """Each test's PostgreSQL metadata databases go with it (a long run would pile them up).

    Autouse, so it is set up before the test's other function-scoped fixtures and torn down
    after them; fixtures of a wider scope are set up before it, so the databases of their
    apps (still running for the next tests) are left to the session's end.
    """
    made_before = tests.support.apphelpers.metadata_databases_made()
    yield
    tests.support.apphelpers.drop_metadata_databases(since=made_before)


from tests.support.apphelpers import (  # noqa: E402
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
    "s3_server",
    "settings_factory",
]
