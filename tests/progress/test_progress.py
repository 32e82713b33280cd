"""Live progress of running jobs: the record's ``phase`` and ``progress`` while a real dump
or restore is held by a table lock, and the dump's size as the real servers estimate it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

from backup_api.dumpers.registry import get_dumper
from backup_api.jobs.connection import connection_for
from backup_api.repositories import databases
from backup_api.state import AppState
from tests.support.apphelpers import Api, unique_name
from tests.support.locks import table_locked, table_shared_lock
from tests.support.sample_data import create_bulky, create_filled

#: The ``bulk`` table of ``create_bulky``: 2 MiB of bytes, dumped as hexadecimal text.
BULK_DUMPED = 4 * 1024 * 1024
PROGRESS_FIELDS = {
    "bytes_read",
    "bytes_written",
    "bytes_per_second",
    "estimated_total_bytes",
    "eta_seconds",
}


def server_for(request: pytest.FixtureRequest, engine: str) -> Any:
    return request.getfixturevalue("pg_server" if engine == "postgresql" else "mysql_server")


async def poll(
    read: Callable[[], Awaitable[dict[str, Any]]],
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Read until ``until`` holds of the reading (a generous deadline, never a timing)."""
    deadline = time.monotonic() + timeout
    while not until(reading := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in time: {reading}")
        await asyncio.sleep(0.02)
    return reading


def _bytes_read(record: dict[str, Any]) -> int:
    progress = record["progress"]
    return 0 if progress is None else int(progress["bytes_read"])


async def test_progress_advances_while_a_dump_is_held_by_a_lock(
    mysql_server: Any, alice: Api
) -> None:
    """mysqldump writes ``bulk`` whole, then waits on ``items`` (locked): the record shows
    the bytes read and written so far while it waits; the final record has no progress."""
    source = unique_name("progress")
    create_bulky(mysql_server, source)
    database = await alice.add_database(mysql_server, source)
    seen: list[dict[str, Any]] = []

    async def read() -> dict[str, Any]:
        record: dict[str, Any] = (await alice.get(f"/api/backups/{backup_id}")).json()["backup"]
        seen.append(record)
        return record

    with table_locked(mysql_server, source, "items"):
        backup = await alice.start_backup(database["id"])
        backup_id = backup["id"]
        assert (backup["phase"], backup["progress"]) == ("queued", None)
        held = await poll(read, lambda r: _bytes_read(r) >= BULK_DUMPED)
        assert held["status"] == "pending"
        assert held["phase"] == "dumping"
        assert held["started_at"] is not None
        progress = held["progress"]
        assert set(progress) == PROGRESS_FIELDS
        # Compressed as it is read: part of the archive is already written.
        held = await poll(read, lambda r: r["progress"]["bytes_written"] > 0)
        assert held["progress"]["bytes_written"] < held["progress"]["bytes_read"]
        # Held: the count stays where the dump stopped.
        stalled = _bytes_read(held)
        assert _bytes_read(await read()) == stalled
        listed = (await alice.get("/api/backups")).json()["backups"]
        mine = [b for b in listed if b["id"] == backup_id]
        assert [(b["phase"], _bytes_read(b)) for b in mine] == [("dumping", stalled)]
    final = await alice.wait_backup(backup_id)
    assert final["status"] == "completed", final["error_msg"]
    assert (final["phase"], final["progress"]) == (None, None)
    # The counts only grew, from nothing to the bulk while held, and the dump went on.
    counts = [_bytes_read(r) for r in seen if r["status"] == "pending"]
    assert counts == sorted(counts)
    assert stalled < final["dump_size"]
    mysql_server.drop_database(source)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_the_server_estimates_the_dump_within_a_factor_of_two(
    engine: str, request: pytest.FixtureRequest, app: FastAPI, alice: Api
) -> None:
    """The estimate a first backup gets, asked of the server as the job asks it, is within
    a factor of two of the dump the backup then makes."""
    server = server_for(request, engine)
    source = unique_name("estimate")
    create_filled(server, source)
    registered = await alice.add_database(server, source)
    state: AppState = app.state.backup_api
    database = await state.metadata.read(lambda c: databases.get(c, registered["id"]))
    assert database is not None
    conn = await connection_for(state.settings, state.keys, database, owner_is_admin=False)
    dumper = get_dumper(engine, state.settings)
    estimate = await state.server_probe.dump_estimate(dumper, conn, label="estimate-test")
    backup = await alice.wait_backup((await alice.start_backup(registered["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    assert estimate is not None
    assert backup["dump_size"] / 2 <= estimate <= backup["dump_size"] * 2, (
        estimate,
        backup["dump_size"],
    )
    server.drop_database(source)


async def test_a_held_backup_shows_the_servers_estimate_then_learns_from_it(
    mysql_server: Any, alice: Api
) -> None:
    """While a dump of the sample database waits on a lock, its record carries the server's
    estimate; the next backup of the database expects the size of the previous dump."""
    source = unique_name("learned")
    create_filled(mysql_server, source)
    database = await alice.add_database(mysql_server, source)

    async def held_estimate() -> tuple[dict[str, Any], int]:
        with table_locked(mysql_server, source, "notes"):
            backup = await alice.start_backup(database["id"])

            async def read() -> dict[str, Any]:
                response = await alice.get(f"/api/backups/{backup['id']}")
                record: dict[str, Any] = response.json()["backup"]
                return record

            held = await poll(
                read,
                lambda r: (
                    r["progress"] is not None and r["progress"]["estimated_total_bytes"] is not None
                ),
            )
            assert held["phase"] == "dumping"
        final = await alice.wait_backup(backup["id"])
        assert final["status"] == "completed", final["error_msg"]
        return final, held["progress"]["estimated_total_bytes"]

    first, estimated = await held_estimate()
    assert first["dump_size"] / 2 <= estimated <= first["dump_size"] * 2
    second, learned = await held_estimate()
    assert learned == first["dump_size"]
    assert second["dump_size"] == first["dump_size"]
    mysql_server.drop_database(source)


async def test_a_held_restore_shows_its_phase_and_progress(mysql_server: Any, alice: Api) -> None:
    """The restore waits to drop ``zz_blocker`` (restored last, held by a shared lock)
    after the other tables: ``restoring``, with the SQL handed to the client so far
    against the backup's dump size."""
    source = unique_name("restoring")
    create_filled(mysql_server, source)
    mysql_server.execute("CREATE TABLE zz_blocker (id int);", source)
    database = await alice.add_database(mysql_server, source)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    with table_shared_lock(mysql_server, source, "zz_blocker"):
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        assert response.status_code == 202, response.text
        created = response.json()["restore"]
        assert (created["phase"], created["progress"]) == ("queued", None)

        async def read() -> dict[str, Any]:
            response = await alice.get(f"/api/restores/{created['id']}")
            record: dict[str, Any] = response.json()["restore"]
            return record

        held = await poll(
            read, lambda r: r["progress"] is not None and r["progress"]["bytes_written"] > 0
        )
        assert held["status"] == "pending"
        assert held["phase"] == "restoring"
        progress = held["progress"]
        assert set(progress) == PROGRESS_FIELDS
        assert progress["estimated_total_bytes"] == backup["dump_size"]
        assert 0 < progress["bytes_written"] <= backup["dump_size"]
        assert 0 < progress["bytes_read"] <= backup["size"]
        listed = (await alice.get("/api/restores")).json()["restores"]
        assert [r["phase"] for r in listed if r["id"] == created["id"]] == ["restoring"]
    final = await alice.wait_restore(created["id"])
    assert final["status"] == "completed", final["error_msg"]
    assert (final["phase"], final["progress"]) == (None, None)
    mysql_server.drop_database(source)
