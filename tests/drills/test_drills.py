"""Restore drills end to end, on both engines, with the real tools against the suite's
servers: a scheduled drill that passes, a target tampered with during the restore, an
archive altered on disk, and the targets a drill refuses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from backup_api.config import Settings
from backup_api.events import DRILL_FAILED, DRILL_PASSED, ServiceEvent
from backup_api.repositories import drills as drill_records
from tests.support.apphelpers import Api, metadata_sql, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.locks import table_shared_lock, wait_until
from tests.support.sample_data import create_filled

ENGINES = ["postgresql", "mysql"]
#: The sample schema's tables, as each engine's dump names them, and their rows.
EXPECTED = {
    "postgresql": {"public.items": 501, "public.notes": 2},
    "mysql": {"items": 501, "notes": 2},
}

METRICS_TOKEN = "jeton-metriques-exercices"


def server_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")


def collect(app: FastAPI) -> list[ServiceEvent]:
    events: list[ServiceEvent] = []
    app.state.backup_api.events.subscribe(events.append)
    return events


async def add_scratch(api: Api, server: Any, db_name: str, **overrides: Any) -> dict[str, Any]:
    return await api.add_database(server, db_name, scratch=True, confirm=db_name, **overrides)


async def wait_drill(api: Api, drill_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/api/drills/{drill_id}")
        assert response.status_code == 200, response.text
        drill: dict[str, Any] = response.json()["drill"]
        if drill["status"] != "pending":
            return drill
        assert time.monotonic() < deadline, f"drill {drill_id} still pending: {drill}"
        await asyncio.sleep(0.05)


async def start_drill(api: Api, backup_id: int, target_id: int | None) -> dict[str, Any]:
    body = None if target_id is None else {"target_database_id": target_id}
    response = await api.post(f"/api/backups/{backup_id}/drill", json=body)
    assert response.status_code == 202, response.text
    drill: dict[str, Any] = response.json()["drill"]
    assert drill["status"] == "pending"
    return drill


@pytest.mark.parametrize("engine", ENGINES)
async def test_scheduled_drill_passes_and_records_every_table(
    engine: str, request: pytest.FixtureRequest, settings_factory: Callable[..., Settings]
) -> None:
    server = server_for(request, engine)
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(server, source)
    server.create_database(scratch)
    clock = TravelClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    settings = settings_factory(metrics_token=METRICS_TOKEN)
    async with running_app(settings, clock=clock) as (app, client):
        events = collect(app)
        alice = await Api(client).signup()
        database = await alice.add_database(server, source)
        target = await add_scratch(alice, server, scratch)
        assert target["scratch"] is True
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        assert backup["table_rows"] == EXPECTED[engine]
        assert backup["last_drill"] is None

        url = f"/api/databases/{database['id']}/drill"
        assert (await alice.get(url)).status_code == 404
        body = {"target_database_id": target["id"], "cron": "0 5 * * 0", "timezone": "UTC"}
        response = await alice.put(url, json=body)
        assert response.status_code == 200, response.text
        schedule = response.json()["drill_schedule"]
        assert schedule["next_run_at"] == "2026-03-08T05:00:00Z"  # the next Sunday
        assert schedule["last_drill_id"] is None

        clock.travel_to(datetime(2026, 3, 8, 5, 0, 1, tzinfo=UTC))

        async def started() -> int | None:
            found = (await alice.get(url)).json()["drill_schedule"]["last_drill_id"]
            return int(found) if found is not None else None

        drill_id = await wait_until_async(started)
        drill = await wait_drill(alice, drill_id)
        assert drill["status"] == "passed", drill["error_msg"]
        assert drill["error_msg"] is None
        assert drill["backup_id"] == backup["id"]
        assert drill["source_database_id"] == database["id"]
        assert drill["target_database_id"] == target["id"]
        assert drill["tables"] == [
            {"name": name, "expected_rows": rows, "restored_rows": rows}
            for name, rows in sorted(EXPECTED[engine].items())
        ]
        assert drill["duration_seconds"] is not None
        assert server.query("SELECT COUNT(*) FROM items", scratch) == [("501",)]
        # The next slot is a week later; the backup carries its drill's outcome.
        schedule = (await alice.get(url)).json()["drill_schedule"]
        assert schedule["next_run_at"] == "2026-03-15T05:00:00Z"
        shown = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
        assert shown["last_drill"] == {
            "id": drill_id,
            "status": "passed",
            "finished_at": drill["finished_at"],
        }
        assert [d["id"] for d in (await alice.get("/api/drills")).json()["drills"]] == [drill_id]

        await wait_until(lambda: any(e.type == DRILL_PASSED for e in events))
        (event,) = [e for e in events if e.type in (DRILL_PASSED, DRILL_FAILED)]
        assert event.user_id == alice.user["id"]
        assert event.data["drill"]["id"] == drill_id
        assert event.data["drill"]["status"] == "passed"
        assert event.data["database"] == {
            "id": database["id"],
            "name": database["name"],
            "type": engine,
        }
        assert server.password not in repr(event.data)

        # What the metric reads: the source's newest passed drill.
        metadata = app.state.backup_api.metadata
        success = await metadata.read(drill_records.last_drill_success_by_database)
        assert list(success) == [database["id"]]
        assert success[database["id"]].strftime("%Y-%m-%dT%H:%M:%S") in drill["finished_at"]
        # And what a scrape shows: the source's series only, at the drill's end.
        scrape = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scrape.status_code == 200, scrape.text
        gauge = {
            sample.labels["database_id"]: sample.value
            for family in text_string_to_metric_families(scrape.text)
            for sample in family.samples
            if sample.name == "backup_api_last_drill_success_timestamp_seconds"
        }
        assert gauge == {str(database["id"]): success[database["id"]].timestamp()}

        assert (await alice.delete(url)).status_code == 200
        assert (await alice.get(url)).status_code == 404
    server.drop_database(source)
    server.drop_database(scratch)


async def wait_until_async(probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (value := await probe()) is None:
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.05)
    return value


# On PostgreSQL the restore is one transaction and drops and recreates every table, so a
# table trigger set beforehand would go with its table: an event trigger, which outlives
# the restore, puts a row trigger on "items" as the restore creates it; that trigger
# deletes every hundredth row as it is copied in.
PG_TAMPERING = r"""
CREATE SCHEMA tamper;
CREATE FUNCTION tamper.delete_some() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id % 100 = 0 THEN
        DELETE FROM public.items WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION tamper.on_create() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE created record;
