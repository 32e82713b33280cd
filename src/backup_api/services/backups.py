"""Backups: creation (then the runner takes over), listing, download, verification, deletion."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Connection, Row, RowMapping, Select, bindparam, func, insert, or_, select
from sqlmodel import col
from sqlmodel import select as sqlmodel_select
from sqlmodel.ext.asyncio.session import AsyncSession

from backup_api.archiver import ArchiverLauncher, VerifyOptions, verify_in_process
from backup_api.config import Settings
from backup_api.db import TransactionRunner, record_fields
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import (
    Conflict,
    NotFound,
    UnsupportedDatabaseType,
)
from backup_api.jobs import storage_key
from backup_api.models import (
    Backup,
    BackupPublic,
    BackupTrigger,
    Database,
    JobStatus,
    Restore,
    duration_seconds,
    utcnow,
)
from backup_api.principals import Principal, ensure_owner
from backup_api.runner import CancelReason, JobKind, Runner
from backup_api.services.admission import (
    ensure_disk_reserve,
    ensure_job_slot,
    ensure_within_quota,
)
from backup_api.storage.base import Storage

MAX_STEM = 80


def safe_stem(db_name: str) -> str:
    """``db_name`` reduced to a file name that cannot leave its directory."""
    normalized = unicodedata.normalize("NFKD", db_name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", normalized).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)[:MAX_STEM].strip("._-")
    return stem or "database"


_BACKUPS = Backup.__table__  # type: ignore[attr-defined]
_DATABASES = Database.__table__  # type: ignore[attr-defined]
_COLUMNS = tuple(_BACKUPS.columns.keys())


def to_public(backup: Backup | RowMapping) -> BackupPublic:
    """The public shape of a record, from the ORM object or a Core row alike."""
    fields = record_fields(backup, _COLUMNS)
    # The record is ours and already valid: construct without re-validating (hot path).
    return BackupPublic.model_construct(
        id=fields["id"],
        filename=fields["filename"],
        filepath=fields["filepath"],
        size=fields["size"],
        status=JobStatus(fields["status"]),
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
        user_id=fields["user_id"],
        database_id=fields["database_id"],
        error_msg=fields["error_msg"],
        checksum=fields["checksum"],
        db_type=fields["db_type"],
        dump_size=fields["dump_size"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        duration_seconds=duration_seconds(fields["started_at"], fields["finished_at"]),
        database_name=fields["database_name"],
        db_name=fields["db_name"],
        db_host=fields["db_host"],
        db_port=fields["db_port"],
        dump_tool_version=fields["dump_tool_version"],
        pinned=bool(fields["pinned"]),
        trigger=BackupTrigger(fields["trigger"]),
    )


# The hot routes below run as one synchronous unit each (``TransactionRunner``): the
# ownership checks, the queries and the insert happen in a single trip to the database.
# Their statements are built once, with bound parameters: building a select per request
# (and its cache key) cost more than running it.


def _listing(*, own: bool, of_database: bool) -> Select[Any]:
    query = select(_BACKUPS).order_by(_BACKUPS.c.id.desc())
    if own:
        query = query.where(_BACKUPS.c.user_id == bindparam("user_id"))
    if of_database:
        query = query.where(_BACKUPS.c.database_id == bindparam("database_id"))
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


_BY_ID = {
    table: select(table).where(table.c.id == bindparam("row_id"))
    for table in (_BACKUPS, _DATABASES)
}
_LISTINGS = {
    (own, of_database): _listing(own=own, of_database=of_database)
    for own in (False, True)
    for of_database in (False, True)
}
_NAMES_TAKEN = select(_BACKUPS.c.filename).where(
    _BACKUPS.c.db_type == bindparam("db_type"),
    _BACKUPS.c.filename.startswith(bindparam("stem")),
)
_INSERT = insert(_BACKUPS).returning(*_BACKUPS.c)


def _owned(connection: Connection, table: Any, row_id: int, user: Principal) -> Row[Any]:
    row = connection.execute(_BY_ID[table], {"row_id": row_id}).first()
    if row is None:
        raise NotFound(
            "Sauvegarde introuvable" if table is _BACKUPS else "Base de données introuvable"
        )
    ensure_owner(user, row.user_id)
    return row


def _owned_row(connection: Connection, table: Any, row_id: int, user: Principal) -> RowMapping:
    return _owned(connection, table, row_id, user)._mapping


async def get_backup_json(
    *, transactions: TransactionRunner, user: Principal, backup_id: int
) -> bytes:
    """The document ``{"backup": {...}}``: what clients poll while a backup runs."""

    def work(connection: Connection) -> bytes:
        return (
            b'{"backup":'
            + _rendered_rows.render(_owned(connection, _BACKUPS, backup_id, user))
            + b"}"
        )

    return await transactions.read(work)


class RenderedRows:
    """The JSON of backup rows, rendered once per state of each row.

    Listings are what clients poll, and rendering a row (twenty fields, four timestamps)
    cost more than reading it. The key is the row's whole content, so any change to a
    record (status, size, timestamps) is a new entry, never a stale one.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._fragments: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def render(self, row: Row[Any]) -> bytes:
        key = tuple(row)
        fragment = self._fragments.get(key)
        if fragment is None:
            fragment = _SERIALIZER.to_json(to_public(row._mapping))
            self._fragments[key] = fragment
            if len(self._fragments) > self._size:
                self._fragments.popitem(last=False)
        return fragment


