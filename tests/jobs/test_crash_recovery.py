"""The service process killed (kill -9) during MySQL jobs and during restores, on either
metadata database: after a restart every record ends in a true state, no tool process
outlives the service, and a restore's target is what the README promises (unchanged for
PostgreSQL, whose restore is one transaction; recoverable from the safety backup for MySQL).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.test_lifecycle import (
    BACKUP_STOPPED,
    RESTORE_STOPPED,
    Client,
    alive,
    leftovers,
    wait_for,
)
from tests.support.apphelpers import unique_name
from tests.support.locks import archive_processes, table_locked, table_shared_lock, tool_processes
from tests.support.sample_data import create_filled, snapshot
from tests.support.serverproc import ServerProcess, server_process

MYSQL_DUMPS = ("mysqldump", "mariadb-dump")
MYSQL_CLIENTS = ("mysql", "mariadb")


def tools(names: tuple[str, ...], marker: str) -> list[int]:
    return [pid for name in names for pid in tool_processes(name, marker)]


@contextlib.contextmanager
def running(tmp_path: Path, metadata_url: str, **settings: str) -> Iterator[ServerProcess]:
    with server_process(tmp_path, metadata_url, **settings) as server:
        server.start()
        yield server


def kill_and_check_no_orphan(server: ServerProcess, pids: list[int]) -> None:
    assert pids
    server.signal(signal.SIGKILL)
    assert server.wait(10) == -signal.SIGKILL
    # The tools die with the service (parent-death signal): none runs on unwatched.
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)


@pytest.fixture
def mysql_source(mysql_server: Any) -> Iterator[str]:
    name = unique_name("crashmy")
    create_filled(mysql_server, name)
    yield name
    mysql_server.drop_database(name)


def test_sigkill_mid_mysql_dump_then_restart(
    mysql_server: Any, mysql_source: str, metadata_url: str, tmp_path: Path
) -> None:
    with running(tmp_path, metadata_url, max_concurrent_jobs="1") as server:
        client = Client(server.url)
        try:
            client.login("crashmy@example.com", register=True)
            database = client.add_database(mysql_server, mysql_source)
            with table_locked(mysql_server, mysql_source):
                backup = client.call("POST", f"/api/backups/database/{database}").json()
                backup_id = backup["backup"]["id"]
                marker = f"backup:{backup_id}@"
                pids = wait_for(lambda: tools(MYSQL_DUMPS, marker))
                pids += wait_for(lambda: archive_processes(server.backup_root))
                kill_and_check_no_orphan(server, pids)
            server.start()
            record = client.record("backup", backup_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == BACKUP_STOPPED
            assert record["finished_at"] is not None
            assert record["size"] == 0
            assert tools(MYSQL_DUMPS, marker) == []
            assert leftovers(server.backup_root) == [], "a partial archive survived the crash"
            # The database is free again: the same backup, uninterrupted, completes.
            again = client.call("POST", f"/api/backups/database/{database}").json()
            assert client.wait_done("backup", again["backup"]["id"])["status"] == "completed"
        finally:
            client.close()


def _restore_holds(server: Any, database: str, table: str) -> bool:
    """Whether a session other than ours holds ``table`` exclusively (dropped, in a
    transaction not yet committed)."""
    rows = server.query(
        "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock'"
        f" AND relation = '{table}'::regclass",
        database,
    )
    return bool(rows == [("1",)])


def test_sigkill_mid_postgresql_restore_leaves_the_target_unchanged(
    pg_server: Any, metadata_url: str, tmp_path: Path
) -> None:
    source = unique_name("crashrs")
    create_filled(pg_server, source)
    # Restored last (pg_dump drops in reverse order of creation, tables by name): holding
    # it keeps the restore waiting after it has dropped the other tables.
    pg_server.execute("CREATE TABLE aaa_blocker (id int);", source)
    with running(tmp_path, metadata_url) as server:
        client = Client(server.url)
        try:
            client.login("crashrs@example.com", register=True)
            database = client.add_database(pg_server, source)
            backup = client.call("POST", f"/api/backups/database/{database}").json()
            backup_id = backup["backup"]["id"]
            assert client.wait_done("backup", backup_id)["status"] == "completed"
            pg_server.execute(
                "UPDATE items SET name = 'after the backup' WHERE id = 1;"
                "DELETE FROM notes WHERE id = 2;",
                source,
            )
            before = snapshot(pg_server, source)
            with table_locked(pg_server, source, "aaa_blocker"):
                response = client.call(
                    "POST",
                    f"/api/backups/{backup_id}/restore",
                    json={"database_id": database, "confirm": source},
                )
                assert response.status_code == 202, response.text
                restore_id = response.json()["restore"]["id"]
                pids = wait_for(lambda: tool_processes("psql", f"restore:{restore_id}@"))
                # The restore is well under way: items is already dropped in its transaction.
                wait_for(lambda: _restore_holds(pg_server, source, "items"))
                kill_and_check_no_orphan(server, pids)
            assert snapshot(pg_server, source) == before, "a killed restore changed the target"
            server.start()
            record = client.record("restore", restore_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == RESTORE_STOPPED
            assert record["finished_at"] is not None
            assert snapshot(pg_server, source) == before
        finally:
            client.close()
    pg_server.drop_database(source)


def _waits_on(server: Any, database: str, table: str) -> bool:
    """Whether a session is waiting to drop ``table`` (the restore, blocked there)."""
    rows = server.query(
        "SELECT count(*) FROM information_schema.processlist"
        f" WHERE db = '{database}' AND state LIKE 'Waiting for table metadata lock'"
        f" AND info LIKE '%DROP TABLE%{table}%'",
        database,
    )
    return bool(rows == [("1",)])


def test_sigkill_mid_mysql_restore_leaves_the_safety_backup(
    mysql_server: Any, mysql_source: str, metadata_url: str, tmp_path: Path
) -> None:
    """A MySQL restore is not one transaction (DDL commits): killed midway, the target is
    half restored, and the backup taken first (``backup_target_first``) brings it back."""
    # Restored last (mysqldump goes table by table, by name).
    mysql_server.execute("CREATE TABLE zz_blocker (id int);", mysql_source)
    with running(tmp_path, metadata_url) as server:
        client = Client(server.url)
        try:
            client.login("crashmyrs@example.com", register=True)
            database = client.add_database(mysql_server, mysql_source)
            backup = client.call("POST", f"/api/backups/database/{database}").json()
            backup_id = backup["backup"]["id"]
            assert client.wait_done("backup", backup_id)["status"] == "completed"
            at_backup = snapshot(mysql_server, mysql_source)
            mysql_server.execute(
                "UPDATE items SET name = 'after the backup' WHERE id = 1;"
                "DELETE FROM notes WHERE id = 2;",
                mysql_source,
            )
            before = snapshot(mysql_server, mysql_source)
            # A shared lock: the safety backup reads the table, the restore cannot drop it.
            with table_shared_lock(mysql_server, mysql_source, "zz_blocker"):
                response = client.call(
                    "POST",
                    f"/api/backups/{backup_id}/restore",
                    json={
                        "database_id": database,
                        "confirm": mysql_source,
                        "backup_target_first": True,
                    },
                )
                assert response.status_code == 202, response.text
                restore_id = response.json()["restore"]["id"]
                safety_id = response.json()["restore"]["safety_backup_id"]
                pids = wait_for(lambda: tools(MYSQL_CLIENTS, f"restore:{restore_id}@"), 60)
                wait_for(lambda: _waits_on(mysql_server, mysql_source, "zz_blocker"))
                assert client.record("backup", safety_id)["status"] == "completed"
                kill_and_check_no_orphan(server, pids)
            # Tables restored before the kill hold the backup's rows: the target changed.
            assert snapshot(mysql_server, mysql_source) == at_backup != before
            server.start()
            record = client.record("restore", restore_id)
            assert record["status"] == "failed"
            assert record["error_msg"] == RESTORE_STOPPED
            assert record["safety_backup_id"] == safety_id
            # What the README promises instead: the safety backup brings the target back.
            response = client.call(
                "POST",
                f"/api/backups/{safety_id}/restore",
                json={"database_id": database, "confirm": mysql_source},
            )
            assert response.status_code == 202, response.text
            back = client.wait_done("restore", response.json()["restore"]["id"])
            assert back["status"] == "completed", back["error_msg"]
            assert snapshot(mysql_server, mysql_source) == before
        finally:
            client.close()