BEGIN
    FOR created IN SELECT * FROM pg_event_trigger_ddl_commands()
        WHERE command_tag = 'CREATE TABLE' AND object_identity = 'public.items'
    LOOP
        EXECUTE 'CREATE TRIGGER delete_some AFTER INSERT ON public.items '
                'FOR EACH ROW EXECUTE FUNCTION tamper.delete_some()';
    END LOOP;
END $$;
CREATE EVENT TRIGGER tamper_items ON ddl_command_end EXECUTE FUNCTION tamper.on_create();
"""


async def test_drill_of_a_target_tampered_with_fails_naming_the_table_postgresql(
    pg_server: Any, app: FastAPI, alice: Api
) -> None:
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    pg_server.execute(PG_TAMPERING, scratch)
    events = collect(app)
    database = await alice.add_database(pg_server, source)
    target = await add_scratch(alice, pg_server, scratch)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    drill = await wait_drill(alice, (await start_drill(alice, backup["id"], target["id"]))["id"])
    assert drill["status"] == "failed"
    assert drill["error_msg"] == (
        "restauration d'essai non conforme: table public.items: 501 lignes attendues, "
        "496 restaurées"
    )
    assert drill["tables"] == [
        {"name": "public.items", "expected_rows": 501, "restored_rows": 496},
        {"name": "public.notes", "expected_rows": 2, "restored_rows": 2},
    ]
    assert pg_server.query("SELECT COUNT(*) FROM items", scratch) == [("496",)]
    await wait_until(lambda: any(e.type == DRILL_FAILED for e in events))
    (event,) = [e for e in events if e.type in (DRILL_PASSED, DRILL_FAILED)]
    assert event.data["drill"]["error_msg"] == drill["error_msg"]
    shown = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
    assert shown["last_drill"]["status"] == "failed"
    # A failed drill is no success for the metric.
    metadata = app.state.backup_api.metadata
    assert await metadata.read(drill_records.last_drill_success_by_database) == {}
    pg_server.execute("DROP EVENT TRIGGER tamper_items", scratch)
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


def _restore_waits_on_lock(server: Any, scratch: str) -> bool:
    rows = server.query(
        "SELECT COUNT(*) FROM information_schema.processlist "
        f"WHERE db = '{scratch}' AND state LIKE 'Waiting for table metadata lock%'",
        scratch,
    )
    return rows == [("1",)]


async def test_drill_of_a_target_tampered_with_fails_naming_the_table_mysql(
    mysql_server: Any, app: FastAPI, alice: Api
) -> None:
    """MySQL has no event triggers and the dump creates each table's triggers after its
    rows: another session deletes rows instead, while the restore is held before its
    second table (the dump's ``DROP TABLE notes`` waits on that session's read lock)."""
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(mysql_server, source)
    mysql_server.create_database(scratch)
    mysql_server.execute("CREATE TABLE notes (id INT)", scratch)
    events = collect(app)
    database = await alice.add_database(mysql_server, source)
    target = await add_scratch(alice, mysql_server, scratch)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    with table_shared_lock(mysql_server, scratch, "notes"):
        started = await start_drill(alice, backup["id"], target["id"])
        await wait_until(lambda: _restore_waits_on_lock(mysql_server, scratch))
        mysql_server.execute("DELETE FROM items WHERE id % 100 = 0", scratch)
    drill = await wait_drill(alice, started["id"])
    assert drill["status"] == "failed"
    assert drill["error_msg"] == (
        "restauration d'essai non conforme: table items: 501 lignes attendues, 496 restaurées"
    )
    assert drill["tables"] == [
        {"name": "items", "expected_rows": 501, "restored_rows": 496},
        {"name": "notes", "expected_rows": 2, "restored_rows": 2},
    ]
    await wait_until(lambda: any(e.type == DRILL_FAILED for e in events))
    mysql_server.drop_database(source)
    mysql_server.drop_database(scratch)


@pytest.mark.parametrize("engine", ENGINES)
async def test_drill_of_an_altered_archive_fails_before_touching_the_target(
    engine: str, request: pytest.FixtureRequest, app: FastAPI, alice: Api
) -> None:
    server = server_for(request, engine)
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(server, source)
    server.create_database(scratch)
    server.execute("CREATE TABLE keep (v INT); INSERT INTO keep VALUES (7);", scratch)
    events = collect(app)
    database = await alice.add_database(server, source)
    target = await add_scratch(alice, server, scratch)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    path = Path(backup["filepath"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    drill = await wait_drill(alice, (await start_drill(alice, backup["id"], target["id"]))["id"])
    assert drill["status"] == "failed"
    assert "somme de contrôle SHA-256 ne correspond pas" in drill["error_msg"]
    assert drill["tables"] == []
    # Untouched: its own table still there, none of the dump's.
    assert server.query("SELECT v FROM keep", scratch) == [("7",)]
    tables_sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = " + (
        "'public'" if engine == "postgresql" else "DATABASE()"
    )
    assert server.query(tables_sql, scratch) == [("keep",)]
    await wait_until(lambda: any(e.type == DRILL_FAILED for e in events))
    server.drop_database(source)
    server.drop_database(scratch)


async def test_targets_a_drill_refuses(pg_server: Any, alice: Api, bob: Api) -> None:
    source, scratch, other = unique_name("src"), unique_name("scr"), unique_name("oth")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    pg_server.create_database(other)
    database = await alice.add_database(pg_server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    plain = await alice.add_database(pg_server, other)

    # Marking needs the confirmation, and never a backed-up database: the source itself,
    # nor the same server and database under another host name.
    body = {
        "name": "essai",
        "type": "postgresql",
        "host": pg_server.host,
        "port": str(pg_server.port),
        "username": pg_server.user,
        "password": pg_server.password,
        "db_name": scratch,
        "scratch": True,
    }
    response = await alice.post("/api/databases", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Données invalides: confirm: requis")
    same = {**body, "db_name": source, "host": "localhost", "confirm": source}
    response = await alice.post("/api/databases", json=same)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("Données invalides: scratch: cette base est")
    response = await alice.put(
        f"/api/databases/{database['id']}", json={"scratch": True, "confirm": source}
    )
    assert response.status_code == 400
    assert "scratch: cette base est" in response.json()["error"]
    target = await add_scratch(alice, pg_server, scratch)

    drill_url = f"/api/databases/{database['id']}/drill"
    # A database that is not a scratch one.
    response = await alice.put(
        drill_url, json={"target_database_id": plain["id"], "cron": "@daily"}
    )
    assert response.status_code == 409
    assert response.json()["error"].startswith("La base cible doit être une base d'essai")
    response = await alice.post(
        f"/api/backups/{backup['id']}/drill", json={"target_database_id": plain["id"]}
    )
    assert response.status_code == 409
    # A scratch database is never a source.
    response = await alice.put(
        f"/api/databases/{target['id']}/drill",
        json={"target_database_id": target["id"], "cron": "@daily"},
    )
    assert response.status_code == 409
    assert response.json()["error"].startswith("Une base d'essai (scratch) ne peut pas")
    # Someone else's scratch database.
    bobs = await add_scratch(bob, pg_server, other)
    response = await alice.put(drill_url, json={"target_database_id": bobs["id"], "cron": "@daily"})
    assert response.status_code == 403
    response = await alice.post(
        f"/api/backups/{backup['id']}/drill", json={"target_database_id": bobs["id"]}
    )
    assert response.status_code == 403
    # No target and no drill set.
    response = await alice.post(f"/api/backups/{backup['id']}/drill")
    assert response.status_code == 409
    assert response.json()["error"].startswith("Aucune restauration d'essai planifiée")
    # A database backed up later is the scratch one's server and name: refused then.
    twin = await alice.add_database(pg_server, scratch, name="jumelle")
    await alice.wait_backup((await alice.start_backup(twin["id"]))["id"])
    response = await alice.put(
        drill_url, json={"target_database_id": target["id"], "cron": "@daily"}
    )
    assert response.status_code == 409
    assert response.json()["error"].startswith("La base cible est, sur le même serveur")
    response = await alice.post(
        f"/api/backups/{backup['id']}/drill", json={"target_database_id": target["id"]}
    )
    assert response.status_code == 409
    assert (await alice.get("/api/drills")).json() == {"drills": []}
    for name in (source, scratch, other):
        pg_server.drop_database(name)


async def test_recipients_encrypted_database_cannot_be_drilled(pg_server: Any, alice: Api) -> None:
    from backup_api.archiving.agecrypt import generate_identity

    source, scratch = unique_name("src"), unique_name("scr")
    pg_server.create_database(source)
    pg_server.create_database(scratch)
    _, recipient = generate_identity()
    database = await alice.add_database(pg_server, source, encryption={"recipients": [recipient]})
    target = await add_scratch(alice, pg_server, scratch)
    response = await alice.put(
        f"/api/databases/{database['id']}/drill",
        json={"target_database_id": target["id"], "cron": "@weekly"},
    )
    assert response.status_code == 400
    assert "chiffrées pour des destinataires age" in response.json()["error"]
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


async def test_a_running_drill_holds_its_target_and_its_backup(
    pg_server: Any, app: FastAPI, alice: Api
) -> None:
    """While a drill restores (held here by a lock its DROP TABLE waits on), no other job
    takes its target, and its backup cannot be deleted."""
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    pg_server.execute("CREATE TABLE items (id int)", scratch)
    database = await alice.add_database(pg_server, source)
    target = await add_scratch(alice, pg_server, scratch)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    with table_shared_lock(pg_server, scratch, "items"):
        drill = await start_drill(alice, backup["id"], target["id"])
        response = await alice.post(
            f"/api/backups/{backup['id']}/drill", json={"target_database_id": target["id"]}
        )
        assert response.status_code == 409
        assert response.json()["error"] == (
            "Une sauvegarde, restauration ou restauration d'essai de la base cible est en cours"
        )
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore", json={"database_id": target["id"]}
        )
        assert response.status_code == 409
        response = await alice.delete(f"/api/backups/{backup['id']}")
        assert response.status_code == 409
        assert (await alice.get(f"/api/drills/{drill['id']}")).json()["drill"]["status"] == (
            "pending"
        )
    drill = await wait_drill(alice, drill["id"])
    assert drill["status"] == "passed", drill["error_msg"]
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


async def test_drills_left_by_a_stop_are_run_or_failed_at_the_next_start(
    pg_server: Any, settings_factory: Callable[..., Settings]
) -> None:
    """A drill never started runs at the next start; one cut short is failed, saying so."""
    from sqlalchemy import insert

    from backup_api.models import Drill, utcnow

    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    settings = settings_factory()
    async with running_app(settings) as (app, client):
        alice = await Api(client).signup()
        database = await alice.add_database(pg_server, source)
        target = await add_scratch(alice, pg_server, scratch)
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        now = utcnow()
        row = {
            "backup_id": backup["id"],
            "source_database_id": database["id"],
            "target_database_id": target["id"],
            "status": "pending",
            "user_id": alice.user["id"],
            "created_at": now,
            "updated_at": now,
        }
        # What a stop leaves: one queued, one that had started.
        table = Drill.__table__  # type: ignore[attr-defined]
        await metadata_sql(app, insert(table).values(**row))
        await metadata_sql(app, insert(table).values(**row, started_at=now))
        token = alice.token
    async with running_app(settings) as (app, client):
        alice = Api(client)
        alice.token = token
        drills = (await alice.get("/api/drills")).json()["drills"]
        queued, cut_short = sorted(drills, key=lambda d: d["id"])
        assert cut_short["status"] == "failed"
        assert cut_short["error_msg"] == ("le serveur s'est arrêté pendant la restauration d'essai")
        drill = await wait_drill(alice, queued["id"])
        assert drill["status"] == "passed", drill["error_msg"]
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


async def test_a_passphrase_encrypted_backup_is_drilled(
    pg_server: Any, settings_factory: Callable[..., Settings]
) -> None:
    """The service holds the passphrase: such backups are drilled like plain ones."""
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    # A cheap scrypt work factor: the drill opens the file once.
    async with running_app(settings_factory(age_scrypt_log_n=10)) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(
            pg_server, source, encryption={"passphrase": "une phrase secrète assez longue"}
        )
        target = await add_scratch(alice, pg_server, scratch)
        response = await alice.put(
            f"/api/databases/{database['id']}/drill",
            json={"target_database_id": target["id"], "cron": "@weekly"},
        )
        assert response.status_code == 200, response.text
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        assert backup["encrypted"] is True
        assert backup["table_rows"] == EXPECTED["postgresql"]
        # No target named: the drill's.
        drill = await wait_drill(alice, (await start_drill(alice, backup["id"], None))["id"])
        assert drill["status"] == "passed", drill["error_msg"]
        assert drill["target_database_id"] == target["id"]
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


async def test_a_target_backed_up_since_the_drill_was_asked_is_left_untouched(
    pg_server: Any, app: FastAPI, alice: Api
) -> None:
    """The job checks the target again: a database backed up meanwhile that is the same
    server and database fails the drill before anything is restored."""
    from sqlalchemy import insert

    from backup_api.jobs.queue import JobKind
    from backup_api.models import Drill, utcnow

    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    pg_server.execute("CREATE TABLE keep (v int); INSERT INTO keep VALUES (7);", scratch)
    database = await alice.add_database(pg_server, source)
    target = await add_scratch(alice, pg_server, scratch)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    twin = await alice.add_database(pg_server, scratch, name="jumelle", host="localhost")
    await alice.wait_backup((await alice.start_backup(twin["id"]))["id"])
    now = utcnow()
    table = Drill.__table__  # type: ignore[attr-defined]
    [row] = await metadata_sql(
        app,
        insert(table)
        .values(
            backup_id=backup["id"],
            source_database_id=database["id"],
            target_database_id=target["id"],
            status="pending",
            user_id=alice.user["id"],
            created_at=now,
            updated_at=now,
        )
        .returning(table.c.id),
    )
    app.state.backup_api.queue.submit(JobKind.DRILL, row.id, target["id"], alice.user["id"])
    drill = await wait_drill(alice, row.id)
    assert drill["status"] == "failed"
    assert drill["error_msg"].startswith("la base cible est, sur le même serveur")
    assert pg_server.query("SELECT v FROM keep", scratch) == [("7",)]
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)


async def test_deleting_an_account_removes_its_drills(
    pg_server: Any, client: httpx.AsyncClient
) -> None:
    admin = await Api(client).signup("root@example.com", role="admin")
    alice = await Api(client).signup("alice@example.com")
    source, scratch = unique_name("drill_src"), unique_name("drill_scr")
    create_filled(pg_server, source)
    pg_server.create_database(scratch)
    database = await alice.add_database(pg_server, source)
    target = await add_scratch(alice, pg_server, scratch)
    response = await alice.put(
        f"/api/databases/{database['id']}/drill",
        json={"target_database_id": target["id"], "cron": "@weekly"},
    )
    assert response.status_code == 200, response.text
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    drill = await wait_drill(alice, (await start_drill(alice, backup["id"], None))["id"])
    assert drill["status"] == "passed", drill["error_msg"]
    assert [d["id"] for d in (await admin.get("/api/drills")).json()["drills"]] == [drill["id"]]
    assert (await admin.delete(f"/api/users/{alice.user['id']}")).status_code == 200
    assert (await admin.get("/api/drills")).json() == {"drills": []}
    assert (await admin.get(f"/api/drills/{drill['id']}")).status_code == 404
    pg_server.drop_database(source)
    pg_server.drop_database(scratch)
