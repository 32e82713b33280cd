"""Restores through the API, with the real clients against the real servers."""

from __future__ import annotations

import hashlib
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.support.apphelpers
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled, snapshot

ENGINES = ["postgresql", "mysql"]


def server_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")


@pytest.mark.parametrize("engine", ENGINES)
async def test_restore_brings_back_the_state_at_backup_time(
    engine: str, request: pytest.FixtureRequest, alice: Api
) -> None:
    server = server_for(request, engine)
    source = unique_name("restore")
    expected = create_filled(server, source)
    database = await alice.add_database(server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed"

    # Change, delete, drop and add after the backup.
    server.execute(
        "UPDATE items SET name = 'changed' WHERE id <= 10;"
        "DELETE FROM items WHERE id > 400;"
        "DROP TABLE notes;"
        "CREATE TABLE extra (id int);",
        source,
    )
    assert server.query("SELECT COUNT(*) FROM items", source) == [("400",)]
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore",
        json={"database_id": database["id"], "confirm": source},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["message"]
    assert body["restore"]["status"] == "pending"
    assert body["restore"]["backup_id"] == backup["id"]
    assert body["restore"]["database_id"] == database["id"]
    restore = await alice.wait_restore(body["restore"]["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert restore["error_msg"] is None
    assert restore["duration_seconds"] is not None
    assert snapshot(server, source) == expected
    listing = (await alice.get("/api/restores")).json()["restores"]
    assert [r["id"] for r in listing] == [restore["id"]]
    server.drop_database(source)


@pytest.mark.parametrize("engine", ENGINES)
async def test_restore_into_another_empty_database(
    engine: str, request: pytest.FixtureRequest, alice: Api
) -> None:
    server = server_for(request, engine)
    source, target = unique_name("src"), unique_name("dst")
    expected = create_filled(server, source)
    server.create_database(target)
    database = await alice.add_database(server, source)
    other = await alice.add_database(server, target)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore", json={"database_id": other["id"]}
    )
    assert response.status_code == 202
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "completed", restore["error_msg"]
    assert restore["database_id"] == other["id"]
    assert snapshot(server, target) == expected
    server.drop_database(source)
    server.drop_database(target)


async def test_failed_restore_rolls_back_everything(pg_server: Any, alice: Api) -> None:
    source, target = unique_name("src"), unique_name("dst")
    create_filled(pg_server, source)
    pg_server.create_database(target)
    # The target holds an "items" table that a view in another schema depends on: the
    # dump's "DROP TABLE IF EXISTS items" fails after earlier statements succeeded.
    pg_server.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text);"
        "INSERT INTO items VALUES (1, 'keep me'), (2, 'me too');"
        "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('before');"
        "CREATE SCHEMA other; CREATE VIEW other.v AS SELECT * FROM public.items;",
        target,
    )
    before = pg_server.query("SELECT id, name FROM items ORDER BY id", target)
    database = await alice.add_database(pg_server, source)
    other = await alice.add_database(pg_server, target)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    response = await alice.post(
        f"/api/backups/{backup['id']}/restore", json={"database_id": other["id"]}
    )
    restore = await alice.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert restore["error_msg"] == (
        "psql a échoué (code 3): ERROR:  cannot drop table public.items because other objects"
        " depend on it"
    ), restore["error_msg"]
    assert pg_server.password not in restore["error_msg"]
    assert pg_server.query("SELECT id, name FROM items ORDER BY id", target) == before
    assert pg_server.query("SELECT v FROM marker", target) == [("before",)]
    tables = pg_server.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", target
    )
    assert tables == [("items",), ("marker",)], "a statement of the failed restore survived"
    pg_server.drop_database(source)
    pg_server.drop_database(target)


def _rewrite_archive(app_settings: Any, backup: dict[str, Any], build: Any) -> None:
    path = Path(backup["filepath"])
    path.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        build(archive)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url: str = app_settings.database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
            connection.execute(
                "UPDATE backups SET checksum = ? WHERE id = ?", (digest, backup["id"])
            )
    else:
        sql = f"UPDATE backups SET checksum = '{digest}' WHERE id = {int(backup['id'])}"
        tests.support.apphelpers.METADATA_SERVER.execute(sql, url.rsplit("/", 1)[1])


