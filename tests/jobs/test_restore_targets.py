"""A restore names its target, confirms before writing over the backup's own source, and
can back the target up first; a backup keeps saying what it is once its database is gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backup_api.jobs.restore import SAFETY_BACKUP_CANCELLED
from backup_api.services.restores import MISSING_TARGET
from tests.jobs.test_flow import SEED_BACKUP_KEYS
from tests.support.apphelpers import Api, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled, snapshot


async def completed_backup(api: Api, database_id: int) -> dict[str, Any]:
    backup = await api.wait_backup((await api.start_backup(database_id))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    return backup


async def test_a_restore_without_a_target_is_refused(pg_server: Any, alice: Api) -> None:
    source = unique_name("src")
    expected = create_filled(pg_server, source)
    database = await alice.add_database(pg_server, source)
    backup = await completed_backup(alice, database["id"])
    url = f"/api/backups/{backup['id']}/restore"

    response = await alice.post(url)
    assert response.status_code == 400
    assert response.json() == {"error": MISSING_TARGET}
    response = await alice.post(url, content=b"null", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "Données invalides: objet JSON attendu"}
    for body in ({}, {"confirm": source}, {"backup_target_first": True}):
        response = await alice.post(url, json=body)
        assert response.status_code == 400
        assert response.json() == {"error": "Données invalides: database_id: champ requis"}
    assert (await alice.get("/api/restores")).json()["restores"] == []
    assert [b["id"] for b in (await alice.get("/api/backups")).json()["backups"]] == [backup["id"]]
    assert snapshot(pg_server, source) == expected
    pg_server.drop_database(source)


async def test_restoring_over_the_source_needs_its_db_name(pg_server: Any, alice: Api) -> None:
    source, other = unique_name("src"), unique_name("other")
    expected = create_filled(pg_server, source)
    create_filled(pg_server, other)
    database = await alice.add_database(pg_server, source)
    other_db = await alice.add_database(pg_server, other)
    backup = await completed_backup(alice, database["id"])
    pg_server.execute("UPDATE items SET name = 'after the backup'", source)
    url = f"/api/backups/{backup['id']}/restore"
    expected_body = json.dumps({"database_id": database["id"], "confirm": source})
    refusal = {
        "error": "La base cible est la base d'origine de cette sauvegarde et sera écrasée; "
        f"pour confirmer, envoyez {expected_body}"
    }

    for body in (
        {"database_id": database["id"]},
        {"database_id": database["id"], "confirm": "oui"},
        {"database_id": database["id"], "confirm": source.upper()},
    ):
        response = await alice.post(url, json=body)
        assert response.status_code == 409
        assert response.json() == refusal
    # The same database registered a second time is the source all the same.
    twin = await alice.add_database(pg_server, source, name="la même")
    response = await alice.post(url, json={"database_id": twin["id"]})
    assert response.status_code == 409
    assert f'"confirm": "{source}"' in response.json()["error"]
    assert (await alice.get("/api/restores")).json()["restores"] == []
    assert pg_server.query("SELECT DISTINCT name FROM items", source) == [("after the backup",)]

    # Another database needs no confirmation; the source with its db_name is restored.
    response = await alice.post(url, json={"database_id": other_db["id"]})
    assert response.status_code == 202, response.text
    assert (await alice.wait_restore(response.json()["restore"]["id"]))["status"] == "completed"
    response = await alice.post(url, json={"database_id": database["id"], "confirm": source})
    assert response.status_code == 202, response.text
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert restore["safety_backup_id"] is None
    assert snapshot(pg_server, source) == expected
    pg_server.drop_database(source)
    pg_server.drop_database(other)


async def test_a_backup_keeps_its_source_once_the_database_is_deleted(
    pg_server: Any, alice: Api
) -> None:
    source = unique_name("gone")
    expected = create_filled(pg_server, source)
    database = await alice.add_database(pg_server, source, name="Base éphémère")
    backup = await completed_backup(alice, database["id"])
    source_fields = {
        "database_name": "Base éphémère",
        "db_type": "postgresql",
        "db_name": source,
        "db_host": pg_server.host,
        "db_port": str(pg_server.port),
    }
    assert list(backup)[: len(SEED_BACKUP_KEYS)] == SEED_BACKUP_KEYS
    assert {key: backup[key] for key in source_fields} == source_fields
    # Renaming the registration later does not rewrite what the backup was taken from.
    response = await alice.put(f"/api/databases/{database['id']}", json={"name": "Renommée"})
    assert response.status_code == 200

    assert (await alice.delete(f"/api/databases/{database['id']}")).status_code == 200
    kept = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
    assert kept["database_id"] is None
    assert {key: kept[key] for key in source_fields} == source_fields
    listed = (await alice.get("/api/backups")).json()["backups"]
    assert listed == [kept]

    # Registered again, the same database is still recognised as this backup's source.
    again = await alice.add_database(pg_server, source)
    url = f"/api/backups/{backup['id']}/restore"
    response = await alice.post(url, json={"database_id": again["id"]})
    assert response.status_code == 409
    assert "confirm" in response.json()["error"]
    pg_server.execute("DELETE FROM notes; DELETE FROM items", source)
    response = await alice.post(url, json={"database_id": again["id"], "confirm": source})
    assert (await alice.wait_restore(response.json()["restore"]["id"]))["status"] == "completed"
    assert snapshot(pg_server, source) == expected
    pg_server.drop_database(source)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_backup_target_first_keeps_what_the_restore_overwrote(
    engine: str, request: pytest.FixtureRequest, alice: Api
) -> None:
    server = request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")
    source, target = unique_name("src"), unique_name("dst")
    from_source = create_filled(server, source)
    before = create_filled(server, target)
    server.execute("UPDATE items SET name = 'only in the target' WHERE id <= 3", target)
    before = snapshot(server, target)
    source_db = await alice.add_database(server, source)
    target_db = await alice.add_database(server, target)
    backup = await completed_backup(alice, source_db["id"])

    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": target_db["id"], "backup_target_first": True},
    )
    assert response.status_code == 202, response.text
    created = response.json()["restore"]
    safety_id = created["safety_backup_id"]
    assert isinstance(safety_id, int)
    assert safety_id != backup["id"]
    restore = await alice.wait_restore(created["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert restore["safety_backup_id"] == safety_id
    assert snapshot(server, target) == from_source

    safety = (await alice.get(f"/api/backups/{safety_id}")).json()["backup"]
    assert safety["status"] == "completed", safety["error_msg"]
    assert safety["database_id"] == target_db["id"]
    assert safety["db_name"] == target
    # The safety backup holds the target as it was: restoring it undoes the restore.
    response = await alice.post(
        f"/api/backups/{safety_id}/restore",
        json={"database_id": target_db["id"], "confirm": target},
    )
    undo = await alice.wait_restore(response.json()["restore"]["id"])
    assert undo["status"] == "completed", undo["error_msg"]
    assert snapshot(server, target) == before
    server.drop_database(source)
    server.drop_database(target)


async def test_a_failed_backup_of_the_target_stops_the_restore(
    mysql_server: Any, alice: Api
) -> None:
    source, target = unique_name("src"), unique_name("dst")
    create_filled(mysql_server, source)
    mysql_server.create_database(target)
    # A view whose table was dropped: mysqldump refuses to dump this database.
    mysql_server.execute(
        "CREATE TABLE marker (v VARCHAR(20)); INSERT INTO marker VALUES ('untouched');"
        "CREATE TABLE gone (id INT); CREATE VIEW broken AS SELECT id FROM gone;"
        "DROP TABLE gone;",
        target,
    )
    tables = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    before = sorted(mysql_server.query(tables, target))
    source_db = await alice.add_database(mysql_server, source)
    target_db = await alice.add_database(mysql_server, target)
    backup = await completed_backup(alice, source_db["id"])

    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": target_db["id"], "backup_target_first": True},
    )
    assert response.status_code == 202, response.text
    safety_id = response.json()["restore"]["safety_backup_id"]
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert restore["error_msg"] == (
        f"la sauvegarde préalable de la base cible a échoué (sauvegarde {safety_id}): "
        "restauration annulée, la base cible n'a pas été modifiée"
    )
    safety = (await alice.get(f"/api/backups/{safety_id}")).json()["backup"]
    assert safety["status"] == "failed"
    assert safety["error_msg"].startswith("mysqldump a échoué"), safety["error_msg"]
    assert "broken" in safety["error_msg"]
    assert sorted(mysql_server.query(tables, target)) == before
    assert mysql_server.query("SELECT v FROM marker", target) == [("untouched",)]
    mysql_server.drop_database(source)
    mysql_server.drop_database(target)


async def test_deleting_a_restore_during_its_safety_backup_stops_both(
    pg_server: Any, alice: Api, tmp_path: Path
) -> None:
    source, target = unique_name("src"), unique_name("dst")
    create_filled(pg_server, source)
    before = create_filled(pg_server, target)
    source_db = await alice.add_database(pg_server, source)
    target_db = await alice.add_database(pg_server, target)
    backup = await completed_backup(alice, source_db["id"])

    with table_locked(pg_server, target):
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": target_db["id"], "backup_target_first": True},
        )
        restore = response.json()["restore"]
        safety_id = restore["safety_backup_id"]
        pids = await wait_until(lambda: tool_processes("pg_dump", f"backup:{safety_id}@"))
        # The backup the restore waits for cannot be deleted from under it.
        response = await alice.delete(f"/api/backups/{safety_id}")
        assert response.status_code == 409
        assert response.json()["error"] == (
            "Une restauration en cours ou en attente utilise cette sauvegarde"
        )
        response = await alice.delete(f"/api/restores/{restore['id']}")
        assert response.status_code == 200
        for pid in pids:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or ") Z" in stat.read_text(), "pg_dump survived"
    safety = (await alice.get(f"/api/backups/{safety_id}")).json()["backup"]
    assert safety["status"] == "failed"
    assert safety["error_msg"] == SAFETY_BACKUP_CANCELLED
    assert (await alice.get(f"/api/restores/{restore['id']}")).status_code == 404
    assert snapshot(pg_server, target) == before
    assert (await alice.delete(f"/api/backups/{safety_id}")).status_code == 200
    pg_server.drop_database(source)
    pg_server.drop_database(target)