_SERIALIZER = BackupPublic.__pydantic_serializer__
# Used from one thread at a time: SQLite's reader thread, or the event loop otherwise.
_rendered_rows = RenderedRows()


async def list_backups_json(
    *,
    transactions: TransactionRunner,
    user: Principal,
    limit: int,
    offset: int,
    database_id: int | None = None,
) -> bytes:
    """The listing as the JSON document ``{"backups": [...]}``, newest first."""
    query = _LISTINGS[(not user.is_admin, database_id is not None)]
    parameters = {
        "user_id": user.id,
        "database_id": database_id,
        "limit": limit,
        "offset": offset,
    }

    def work(connection: Connection) -> bytes:
        if database_id is not None:
            _owned_row(connection, _DATABASES, database_id, user)
        rows = connection.execute(query, parameters)
        return b'{"backups":[' + b",".join(map(_rendered_rows.render, rows)) + b"]}"

    return await transactions.read(work)


def _free_filename(connection: Connection, db_type: str, stem: str) -> str:
    taken = set(connection.execute(_NAMES_TAKEN, {"db_type": db_type, "stem": stem}).scalars())
    filename = f"{stem}.zip"
    counter = 2
    while filename in taken:
        filename = f"{stem}_{counter}.zip"
        counter += 1
    return filename


def _startable_database(
    connection: Connection, settings: Settings, user: Principal, database_id: int
) -> RowMapping:
    """The database row, if ``user`` may start a backup of it now; else the error."""
    database = _owned_row(connection, _DATABASES, database_id, user)
    if database["type"] not in DUMPERS:
        raise UnsupportedDatabaseType(database["type"])
    ensure_job_slot(connection, settings, user.id)
    ensure_within_quota(connection, settings, user.id)
    return database


def insert_backup(
    connection: Connection,
    settings: Settings,
    user: Principal,
    database_id: int,
    trigger: BackupTrigger = BackupTrigger.MANUAL,
) -> RowMapping:
    """Record a ``pending`` backup of ``database_id`` in the caller's unit of work (not
    submitted to the runner; refusals raise as ``create_backup`` documents)."""
    database = _startable_database(connection, settings, user, database_id)
    created = utcnow()
    stem = f"{safe_stem(database['db_name'])}_{created:%Y%m%d_%H%M%S}"
    filename = _free_filename(connection, database["type"], stem)
    root = PurePosixPath(settings.backup_root.as_posix())
    values = {
        "filename": filename,
        "filepath": str(root / storage_key(database["type"], filename)),
        "size": 0,
        "status": JobStatus.PENDING.value,
        "db_type": database["type"],
        "db_name": database["db_name"],
        "database_name": database["name"],
        "db_host": database["host"],
        "db_port": database["port"],
        "user_id": user.id,
        "database_id": database_id,
        "created_at": created,
        "updated_at": created,
        "trigger": trigger.value,
    }
    return connection.execute(_INSERT, values).mappings().one()


async def create_backup(
    *,
    transactions: TransactionRunner,
    settings: Settings,
    storage: Storage,
    runner: Runner,
    user: Principal,
    database_id: int,
) -> BackupPublic:
    """Record a ``pending`` backup and hand it to the runner.

    Shielded: once the record is committed the job is submitted, even if the request is
    cancelled meanwhile, so a record never stays ``pending`` with no job behind it.
    """

    # Checked first on the read side, so refusals (404, 403, 429) never queue behind
    # writes; checked again in the insert's own transaction, which is what counts.
    await transactions.read(lambda c: _startable_database(c, settings, user, database_id))
    await ensure_disk_reserve(storage, settings)

    async def record_and_submit() -> RowMapping:
        # One process owns the runner, so an exclusive unit makes "pick a free name, insert"
        # atomic (the unique filepath would refuse a duplicate anyway).
        row = await transactions.run(
            lambda c: insert_backup(c, settings, user, database_id), exclusive=True
        )
        runner.submit(JobKind.BACKUP, row["id"], database_id, user.id)
        return row

    return to_public(await asyncio.shield(record_and_submit()))