EVIL = "CREATE TABLE pwned (v int);\n"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("flipped", "somme de contrôle"),
        ("extra-entry", "une seule entrée"),
        ("traversal", "nom d'entrée non sûr"),
        ("not-sql", "pas un fichier .sql"),
    ],
)
async def test_untrustworthy_archive_executes_nothing(
    pg_server: Any, tmp_path: Path, case: str, reason: str
) -> None:
    """Verify and restore use one validator: what one refuses, the other does, alike."""
    settings = make_settings(tmp_path)
    source = unique_name("src")
    create_filled(pg_server, source)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, source)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        path = Path(backup["filepath"])
        if case == "flipped":
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        elif case == "extra-entry":
            _rewrite_archive(
                settings, backup, lambda z: (z.writestr("a.sql", EVIL), z.writestr("b.sql", EVIL))
            )
        elif case == "traversal":
            _rewrite_archive(settings, backup, lambda z: z.writestr("../evil.sql", EVIL))
        else:
            _rewrite_archive(settings, backup, lambda z: z.writestr("evil.txt", EVIL))
        verification = (await api.post(f"/api/backups/{backup['id']}/verify")).json()
        response = await api.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        restore = await api.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert reason in restore["error_msg"], restore["error_msg"]
    assert verification["verification"]["valid"] is False
    assert verification["verification"]["error"] == restore["error_msg"]
    tables = pg_server.query("SELECT count(*) FROM pg_tables WHERE tablename = 'pwned'", source)
    assert tables == [("0",)]
    pg_server.drop_database(source)


def _sql_of(backup: dict[str, Any]) -> tuple[str, bytes]:
    with zipfile.ZipFile(backup["filepath"]) as archive:
        (name,) = archive.namelist()
        return name, archive.read(name)


# Over one read of the archive's entry (1 MiB): what comes before is already with psql.
PADDING = b"-- " + b"x" * 76 + b"\n"
PADDING_LINES = 20_000


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-header", "ne commence pas par l'en-tête de pg_dump et sa clé \\restrict"),
        ("unrestrict", "la clé \\restrict de pg_dump réapparaît"),
        ("restricted", "backslash commands are restricted"),
    ],
)
async def test_a_replaced_postgresql_archive_runs_no_meta_command(
    pg_server: Any, tmp_path: Path, case: str, reason: str
) -> None:
    """An archive replaced along with its checksum: psql's ``\\!`` never runs, and what
    SQL got to psql before the refusal is rolled back."""
    settings = make_settings(tmp_path)
    source = unique_name("src")
    create_filled(pg_server, source)
    marker = tmp_path / "pwned-marker"
    shell = f"\\! touch {marker}\n".encode()
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, source)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        name, sql = _sql_of(backup)
        head_end = sql.index(b"\n", sql.index(b"\\restrict ")) + 1
        head, key = sql[:head_end], sql[sql.index(b"\\restrict ") + 10 : head_end - 1]
        closing = b"\n\\unrestrict " + key + b"\n\n"
        evil = EVIL.encode() + PADDING * PADDING_LINES
        if case == "no-header":
            replaced = shell + evil
        elif case == "unrestrict":
            replaced = head + evil + b"\\unrestrict " + key + b"\n" + shell + closing
        else:
            replaced = head + evil + shell + closing
        _rewrite_archive(settings, backup, lambda z: z.writestr(name, replaced))
        verification = (await api.post(f"/api/backups/{backup['id']}/verify")).json()
        response = await api.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": database["db_name"]},
        )
        restore = await api.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert reason in restore["error_msg"], restore["error_msg"]
    if case != "restricted":  # an archive shaped as pg_dump's: psql itself refuses
        assert verification["verification"]["error"] == restore["error_msg"]
    assert not marker.exists(), "a meta-command ran on the service's host"
    tables = pg_server.query("SELECT count(*) FROM pg_tables WHERE tablename = 'pwned'", source)
    assert tables == [("0",)], "a refused archive was applied in part"
    pg_server.drop_database(source)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-header", "ne commence pas par l'en-tête de mysqldump"),
        ("system", "sandbox"),
        ("bang", "sandbox"),
    ],
)
async def test_a_replaced_mysql_archive_runs_no_client_command(
    mysql_server: Any, tmp_path: Path, case: str, reason: str
) -> None:
    settings = make_settings(tmp_path)
    source = unique_name("src")
    create_filled(mysql_server, source)
    marker = tmp_path / "pwned-marker"
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(mysql_server, source)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        name, sql = _sql_of(backup)
        # mysqldump's header line alone: without the line before it, with which MariaDB's
        # own dumps turn sandbox mode on, only the client's --sandbox stands in the way.
        start = sql.index(b"-- MariaDB dump")
        head = sql[start : sql.index(b"\n", start) + 1]
        command = {"system": b"system", "bang": b"\\!"}.get(case, b"system")
        shell = command + f" touch {marker}\n".encode()
        replaced = shell + EVIL.encode() if case == "no-header" else head + shell
        _rewrite_archive(settings, backup, lambda z: z.writestr(name, replaced))
        verification = (await api.post(f"/api/backups/{backup['id']}/verify")).json()
        response = await api.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": database["db_name"]},
        )
        restore = await api.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert reason in restore["error_msg"], restore["error_msg"]
    if case == "no-header":
        assert verification["verification"]["error"] == restore["error_msg"]
    assert not marker.exists(), "a client command ran on the service's host"
    mysql_server.drop_database(source)


