"""The benchmark's clients of the service: one for the backups (with completion read from
the metadata database), a light HTTP/1.1 load generator, and the listing probe."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.support.servers import DbServer
from tests.support.servers.seaweedfs import SeaweedFSServer

from bench.measure import RssSampler, archive_processes, service_rss

PASSWORD = "bench-password-123"


def raise_for_status(response: httpx.Response) -> None:
    """httpx's, with the service's answer (its French reason) in the message."""
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )


@dataclass
class Api:
    url: str
    meta: Path  # the service's SQLite metadata, watched (read-only) for completions
    token: str = ""
    #: Each backup of ``backup`` followed by a client of its event stream (``--follow``).
    follow: bool = False
    #: The progress events those clients received.
    followed_events: int = 0
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self, email: str = "bench@example.com") -> None:
        body = {"email": email, "password": PASSWORD}
        self.client.post("/auth/register", json=body)
        self.token = self.client.post("/auth/login", json=body).json()["token"]

    def other_user(self, email: str) -> Api:
        """Another account of the same service (the latency load spreads its POSTs)."""
        other = Api(self.url, self.meta)
        other.login(email)
        return other

    def add_database(self, server: DbServer, name: str, **fields: Any) -> int:
        """Register database ``name`` of ``server``; ``fields`` are more of the database's
        fields (``storage_ids``, ``keep_local``)."""
        response = self.client.post(
            "/api/databases",
            headers=self.headers,
            json={
                "name": name,
                "type": server.kind,
                "host": server.host,
                "port": server.port,
                "username": server.user,
                "password": server.password,
                "db_name": name,
                **fields,
            },
        )
        raise_for_status(response)
        database_id: int = response.json()["database"]["id"]
        return database_id

    def add_storage(self, s3: SeaweedFSServer, bucket: str) -> int:
        """Register ``bucket`` of ``s3`` as a destination of backups."""
        response = self.client.post(
            "/api/storages",
            headers=self.headers,
            json={
                "name": "bench-s3",
                "type": "s3",
                "endpoint": s3.endpoint,
                "region": s3.region,
                "bucket": bucket,
                "prefix": "bench",
                "access_key_id": s3.access_key_id,
                "secret_access_key": s3.secret_access_key,
                "path_style": True,
            },
        )
        raise_for_status(response)
        storage_id: int = response.json()["storage"]["id"]
        return storage_id

    def start(self, database_id: int) -> int:
        response = self.client.post(f"/api/backups/database/{database_id}", headers=self.headers)
        raise_for_status(response)
        backup_id: int = response.json()["backup"]["id"]
        return backup_id

    def record(self, backup_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/backups/{backup_id}", headers=self.headers)
        backup: dict[str, Any] = response.json()["backup"]
        return backup

    def status(self, backup_id: int) -> str:
        status: str = self.record(backup_id)["status"]
        return status

    def wait(self, backup_id: int) -> dict[str, Any]:
        """Wait until the backup's record leaves ``pending``, then return it from the API.

        The end is seen in the metadata database itself, every 5 ms, read-only: the moment
        the status is committed is when any client's GET would see it. Polling the API that
        often would time the benchmark's own HTTP traffic (about 1 ms of CPU per request on
        each side, on the same cores as the backup) instead of the backup.
        """
        self._watch("backups", backup_id)
        backup = self.record(backup_id)
        if backup["status"] != "completed":
            raise RuntimeError(f"backup failed: {backup['error_msg']}")
        return backup

    def start_restore(self, backup_id: int, database_id: int) -> int:
        response = self.client.post(
            f"/api/backups/{backup_id}/restore",
            headers=self.headers,
            json={"database_id": database_id},
        )
        raise_for_status(response)
        restore_id: int = response.json()["restore"]["id"]
        return restore_id

    def wait_restore(self, restore_id: int) -> dict[str, Any]:
        """As :meth:`wait`, for a restore: its end read from the metadata database."""
        self._watch("restores", restore_id)
        response = self.client.get(f"/api/restores/{restore_id}", headers=self.headers)
        restore: dict[str, Any] = response.json()["restore"]
        if restore["status"] != "completed":
            raise RuntimeError(f"restore failed: {restore['error_msg']}")
        return restore

    def is_pending(self, table: str, record_id: int) -> bool:
        """Whether the record is still ``pending``, read in the metadata (read-only)."""
        uri = f"file:{self.meta}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as watcher:
            row = watcher.execute(
                f"SELECT status FROM {table} WHERE id = ?",
                (record_id,),
            ).fetchone()
        return row is None or row[0] == "pending"

    def _watch(self, table: str, record_id: int) -> None:
        """Until the record leaves ``pending``, read in the metadata every 5 ms (read-only)."""
        uri = f"file:{self.meta}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as watcher:
            while True:
                row = watcher.execute(
                    f"SELECT status FROM {table} WHERE id = ?",
                    (record_id,),
                ).fetchone()
                if row is not None and row[0] != "pending":
                    return
                time.sleep(0.005)

    def restore(self, backup_id: int, database_id: int, pid: int) -> tuple[float, int, int]:
        """One restore through the API: its wall time, the service's RSS before it and its
        peak during it (with the processes it runs for jobs)."""
        service = psutil.Process(pid)
        idle = service_rss(service, archive_processes(service))
        sampler = RssSampler(pid)
        sampler.start()
        began = time.perf_counter()
        self.wait_restore(self.start_restore(backup_id, database_id))
        elapsed = time.perf_counter() - began
        return elapsed, idle, sampler.stop()

    def backup(self, database_id: int, pid: int) -> tuple[float, dict[str, Any], int, int, int]:
        """One backup: its wall time, its record, the service's RSS before it, its peak
        during it (both with the processes it runs for backups), and the upload process's
        own peak (0 without one)."""
        service = psutil.Process(pid)
        idle = service_rss(service, archive_processes(service))
        sampler = RssSampler(pid)
        sampler.start()
        began = time.perf_counter()
        backup_id = self.start(database_id)
        follower = self._follower(backup_id) if self.follow else None
        backup = self.wait(backup_id)
        elapsed = time.perf_counter() - began
        peak = sampler.stop()
        if follower is not None:
            follower.join(timeout=60)  # the stream ends with its "done" event
        return elapsed, backup, idle, peak, sampler.upload_peak

    def _follower(self, backup_id: int) -> threading.Thread:
        """A client reading ``backup_id``'s event stream, as a page watching it would."""
        counts: dict[int, int] = {}

        def follow() -> None:
            asyncio.run(follow_events(self.url, self.headers, backup_id, counts))
            self.followed_events += counts.get(backup_id, 0)

        thread = threading.Thread(target=follow, name=f"follow-{backup_id}", daemon=True)
        thread.start()
        return thread


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: the load generator.

    httpx costs 1 to 3 ms of CPU per request; twenty closed-loop httpx clients on a
    2-core machine mostly measure their own queueing. This costs about 0.1 ms, so the
    latencies below are the server's.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host_port = url.split("//", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
            "Content-Length: 0\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def follow_events(
    url: str, headers: dict[str, str], backup_id: int, counts: dict[int, int]
) -> None:
    """Read ``GET /api/backups/{id}/events`` as ``curl -N`` would, until the stream ends
    or this is cancelled; ``counts[backup_id]``: the ``progress`` events received so far."""
    connection = RawHttpConnection(url, headers)
    reader, writer = await asyncio.open_connection(connection.host, connection.port)
    counts[backup_id] = 0
    try:
        writer.write(
            f"GET /api/backups/{backup_id}/events HTTP/1.1\r\nHost: {connection.host}\r\n"
            f"{connection.head}Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head[9:12] == b"200", head
        # Chunked, one event a chunk: the event's lines are whole between the sizes.
        while line := await reader.readline():
            if line.startswith(b"event: progress"):
                counts[backup_id] += 1
            elif line.startswith(b"event: done"):
                break
    finally:
        writer.close()


async def latency_under_load(
    users: list[tuple[Api, int]],
    seconds: float,
    budget: int,
    follower: Api | None = None,
    followed: Sequence[int] = (),
) -> tuple[dict[str, list[float]], int, int]:
    """20 concurrent clients, each sending its next request as soon as it has an answer,
    alternating listings and backup starts, for ``seconds``; with an event stream open
    (as ``follower``) on each of the ``followed`` backups meanwhile.

    Client ``i`` speaks as ``users[i % len(users)]`` (an account and its tiny database),
    and starts at most ``budget`` backups (its account's share of the per-user cap on
    pending jobs), then only lists: so that the POSTs time the accepting path, not the
    fast refusal. Returns the latencies by kind (``create``: answered 202, ``refused``:
    429), how many backups were accepted and how many progress events the streams
    received.
    """
    results: dict[str, list[float]] = {"list": [], "create": [], "refused": []}
    accepted = 0
    deadline = time.perf_counter() + seconds
    clients = 20
    per_user = max(1, clients // max(1, len(users)))
    share = max(1, budget // per_user)
    events: dict[int, int] = {}
    streams = [
        asyncio.create_task(follow_events(follower.url, follower.headers, backup_id, events))
        for backup_id in followed
        if follower is not None
    ]

    async def worker(first: int) -> None:
        nonlocal accepted
        api, tiny_db = users[first % len(users)]
        connection = RawHttpConnection(api.url, api.headers)
        started = 0
        try:
            index = first
            while time.perf_counter() < deadline:
                kind = "list" if index % 2 == 0 or started >= share else "create"
                index += 1
                began = time.perf_counter()
                if kind == "list":
                    status, body = await connection.request("GET", "/api/backups?limit=50")
                else:
                    started += 1
                    status, body = await connection.request(
                        "POST", f"/api/backups/database/{tiny_db}"
                    )
                elapsed = time.perf_counter() - began
                assert status in (200, 202, 429), body
                results["refused" if status == 429 else kind].append(elapsed)
                accepted += status == 202
        finally:
            await connection.close()

    try:
        await asyncio.gather(*(worker(first) for first in range(clients)))
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return results, accepted, sum(events.values())


async def get_load_while(api: Api, busy: Callable[[], bool]) -> list[float]:
    """Latencies of ``GET /api/backups`` from 20 concurrent clients, each sending its next
    request as soon as it has an answer, for as long as ``busy()`` says (checked between
    requests, from the metadata database: no HTTP of its own)."""
    samples: list[float] = []

    async def worker() -> None:
        connection = RawHttpConnection(api.url, api.headers)
        try:
            while busy():
                began = time.perf_counter()
                status, body = await connection.request("GET", "/api/backups?limit=50")
                samples.append(time.perf_counter() - began)
                assert status == 200, body
        finally:
            await connection.close()

    await asyncio.gather(*(worker() for _ in range(20)))
    return samples


def seed_backup_records(meta: Path, count: int) -> None:
    with sqlite3.connect(meta) as connection:
        user_id = connection.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
        connection.executemany(
            "INSERT INTO backups (filename, filepath, size, status, db_type, db_name, user_id, "
            "created_at, updated_at) VALUES (?, ?, ?, 'completed', 'postgresql', 'seed', ?, ?, ?)",
            [
                (
                    f"seed_{i}.zip",
                    f"db/backups/postgresql/seed_{i}.zip",
                    1000 + i,
                    user_id,
                    now,
                    now,
                )
                for i in range(count)
            ],
        )


def listing_latency(api: Api, count: int, total: int) -> list[float]:
    samples = []
    for index in range(count):
        offset = (index * 997) % max(1, total - 100)
        began = time.perf_counter()
        response = api.client.get(f"/api/backups?limit=100&offset={offset}", headers=api.headers)
        samples.append(time.perf_counter() - began)
        assert response.status_code == 200
    return samples