@dataclass(frozen=True)
class Download:
    filename: str
    size: int
    checksum: str | None
    chunks: AsyncIterator[bytes]


class ActiveDownloads:
    """The backups whose file is being streamed to a client, so that retention leaves
    them for its next sweep."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()

    def __contains__(self, backup_id: object) -> bool:
        return self._counts[backup_id] > 0 if isinstance(backup_id, int) else False

    async def stream(self, backup_id: int, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        # Counted from the first chunk asked for (a response never started leaves no
        # trace) to the end of the stream, whether it completes or the client goes.
        self._counts[backup_id] += 1
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self._counts[backup_id] -= 1
            if self._counts[backup_id] <= 0:
                del self._counts[backup_id]


async def open_download(
    *, storage: Storage, backup: Backup, downloads: ActiveDownloads | None = None
) -> Download:
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    assert backup.id is not None
    key = storage_key(backup.db_type, backup.filename)
    if not await storage.exists(key):
        raise NotFound("Fichier de sauvegarde introuvable")
    chunks = storage.iter_bytes(key)
    return Download(
        filename=backup.filename,
        size=await storage.size(key),
        checksum=backup.checksum,
        chunks=chunks if downloads is None else downloads.stream(backup.id, chunks),
    )


@dataclass(frozen=True)
class Verification:
    valid: bool
    checksum_expected: str | None
    checksum_actual: str | None
    error: str | None


async def verify_backup(
    *,
    storage: Storage,
    executor: Executor,
    launcher: ArchiverLauncher,
    nice: int,
    backup: Backup,
) -> Verification:
    if backup.status != JobStatus.COMPLETED.value:
        raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")
    key = storage_key(backup.db_type, backup.filename)
    if not await storage.exists(key):
        return Verification(False, backup.checksum, None, "fichier de sauvegarde introuvable")

    def _verify() -> Verification:
        # Hashing and decompressing happen in an archive process, not in this one's threads;
        # it makes a restore's own checks, so what passes here is what a restore accepts.
        options = VerifyOptions(expected_sha256=backup.checksum, db_type=backup.db_type, nice=nice)
        with storage.open_sync(key) as handle:
            result = verify_in_process(handle.fileno(), options, launcher=launcher)
        return Verification(result.problem is None, backup.checksum, result.sha256, result.problem)

    return await asyncio.get_running_loop().run_in_executor(executor, _verify)


async def backup_in_use(session: AsyncSession, backup_id: int) -> bool:
    """Whether a pending restore reads this backup, or runs it first (its target's)."""
    result = await session.exec(
        sqlmodel_select(func.count())
        .select_from(Restore)
        .where(
            or_(col(Restore.backup_id) == backup_id, col(Restore.safety_backup_id) == backup_id),
            Restore.status == JobStatus.PENDING.value,
        )
    )
    return int(result.one()) > 0


BACKUP_IN_USE = "Une restauration en cours ou en attente utilise cette sauvegarde"


async def delete_backup(
    *, session: AsyncSession, storage: Storage, runner: Runner, backup: Backup
) -> None:
    """Delete a backup's file and record: the one path of ``DELETE /api/backups/{id}`` and
    of retention. Refused (409) while a restore reads it; a file already gone is fine."""
    assert backup.id is not None
    if await backup_in_use(session, backup.id):
        raise Conflict(BACKUP_IN_USE)
    # A running dump is stopped first (its staged file removed), then record and file go.
    await runner.cancel(JobKind.BACKUP, backup.id, CancelReason.DELETED)
    await storage.delete(storage_key(backup.db_type, backup.filename))
    await session.delete(backup)
    await session.flush()


async def set_pinned(*, session: AsyncSession, backup: Backup, pinned: bool) -> Backup:
    """Pin (retention never deletes it) or unpin a backup; not an edit of the backup
    itself, but its record changes, so ``updated_at`` moves."""
    if backup.pinned != pinned:
        backup.pinned = pinned
        backup.updated_at = utcnow()
        session.add(backup)
        await session.flush()
    return backup