async def test_restore_error_statuses(
    client: httpx.AsyncClient, pg_server: Any, mysql_server: Any
) -> None:
    alice = await Api(client).signup("alice@example.com")
    bob = await Api(client).signup("bob@example.com")
    source = unique_name("src")
    create_filled(pg_server, source)
    pg_db = await alice.add_database(pg_server, source)
    my_db = await alice.add_database(mysql_server, "mysql")
    bob_db = await bob.add_database(pg_server, source)
    backup = await alice.wait_backup((await alice.start_backup(pg_db["id"]))["id"])
    url = f"/api/backups/{backup['id']}/restore"
    over_source = {"database_id": pg_db["id"], "confirm": source}

    response = await alice.post(url, json={"database_id": my_db["id"]})
    assert response.status_code == 400
    assert "type" in response.json()["error"]
    assert (await bob.post(url)).status_code == 403
    assert (await alice.post(url, json={"database_id": bob_db["id"]})).status_code == 403
    assert (await alice.post("/api/backups/999999/restore")).status_code == 404
    assert (await alice.post(url, json={"database_id": 999999})).status_code == 404
    assert (await alice.post(url, json={"database_id": "abc"})).status_code == 400
    assert (await alice.post(url, json={"backup_id": 1})).status_code == 400

    with table_locked(pg_server, source):
        pending = await alice.start_backup(pg_db["id"])
        # Not completed yet: 409. The target is busy with that backup: 409 too.
        response = await alice.post(f"/api/backups/{pending['id']}/restore", json=over_source)
        assert response.status_code == 409
        response = await alice.post(url, json=over_source)
        assert response.status_code == 409
        assert "en cours" in response.json()["error"]
    assert (await alice.wait_backup(pending["id"]))["status"] == "completed"
    assert (await alice.get("/api/restores")).json()["restores"] == []
    pg_server.drop_database(source)


@pytest.mark.parametrize("engine", ENGINES)
async def test_restore_client_never_sees_the_password_on_argv(
    engine: str, request: pytest.FixtureRequest, alice: Api
) -> None:
    server = server_for(request, engine)
    source = unique_name("argv")
    create_filled(server, source)
    database = await alice.add_database(server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    client_tool = "psql" if engine == "postgresql" else "mysql"
    with table_locked(server, source):
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        restore_id = response.json()["restore"]["id"]
        marker = f"restore:{restore_id}@"
        pids = await wait_until(
            lambda: tool_processes(client_tool, marker) or tool_processes("mariadb", marker)
        )
        for pid in pids:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert server.password.encode() not in argv
            assert server.password.encode() not in environ
    restore = await alice.wait_restore(restore_id)
    assert restore["status"] == "completed", restore["error_msg"]
    server.drop_database(source)


async def test_deleting_a_running_restore_stops_it_and_rolls_back(
    pg_server: Any, alice: Api
) -> None:
    source = unique_name("cancel")
    create_filled(pg_server, source)
    database = await alice.add_database(pg_server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    pg_server.execute("UPDATE items SET name = 'after the backup' WHERE id = 1;", source)
    with table_locked(pg_server, source):
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        restore_id = response.json()["restore"]["id"]
        pids = await wait_until(lambda: tool_processes("psql", f"restore:{restore_id}@"))
        # The backup being restored cannot be deleted meanwhile.
        response = await alice.delete(f"/api/backups/{backup['id']}")
        assert response.status_code == 409
        assert response.json() == {
            "error": "Une restauration en cours ou en attente utilise cette sauvegarde"
        }
        response = await alice.delete(f"/api/restores/{restore_id}")
        assert response.status_code == 200
        assert response.json()["message"]
        for pid in pids:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or ") Z" in stat.read_text(), "psql survived"
    assert (await alice.get(f"/api/restores/{restore_id}")).status_code == 404
    rows = pg_server.query("SELECT name FROM items WHERE id = 1", source)
    assert rows == [("after the backup",)], "a cancelled restore changed the target"
    # The backup is free again: deleting it, refused while the restore ran, succeeds.
    assert (await alice.delete(f"/api/backups/{backup['id']}")).status_code == 200
    pg_server.drop_database(source)
