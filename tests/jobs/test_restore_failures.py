"""Restores that end early: timeouts, a MySQL restore failing midway, a MySQL restore
cancelled. What is left of the target is what the README promises: PostgreSQL restores
run in one transaction (nothing changes), MySQL ones do not (the safety backup taken
first, ``backup_target_first``, brings the target back)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.test_lifecycle import account_of_its_own
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled, snapshot

ENGINES = ["postgresql", "mysql"]
CLIENTS = {"postgresql": ("psql",), "mysql": ("mysql", "mariadb")}


def server_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")


def client_pids(engine: str, restore_id: int) -> list[int]:
    marker = f"restore:{restore_id}@"
    return [pid for name in CLIENTS[engine] for pid in tool_processes(name, marker)]


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return ") Z" in stat.read_text()
    except OSError:
        return True


@pytest.fixture
def source(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    server = server_for(request, request.param)
    name = unique_name("rsfail")
    create_filled(server, name)
    yield server, name
    server.drop_database(name)


def _changed_after_backup(server: Any, database: str) -> list[list[tuple[Any, ...]]]:
    server.execute(
        "UPDATE items SET name = 'after the backup' WHERE id = 1; DELETE FROM notes WHERE id = 2;",
        database,
    )
    return snapshot(server, database)


@pytest.mark.parametrize("source", ENGINES, indirect=True)
@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (
            {"dump_timeout_seconds": 1.5, "dump_idle_timeout_seconds": 600},
            "délai maximal dépassé (1.5 s): restauration interrompue",
        ),
        (
            {"dump_timeout_seconds": 600, "dump_idle_timeout_seconds": 1.5},
            "aucune activité de {tool} depuis 1.5 s (délai d'inactivité): restauration interrompue",
        ),
    ],
    ids=["total", "idle"],
)
async def test_a_restore_past_its_time_limit_is_stopped(
    source: tuple[Any, str], limit: dict[str, float], message: str, tmp_path: Path
) -> None:
    """``DUMP_TIMEOUT_SECONDS`` and ``DUMP_IDLE_TIMEOUT_SECONDS`` bound restores too: a
    restore blocked by a lock on the target is stopped, and its client with it."""
    server, name = source
    engine = server.kind
    settings = make_settings(tmp_path)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup("limits@example.com")
        database = await api.add_database(server, name)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed"
    before = _changed_after_backup(server, name)
    # The same service (metadata, archives, keys), restarted with the limit.
    limited = make_settings(tmp_path, database_url=settings.database_url, **limit)
    async with running_app(limited) as (_, client):
        api = await Api(client).login("limits@example.com")
        # Blocked at its first statement on "items", which it cannot drop.
        with table_locked(server, name):
            response = await api.post(
                f"/api/backups/{backup['id']}/restore",
                json={"database_id": database["id"], "confirm": name},
            )
            assert response.status_code == 202, response.text
            restore_id = response.json()["restore"]["id"]
            pids = await wait_until(lambda: client_pids(engine, restore_id))
            restore = await api.wait_restore(restore_id)
            assert all(gone(pid) for pid in pids), "the client outlived its restore"
            tool = "psql" if engine == "postgresql" else "mysql"
            assert restore["status"] == "failed"
            assert restore["error_msg"] == message.format(tool=tool)
            assert restore["finished_at"] is not None
            if engine == "mysql":
                # The client is gone, but its statement still waits on the server (see
                # test_a_stopped_mysql_restore_leaves_no_statement_behind); what the README
                # promises for MySQL is the safety backup, tested below.
                assert _waiting_sessions(server, name) == 1
        if engine == "postgresql":
            # One transaction, rolled back when psql is killed: nothing changed.
            assert snapshot(server, name) == before
        # The backup is intact: the same restore, unhindered, completes in time.
        response = await api.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": name},
        )
        again = await api.wait_restore(response.json()["restore"]["id"])
        assert again["status"] == "completed", again["error_msg"]
        assert snapshot(server, name) != before


def _waiting_sessions(server: Any, database: str) -> int:
    """Server sessions waiting for a lock in ``database``."""
    rows = server.query(
        "SELECT count(*) FROM information_schema.processlist"
        f" WHERE db = '{database}' AND state = 'Waiting for table metadata lock'",
        database,
    )
    return int(rows[0][0] or 0)


@pytest.mark.xfail(
    strict=True,
    reason="known gap: killing the mysql client does not stop the statement it had sent; "
    "the server runs it once the lock it waits for is released",
)
async def test_a_stopped_mysql_restore_leaves_no_statement_behind(
    mysql_server: Any, alice: Api
) -> None:
    name = unique_name("rslinger")
    create_filled(mysql_server, name)
    database = await alice.add_database(mysql_server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    try:
        with table_locked(mysql_server, name):
            response = await alice.post(
                f"/api/backups/{backup['id']}/restore",
                json={"database_id": database["id"], "confirm": name},
            )
            restore_id = response.json()["restore"]["id"]
            pids = await wait_until(lambda: client_pids("mysql", restore_id))
            await wait_until(lambda: _waiting_sessions(mysql_server, name) == 1)
            assert (await alice.delete(f"/api/restores/{restore_id}")).status_code == 200
            assert all(gone(pid) for pid in pids)
            # Deleted: its statement must not run later, when the lock is released.
            assert _waiting_sessions(mysql_server, name) == 0
    finally:
        mysql_server.drop_database(name)


async def test_a_mysql_restore_failing_midway_is_undone_by_the_safety_backup(
    mysql_server: Any, alice: Api
) -> None:
    """An SQL error after some tables were already replaced: the restore fails with the
    tool's own error line, and the backup of the target taken first brings it back."""
    source, target = unique_name("rsmid"), unique_name("rsmidt")
    create_filled(mysql_server, source)
    # A view, restored last: the target's account may not create views.
    mysql_server.execute("CREATE VIEW v AS SELECT id, name FROM items;", source)
    create_filled(mysql_server, target)
    before = _changed_after_backup(mysql_server, target)
    try:
        with account_of_its_own(mysql_server, target) as (user, password):
            account = f"'{user}'@'{mysql_server.host}'"
            mysql_server.execute(f"REVOKE CREATE VIEW ON `{target}`.* FROM {account};", target)
            database = await alice.add_database(mysql_server, source)
            other = await alice.add_database(mysql_server, target, username=user, password=password)
            backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
            assert backup["status"] == "completed"
            response = await alice.post(
                f"/api/backups/{backup['id']}/restore",
                json={"database_id": other["id"], "backup_target_first": True},
            )
            assert response.status_code == 202, response.text
            restore = await alice.wait_restore(response.json()["restore"]["id"])
            assert restore["status"] == "failed"
            # The line number is the dump's, which varies with the server's version.
            assert re.fullmatch(
                re.escape("mysql a échoué (code 1): ERROR 1142 (42000) at line ")
                + r"\d+"
                + re.escape(
                    f": CREATE VIEW command denied to user '{user}'@'{mysql_server.host}'"
                    f" for table `{target}`.`v`"
                ),
                restore["error_msg"],
            ), restore["error_msg"]
            assert password not in restore["error_msg"]
            # Not one transaction: the tables before the view hold the backup's rows...
            assert snapshot(mysql_server, target) != before
            # ...and the safety backup, completed first, is what brings the target back.
            safety = (await alice.get(f"/api/backups/{restore['safety_backup_id']}")).json()
            assert safety["backup"]["status"] == "completed"
            response = await alice.post(
                f"/api/backups/{safety['backup']['id']}/restore",
                json={"database_id": other["id"], "confirm": target},
            )
            back = await alice.wait_restore(response.json()["restore"]["id"])
            assert back["status"] == "completed", back["error_msg"]
            assert snapshot(mysql_server, target) == before
    finally:
        mysql_server.drop_database(source)
        mysql_server.drop_database(target)


