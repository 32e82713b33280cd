"""The event streams of running jobs, read as a browser or ``curl -N`` reads them: over a
real socket from the app served by uvicorn, while a real dump is held by a table lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from backup_api.main import create_app
from tests.support.apphelpers import Api, make_settings, unique_name
from tests.support.locks import table_locked, wait_until
from tests.support.sample_data import create_bulky, create_filled
from tests.support.serverproc import free_port

#: The ``bulk`` table of ``create_bulky``: 2 MiB of bytes, dumped as hexadecimal text.
BULK_DUMPED = 4 * 1024 * 1024


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[uvicorn.Server, httpx.AsyncClient]]:
    """The app behind uvicorn on a free port of this machine, in this event loop."""
    port = free_port()
    settings = make_settings(tmp_path, progress_interval_seconds=0.2)
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert not serving.done(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield server, client
    finally:
        server.should_exit = True
        await serving


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) for each event of a stream of Server-Sent Events."""
    name, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


async def test_a_backups_stream_sends_its_progress_then_the_final_record(
    tmp_path: Path, mysql_server: Any
) -> None:
    """One stream, opened while the dump is held (``bulk`` written, ``items`` locked):
    ``progress`` events while it waits, the lock released from the stream's reader, then
    the final record as ``done``, and the stream ends by itself."""
    source = unique_name("sse")
    create_bulky(mysql_server, source)
    received: list[tuple[str, dict[str, Any]]] = []
    async with served(tmp_path) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(mysql_server, source)
        with contextlib.ExitStack() as lock:
            lock.enter_context(table_locked(mysql_server, source, "items"))
            backup = await alice.start_backup(database["id"])
            url = f"/api/backups/{backup['id']}/events"
            async with client.stream("GET", url, headers=alice.headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for name, data in events(response):
                    received.append((name, data))
                    progress = data["backup"]["progress"]
                    if progress is not None and progress["bytes_read"] >= BULK_DUMPED:
                        lock.close()  # the dump goes on
        record = (await alice.get(f"/api/backups/{backup['id']}")).json()
    names = [name for name, _ in received]
    assert names[-1] == "done"
    assert set(names[:-1]) == {"progress"}
    progress_events = [data["backup"] for name, data in received if name == "progress"]
    assert all(backup["status"] == "pending" for backup in progress_events)
    held = [b for b in progress_events if b["progress"] and b["progress"]["bytes_read"]]
    assert held
    assert held[0]["phase"] == "dumping"
    # The last event is the final record, exactly as GET answers it.
    assert received[-1] == ("done", record)
    assert record["backup"]["status"] == "completed", record
    assert (record["backup"]["phase"], record["backup"]["progress"]) == (None, None)
    mysql_server.drop_database(source)


async def test_a_client_that_goes_away_leaves_nothing_behind(
    tmp_path: Path, mysql_server: Any
) -> None:
    """Streams closed by their clients while the job still runs: their coroutines end
    (the app's tasks come back to what they were), and the job goes on."""
    source = unique_name("ssegone")
    create_filled(mysql_server, source)
    async with served(tmp_path) as (_, client):
        alice = await Api(client).signup()
        database = await alice.add_database(mysql_server, source)
        with table_locked(mysql_server, source, "notes"):
            backup = await alice.start_backup(database["id"])
            url = f"/api/backups/{backup['id']}/events"

            async def estimated() -> bool:
                record = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
                progress = record["progress"]
                return progress is not None and progress["estimated_total_bytes"] is not None

            # Held, and done estimating: the job's own tasks no longer change.
            deadline = time.monotonic() + 30
            while not await estimated():
                assert time.monotonic() < deadline, "the dump was not held in time"
                await asyncio.sleep(0.02)
            baseline = len(asyncio.all_tasks())

            async def one_event() -> None:
                async with (
                    httpx.AsyncClient(base_url=str(client.base_url)) as other,
                    other.stream("GET", url, headers=alice.headers) as response,
                ):
                    async for name, _data in events(response):
                        assert name == "progress"
                        break

            await asyncio.gather(one_event(), one_event(), one_event())
            # sse-starlette's one watcher of the server's shutdown starts with the first
            # stream and lives as long as the loop: it is no stream's.
            await wait_until(lambda: len(asyncio.all_tasks()) <= baseline + 1, timeout=30)
            record = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
            assert record["status"] == "pending"
        final = await alice.wait_backup(backup["id"])
        assert final["status"] == "completed", final["error_msg"]
    mysql_server.drop_database(source)


async def test_a_finished_jobs_stream_is_its_final_record_alone(
    tmp_path: Path, mysql_server: Any
) -> None:
    source = unique_name("ssedone")
    create_filled(mysql_server, source)
    async with served(tmp_path) as (_, client):
        alice = await Api(client).signup()
        bob = await Api(client).signup()
        database = await alice.add_database(mysql_server, source)
        backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
        url = f"/api/backups/{backup['id']}/events"
        async with client.stream("GET", url, headers=alice.headers) as response:
            received = [item async for item in events(response)]
        assert received == [("done", {"backup": backup})]
        # The GET's rules: a token, the owner's (or an admin's), a record that exists.
        assert (await client.get(url)).status_code == 401
        refused = await bob.get(url)
        assert (refused.status_code, refused.json()) == (403, {"error": "Accès non autorisé"})
        missing = await alice.get(f"/api/backups/{backup['id'] + 1000}/events")
        assert (missing.status_code, missing.json()) == (404, {"error": "Sauvegarde introuvable"})
        assert (await alice.get("/api/restores/999/events")).status_code == 404
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        url = f"/api/restores/{restore['id']}/events"
        async with client.stream("GET", url, headers=alice.headers) as response:
            received = [item async for item in events(response)]
        assert received == [("done", {"restore": restore})]
        refused = await bob.get(url)
        assert (refused.status_code, refused.json()) == (403, {"error": "Accès non autorisé"})
    mysql_server.drop_database(source)


async def test_a_stopping_server_ends_its_open_streams(tmp_path: Path, mysql_server: Any) -> None:
    """A stream following a held dump does not keep the server from stopping: it ends,
    and so does the server."""
    source = unique_name("ssestop")
    create_filled(mysql_server, source)
    with table_locked(mysql_server, source, "notes"):
        async with served(tmp_path) as (server, client):
            alice = await Api(client).signup()
            database = await alice.add_database(mysql_server, source)
            backup = await alice.start_backup(database["id"])
            url = f"/api/backups/{backup['id']}/events"
            received = []
            # The server closes the stream's connection as it stops (a client reconnects).
            with contextlib.suppress(httpx.RemoteProtocolError):
                async with client.stream("GET", url, headers=alice.headers) as response:
                    async for name, _data in events(response):
                        received.append(name)
                        server.should_exit = True
            assert received[0] == "progress"
        # Here ``served`` has seen the server's task end.
    mysql_server.drop_database(source)
