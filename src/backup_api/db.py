"""The metadata database: its engine, and ``Metadata``, the one way to reach it.

Everything that reads or writes the metadata database (routes, services, jobs, recovery,
the CLI) hands ``Metadata`` a function of a synchronous SQLAlchemy ``Connection``, run as
one transaction. The functions it is given call the repositories
(``backup_api.repositories``), plain functions of that connection. Work that waits on
something else (a database server's answer, a password hash, a running job) happens
between units, never inside one, so no transaction stays open across it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event, make_url, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backup_api.config import Settings

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while a job writes its status; foreign keys enforce
    # "deleting a database sets its backups' database_id to null".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    kwargs: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        sqlite_path = settings.sqlite_path
        if sqlite_path is not None:
            Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            # Password hashes and encrypted credentials live there: owner-only from birth.
            os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT, 0o600))
        kwargs.pop("pool_pre_ping")
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _select_one(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))


#: How long ``Metadata.answers`` waits for the database.
PING_SECONDS = 2.0


class Metadata:
    """Runs a function of a synchronous SQLAlchemy ``Connection`` as one transaction.

    Why a function of a synchronous connection rather than an ``AsyncSession``: through
    aiosqlite every statement, fetch, commit and connection reset is a round trip to a
    thread, a hundred microseconds of CPU each and more under concurrency, so a request of
    two statements paid for a dozen hops, more than all its other work. Here, on a SQLite
    file, the whole function runs in a single hop with the standard library's driver:
    writes on one thread (so they never wait on each other's lock: SQLite's busy handler
    sleeps 1 to 100 ms at a time), reads on another (WAL: they never wait for a write or a
    checkpoint's fsync). On other backends (asyncpg is natively asynchronous) the function
    runs through ``AsyncConnection.run_sync``.
    """

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._sync_engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        if settings.sqlite_path is not None:
            url = make_url(settings.database_url).set(drivername="sqlite")
            self._sync_engine = create_sync_engine(
                url, hide_parameters=True, connect_args={"check_same_thread": False}
            )
            event.listen(self._sync_engine, "connect", _sqlite_pragmas)
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-write")
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._exclusive = asyncio.Lock()

    async def write(self, work: Callable[[Connection], T], *, exclusive: bool = False) -> T:
        """``work(connection)`` in a transaction: committed if it returns, else rolled back.
        Once this returns, the change is committed: what must follow a commit (dropping a
        cached caller, submitting a job) comes after the ``await``.

        ``exclusive``: no other exclusive unit of this process runs meanwhile (for
        read-then-write units such as "pick a free file name, insert it"). On SQLite every
        write unit already runs alone on the one thread, so nothing waits for a lock there.
        """
        if self._sync_engine is None or self._writer is None:
            if exclusive:
                async with self._exclusive:
                    return await self._run_async(work)
            return await self._run_async(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run_sync, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` that only reads: it never queues behind a write."""
        if self._sync_engine is None or self._reader is None:
            return await self._run_async(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._run_sync, work)

    async def ping(self) -> None:
        """Raises unless the database answers (the health check's question)."""
        await self.read(_select_one)

    async def answers(self) -> bool:
        """Whether the database answers within ``PING_SECONDS``: after an unexpected
        error, tells an outage of the metadata database from a fault of the caller's."""
        try:
            async with asyncio.timeout(PING_SECONDS):
                await self.ping()
        except Exception:
            return False
        return True

    async def _run_async(self, work: Callable[[Connection], T]) -> T:
        async with self._engine.begin() as connection:
            return await connection.run_sync(work)

    def _run_sync(self, work: Callable[[Connection], T]) -> T:
        assert self._sync_engine is not None
        with self._sync_engine.begin() as connection:
            return work(connection)

    def close(self) -> None:
        for executor in (self._writer, self._reader):
            if executor is not None:
                executor.shutdown(wait=True)
        if self._sync_engine is not None:
            self._sync_engine.dispose()