async def test_deleting_a_running_mysql_restore_stops_it(mysql_server: Any, alice: Api) -> None:
    name = unique_name("rscancel")
    create_filled(mysql_server, name)
    database = await alice.add_database(mysql_server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    with table_locked(mysql_server, name):
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": name},
        )
        restore_id = response.json()["restore"]["id"]
        pids = await wait_until(lambda: client_pids("mysql", restore_id))
        # The backup being restored cannot be deleted meanwhile.
        response = await alice.delete(f"/api/backups/{backup['id']}")
        assert response.status_code == 409
        assert response.json() == {
            "error": "Une restauration en cours ou en attente utilise cette sauvegarde"
        }
        response = await alice.delete(f"/api/restores/{restore_id}")
        assert response.status_code == 200, response.text
        assert all(gone(pid) for pid in pids), "the mysql client survived the deletion"
        assert client_pids("mysql", restore_id) == []
    assert (await alice.get(f"/api/restores/{restore_id}")).status_code == 404
    assert (await alice.get("/api/restores")).json()["restores"] == []
    # The backup is free again, and intact: restoring it completes, then it can be deleted.
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": database["id"], "confirm": name},
    )
    again = await alice.wait_restore(response.json()["restore"]["id"])
    assert again["status"] == "completed", again["error_msg"]
    assert (await alice.delete(f"/api/backups/{backup['id']}")).status_code == 200
    mysql_server.drop_database(name)
