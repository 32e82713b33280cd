"""The async engine, the session factory and the per-request session dependency."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, event, make_url
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]
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


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def record_fields(record: object, columns: tuple[str, ...]) -> Mapping[Any, Any]:
    """A job record's columns by name, whether it is a Core row or an ORM object."""
    if isinstance(record, RowMapping):
        return record
    return {name: getattr(record, name) for name in columns}


_AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction is committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the callbacks registered with ``after_commit``."""
    await session.commit()
    callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        callback()


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction: committed once at the end, rolled back on any error."""
    async with factory() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            await session.rollback()
            raise


class TransactionRunner:
    """Runs a function of a synchronous SQLAlchemy ``Connection`` as one transaction.

    The hot routes (listing, reading and starting backups) and the jobs' status updates use
    it instead of an ``AsyncSession``. Through aiosqlite every statement, fetch, commit and
    connection reset is a round trip to a thread, about 100 µs of CPU each and more under
    concurrency, so a request of two statements paid for a dozen hops, more than all its
    other work. Here, on a SQLite file, the whole function runs in a single hop with the
    standard library's driver: writes on one thread (so they never wait on each other's
    lock: SQLite's busy handler sleeps 1 to 100 ms at a time), reads on another (WAL: they
    never wait for a write or a checkpoint's fsync). On other backends (asyncpg is natively
    asynchronous) the function runs through ``AsyncConnection.run_sync``.
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

    async def run(self, work: Callable[[Connection], T], *, exclusive: bool = False) -> T:
        """``work(connection)`` in a transaction: committed if it returns, else rolled back.

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
