"""What a failed job tells its owner cannot be used to scan ports.

A non-admin reads a short category (unreachable, authentication refused, unknown host,
database missing) or, once the server accepted them, the tool's own SQL error line:
never what another kind of service sent, never a local path, and a refused connection
reads exactly like one that timed out. Admins keep the tool's detailed message."""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_api.dumpers.base import Diagnosis
from backup_api.dumpers.mysql import diagnose_mysql
from backup_api.dumpers.postgresql import diagnose_postgresql
from backup_api.jobs.failures import CONNECTION_REASONS
from tests.jobs.test_backup_failures import expected_message
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.fakes import stalled_server
from tests.support.fakeservers import serving, ssh_banner

UNREACHABLE = CONNECTION_REASONS[Diagnosis.UNREACHABLE]
AUTH_FAILED = CONNECTION_REASONS[Diagnosis.AUTH_FAILED]
DATABASE_MISSING = CONNECTION_REASONS[Diagnosis.DATABASE_MISSING]
TOOLS = {"postgresql": "pg_dump", "mysql": "mysqldump"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def _port(kind: str) -> AsyncIterator[int]:
    if kind == "closed":
        yield _closed_port()
    elif kind == "ssh":
        async with serving(ssh_banner) as fake:
            yield fake.port
    else:
        with stalled_server() as port:  # connects, then never a word: a timeout
            yield port


@pytest.fixture
def broken_sources(pg_server: Any, mysql_server: Any) -> Iterator[dict[str, dict[str, str]]]:
    """Per engine, a database whose dump fails on a statement, and the account to use."""
    pg_name, my_name = unique_name("sqlerr"), unique_name("sqlerr")
    role = f"limited_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(pg_name)
    pg_server.execute(
        f"CREATE TABLE secret (v text); CREATE ROLE {role} LOGIN PASSWORD 'Limited-pw-1';",
        pg_name,
    )
    mysql_server.create_database(my_name)
    mysql_server.execute(
        "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t; DROP TABLE t;", my_name
    )
    yield {
        "postgresql": {"db_name": pg_name, "username": role, "password": "Limited-pw-1"},
        "mysql": {"db_name": my_name},
    }
    pg_server.drop_database(pg_name)
    pg_server.execute(f"DROP ROLE {role}", "postgres")
    mysql_server.drop_database(my_name)


async def _failed_backup(api: Api, server: Any, db_name: str, **overrides: Any) -> str:
    database = await api.add_database(server, db_name, **overrides)
    backup = await api.wait_backup((await api.start_backup(database["id"]))["id"], 30)
    assert backup["status"] == "failed"
    message: str = backup["error_msg"]
    assert server.password not in message
    assert "/tmp" not in message, message
    assert "backup-api-job" not in message, message
    return message


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_a_non_admin_reads_categories(
    engine: str,
    request: pytest.FixtureRequest,
    broken_sources: dict[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    db_name = "postgres" if engine == "postgresql" else "mysql"
    settings = make_settings(tmp_path, connect_timeout_seconds=2)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        assert api.user["role"] == "user"
        unreachable = {}
        for kind in ("closed", "ssh", "silent"):
            async with _port(kind) as port:
                unreachable[kind] = await _failed_backup(api, server, db_name, port=str(port))
        assert unreachable == dict.fromkeys(unreachable, UNREACHABLE)
        assert await _failed_backup(api, server, db_name, password="not it") == AUTH_FAILED
        assert await _failed_backup(api, server, "no_such_database") == DATABASE_MISSING
        broken = broken_sources[engine]
        message = await _failed_backup(api, server, **broken)
    tool = TOOLS[engine]
    if engine == "postgresql":
        assert message == f"{tool} a échoué (code 1): ERROR:  permission denied for table secret"
    else:
        assert message == (
            f"{tool} a échoué (code 2): Couldn't execute 'SHOW FIELDS FROM `v`': View "
            f"'{broken['db_name']}.v' references invalid table(s) or column(s) or function(s)"
            " or definer/invoker of view lack rights to use them (1356)"
        ), message
        assert "\n" not in message


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_an_admin_reads_the_tools_own_words(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: Any = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    db_name = "postgres" if engine == "postgresql" else "mysql"
    settings = make_settings(tmp_path, connect_timeout_seconds=2)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup(role="admin")
        async with _port("closed") as port:
            closed = await _failed_backup(api, server, db_name, port=str(port))
        wrong = await _failed_backup(api, server, db_name, password="not it")
    closed_words = expected_message(engine, "closed_port", server, {"port": port})
    assert re.fullmatch(closed_words, closed), closed
    assert re.fullmatch(expected_message(engine, "wrong_password", server, {}), wrong), wrong


# What the tools print, as this machine's versions do; the peer's part in brackets.
PG_CASES = [
    (
        'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: Connection '
        "refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        Diagnosis.UNREACHABLE,
    ),
    (
        'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: server closed '
        "the connection unexpectedly\nSSL SYSCALL error: Connection reset by peer\n"
        'connection to server at "127.0.0.1", port 5 failed: expected authentication '
        "request from server, but received [S]",
        Diagnosis.UNREACHABLE,
    ),
    (
        'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: FATAL:  '
        'password authentication failed for user "u"\npassword retrieved from file '
        '"/tmp/backup-api-job-x/pgpass"',
        Diagnosis.AUTH_FAILED,
    ),
    (
        'pg_dump: error: connection to server at "h", port 5 failed: FATAL:  database "d" '
        "does not exist",
        Diagnosis.DATABASE_MISSING,
    ),
    (
        'pg_dump: error: could not translate host name "nowhere" to address',
        Diagnosis.UNKNOWN_HOST,
    ),
]
MYSQL_CASES = [
    (
        "mysqldump: Got error: 2013: \"Lost connection to server at 'handshake: reading "
        "initial communication packet', system error: 115\" when trying to connect",
        Diagnosis.UNREACHABLE,
    ),
    (
        'mysqldump: Got error: 1105: "[an error packet\nERROR 1 (HY000) at line 1: '
        'from a fake]" when trying to connect',
        Diagnosis.UNREACHABLE,
    ),
    ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (110)", Diagnosis.UNREACHABLE),
    (
        "ERROR 2059 (HY000): Authentication plugin 'mysql_clear_password' cannot be "
        "loaded: /tmp/backup-api-job-x/plugins/mysql_clear_password.so: cannot open",
        Diagnosis.AUTH_FAILED,
    ),
    (
        "mysqldump: Got error: 1049: \"Unknown database 'x'\" when selecting the database",
        Diagnosis.DATABASE_MISSING,
    ),
]


@pytest.mark.parametrize(("stderr", "kind"), PG_CASES)
def test_postgresql_connection_failures_are_categories(stderr: str, kind: Diagnosis) -> None:
    assert diagnose_postgresql(stderr).kind is kind
    assert diagnose_postgresql(stderr).line is None


@pytest.mark.parametrize(("stderr", "kind"), MYSQL_CASES)
def test_mysql_connection_failures_are_categories(stderr: str, kind: Diagnosis) -> None:
    assert diagnose_mysql(stderr).kind is kind
    assert diagnose_mysql(stderr).line is None


def test_statement_errors_keep_the_servers_line() -> None:
    psql = (
        "psql:<stdin>:25: ERROR:  cannot drop table items because other objects depend on it\n"
        "DETAIL:  view other.v depends on table items\n"
    )
    diagnosis = diagnose_postgresql(psql)
    assert diagnosis.kind is Diagnosis.SQL_ERROR
    assert diagnosis.line == "ERROR:  cannot drop table items because other objects depend on it"
    mysql = "--------------\nSELEC bad\n--------------\n\nERROR 1064 (42000) at line 2: syntax"
    diagnosis = diagnose_mysql(mysql)
    assert diagnosis.kind is Diagnosis.SQL_ERROR
    assert diagnosis.line == "ERROR 1064 (42000) at line 2: syntax"
