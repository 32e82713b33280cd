"""Backups: creation (then the job queue takes over), listing, download, verification, deletion."""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from backup_api import encryption
from backup_api.archiving.launcher import ArchiveProcessLauncher, verify_archive
from backup_api.archiving.protocol import VerifyOptions
from backup_api.config import Settings
from backup_api.copies.rules import choose as choose_copy
from backup_api.copies.rules import new_copies
from backup_api.copies.rules import to_public as copy_public
from backup_api.copies.store import CopyStore, CopyUnavailable
from backup_api.db import Metadata
from backup_api.dumpers.registry import DUMPERS
from backup_api.exceptions import (
    Conflict,
    NotFound,
    StorageUnavailable,
    UnsupportedDatabaseType,
)
from backup_api.jobs.progress import ProgressBoard, live_fields, live_json
from backup_api.jobs.queue import CancelReason, JobKind, JobQueue
from backup_api.jobs.workdirs import job_workdir, jobs_root
from backup_api.models import (
    BackupPublic,
    BackupTrigger,
    JobPhase,
    JobProgressPublic,
    JobStatus,
    LastDrill,
    duration_seconds,
    utcnow,
)
from backup_api.principals import Principal
from backup_api.repositories import Record, backups, copies, drills, restores
from backup_api.security import CredentialError, Keys
from backup_api.services.admission import (
    ensure_disk_reserve,
    ensure_job_slot,
    ensure_within_quota,
)
from backup_api.services.ownership import BACKUP, DATABASE, load_owned
from backup_api.storage.base import Storage

MAX_STEM = 80


def safe_stem(db_name: str) -> str:
    """``db_name`` reduced to a file name that cannot leave its directory."""
    normalized = unicodedata.normalize("NFKD", db_name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", normalized).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)[:MAX_STEM].strip("._-")
    return stem or "database"


def to_public(backup: Record, copy_rows: Sequence[Record] = ()) -> BackupPublic:
    """The public shape of a record and its copies."""
    fields = backup._mapping
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
        copies=[copy_public(row) for row in copy_rows],
        encrypted=bool(fields["encrypted"]),
        table_rows=None if fields["table_rows"] is None else json.loads(fields["table_rows"]),
        last_drill=None
        if fields["last_drill_id"] is None
        else LastDrill.model_construct(
            id=fields["last_drill_id"],
            status="passed"
            if fields["last_drill_status"] == JobStatus.COMPLETED.value
            else "failed",
            finished_at=fields["last_drill_finished_at"],
        ),
    )


# The hot routes below run as one unit of work each (``db.Metadata``): the ownership
# checks, the queries and the insert happen in a single trip to the database.


async def get_backup_json(
    *, metadata: Metadata, user: Principal, backup_id: int, progress: ProgressBoard
) -> bytes:
    """The document ``{"backup": {...}}``: what clients poll while a backup runs, with
    its live ``phase`` and ``progress``."""
    document, _ = await backup_document(
        metadata=metadata, user=user, backup_id=backup_id, progress=progress
    )
    return document


async def backup_document(
    *, metadata: Metadata, user: Principal, backup_id: int, progress: ProgressBoard
) -> tuple[bytes, str]:
    """``get_backup_json``'s document, and the backup's status."""

    def work(connection: Connection) -> tuple[bytes, str]:
        backup = load_owned(connection, BACKUP, backup_id, user)
        rendered = _rendered_rows.render(backup, copies.of_backup(connection, backup_id))
        return rendered, backup.status

    rendered, status = await metadata.read(work)
    # Here, on the event loop that advances the progress (the read may run in a thread).
    document = b'{"backup":' + with_live(rendered, progress, backup_id, status) + b"}"
    return document, status


#: What every cached row holds: the row as stored, not running. (Inside a JSON string
#: a quote is escaped, so these bytes can only be the two members themselves.)
_NOT_LIVE = b'"phase":null,"progress":null'


def with_live(fragment: bytes, progress: ProgressBoard, backup_id: int, status: str) -> bytes:
    """A rendered row with the live fields of a pending backup put in (the cache holds
    rows as stored; what runs changes many times a second, and only those rows pay)."""
    if status != JobStatus.PENDING.value:
        return fragment
    return fragment.replace(_NOT_LIVE, live_json(progress, JobKind.BACKUP, backup_id, status), 1)


class RenderedRows:
    """The JSON of backup rows, rendered once per state of each row.

    Listings are what clients poll, and rendering a row (twenty fields, four timestamps)
    cost more than reading it. The key is the row's whole content, so any change to a
    record (status, size, timestamps) is a new entry, never a stale one.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._fragments: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def render(self, row: Record, copy_rows: Sequence[Record]) -> bytes:
        key = (tuple(row), *map(tuple, copy_rows))
        fragment = self._fragments.get(key)
        if fragment is None:
            fragment = _SERIALIZER.to_json(to_public(row, copy_rows))
            self._fragments[key] = fragment
            if len(self._fragments) > self._size:
                self._fragments.popitem(last=False)
        return fragment


_SERIALIZER = BackupPublic.__pydantic_serializer__
# Used from one thread at a time: SQLite's reader thread, or the event loop otherwise.
_rendered_rows = RenderedRows()


async def list_backups_json(
    *,
    metadata: Metadata,
    user: Principal,
    limit: int,
    offset: int,
    progress: ProgressBoard,
    database_id: int | None = None,
) -> bytes:
    """The listing as the JSON document ``{"backups": [...]}``, newest first."""
    owner_id = None if user.is_admin else user.id

    def work(connection: Connection) -> list[tuple[bytes, int, str]]:
        if database_id is not None:
            load_owned(connection, DATABASE, database_id, user)
        rows = list(
            backups.page(
                connection, owner_id=owner_id, database_id=database_id, limit=limit, offset=offset
            )
        )
        copy_rows = copies.of_backups(connection, [row.id for row in rows])
        return [(_rendered_rows.render(row, copy_rows[row.id]), row.id, row.status) for row in rows]

    rendered = [
        with_live(fragment, progress, backup_id, status)
        for fragment, backup_id, status in await metadata.read(work)
    ]
    return b'{"backups":[' + b",".join(rendered) + b"]}"


def _free_filename(connection: Connection, db_type: str, stem: str, suffix: str) -> str:
    taken = backups.names_taken(connection, db_type, stem)
    filename = f"{stem}{suffix}"
    counter = 2
    while filename in taken:
        filename = f"{stem}_{counter}{suffix}"
        counter += 1
    return filename


def _startable_database(
    connection: Connection, settings: Settings, user: Principal, database_id: int
) -> Record:
    """The database record, if ``user`` may start a backup of it now; else the error."""
    database = load_owned(connection, DATABASE, database_id, user)
    if database.type not in DUMPERS:
        raise UnsupportedDatabaseType(database.type)
    ensure_job_slot(connection, settings, user.id)
    ensure_within_quota(connection, settings, user.id)
    return database


def insert_backup_with_copies(
    connection: Connection,
    settings: Settings,
    user: Principal,
    database_id: int,
    trigger: BackupTrigger = BackupTrigger.MANUAL,
) -> tuple[Record, list[Record]]:
    """Record a ``pending`` backup of ``database_id`` in the caller's unit of work (not
    submitted to the job queue; refusals raise as ``create_backup`` documents)."""
    database = _startable_database(connection, settings, user, database_id)
    created = utcnow()
    stem = f"{safe_stem(database.db_name)}_{created:%Y%m%d_%H%M%S}"
    filename = _free_filename(connection, database.type, stem, encryption.file_suffix(database))
    filepath, copy_rows = new_copies(connection, settings, database, filename)
    values = {
        "filename": filename,
        "filepath": filepath,
        "size": 0,
        "status": JobStatus.PENDING.value,
        "db_type": database.type,
        "db_name": database.db_name,
        "database_name": database.name,
        "db_host": database.host,
        "db_port": database.port,
        "user_id": user.id,
        "database_id": database_id,
        "created_at": created,
        "updated_at": created,
        "trigger": trigger.value,
        **encryption.backup_columns(database),
    }
    row = backups.insert_backup(connection, values)
    inserted = copies.insert_copies(
        connection,
        [
            {**copy, "backup_id": row.id, "created_at": created, "updated_at": created}
            for copy in copy_rows
        ],
    )
    return row, inserted


def insert_backup(
    connection: Connection,
    settings: Settings,
    user: Principal,
    database_id: int,
    trigger: BackupTrigger = BackupTrigger.MANUAL,
) -> Record:
    """``insert_backup_with_copies``'s record alone."""
    return insert_backup_with_copies(connection, settings, user, database_id, trigger)[0]


async def create_backup(
    *,
    metadata: Metadata,
    settings: Settings,
    storage: Storage,
    queue: JobQueue,
    user: Principal,
    database_id: int,
) -> BackupPublic:
    """Record a ``pending`` backup and hand it to the job queue.

    Shielded: once the record is committed the job is submitted, even if the request is
    cancelled meanwhile, so a record never stays ``pending`` with no job behind it.
    """

    # Checked first on the read side, so refusals (404, 403, 429) never queue behind
    # writes; checked again in the insert's own transaction, which is what counts.
    await metadata.read(lambda c: _startable_database(c, settings, user, database_id))
    await ensure_disk_reserve(storage, settings)

    def insert(connection: Connection) -> tuple[Record, list[Record]]:
        return insert_backup_with_copies(connection, settings, user, database_id)

    async def record_and_submit() -> tuple[Record, list[Record]]:
        # One process owns the job queue, so an exclusive unit makes "pick a free name, insert"
        # atomic (the unique filepath would refuse a duplicate anyway).
        row, copy_rows = await metadata.write(insert, exclusive=True)
        queue.submit(JobKind.BACKUP, row.id, database_id, user.id)
        return row, copy_rows

    created = to_public(*await asyncio.shield(record_and_submit()))
    created.phase = JobPhase.QUEUED  # just submitted: the queue has not started it
    return created


@dataclass(frozen=True)
class Download:
    filename: str
    size: int
    checksum: str | None
    chunks: AsyncIterator[bytes]
    encrypted: bool = False


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


async def public(metadata: Metadata, backup: Record, progress: ProgressBoard) -> BackupPublic:
    """The public shape of a record, with its copies as they are now and, if it runs,
    its live fields."""
    shown = to_public(backup, await _copies_of(metadata, backup))
    phase, live = live_fields(progress, JobKind.BACKUP, backup.id, backup.status)
    shown.phase = phase
    shown.progress = None if live is None else JobProgressPublic.model_validate(live)
    return shown


async def _copies_of(metadata: Metadata, backup: Record) -> list[Record]:
    backup_id: int = backup.id
    return await metadata.read(lambda c: copies.of_backup(c, backup_id))


def ensure_archived(backup: Record) -> None:
    """A backup whose archive was made: completed, or failed with some copies complete
    (it has a checksum then)."""
    if backup.status == JobStatus.COMPLETED.value:
        return
    if backup.status == JobStatus.FAILED.value and backup.checksum is not None:
        return
    raise Conflict(f"La sauvegarde n'est pas terminée (statut: {backup.status})")


async def open_download(
    *,
    metadata: Metadata,
    copy_store: CopyStore,
    backup: Record,
    storage_id: str | None = None,
    downloads: ActiveDownloads | None = None,
) -> Download:
    """The archive of one complete copy (``storage_id``'s, else the local one, else the
    first complete remote one), streamed through the service."""
    ensure_archived(backup)
    copy = choose_copy(await _copies_of(metadata, backup), storage_id)
    try:
        size = await copy_store.size(copy)
    except CopyUnavailable as exc:
        if exc.missing:
            raise NotFound("Fichier de sauvegarde introuvable") from None
        raise StorageUnavailable(f"Stockage distant indisponible: {exc}") from None
    chunks = copy_store.chunks(copy)
    return Download(
        filename=backup.filename,
        size=size,
        checksum=backup.checksum,
        chunks=chunks if downloads is None else downloads.stream(backup.id, chunks),
        encrypted=bool(backup.encrypted),
    )


@dataclass(frozen=True)
class Verification:
    valid: bool
    checksum_expected: str | None
    checksum_actual: str | None
    error: str | None
    #: False: encrypted to recipients, checked without the identity (see VerifyOptions).
    contents_checked: bool = True


async def verify_backup(
    *,
    metadata: Metadata,
    copy_store: CopyStore,
    settings: Settings,
    keys: Keys,
    executor: Executor,
    launcher: ArchiveProcessLauncher,
    backup: Record,
    storage_id: str | None = None,
) -> Verification:
    """Check one complete copy as a restore would (``storage_id``'s, else the local one,
    else the first complete remote one, which is read back whole). An encrypted copy has
    its whole age stream authenticated and its ZIP checked when the service holds its
    passphrase; encrypted to recipients, its SHA-256 and age structure alone."""
    ensure_archived(backup)
    copy = choose_copy(await _copies_of(metadata, backup), storage_id)
    try:
        age_keys = encryption.opening_keys(keys, backup)
    except CredentialError as exc:
        return Verification(False, backup.checksum, None, str(exc), contents_checked=False)
    # Hashing and decompressing happen in an archive process, not in this one; it makes a
    # restore's own checks, so what passes here is what a restore accepts.
    options = VerifyOptions(
        expected_sha256=backup.checksum,
        db_type=backup.db_type,
        nice=settings.job_nice,
        encrypted=bool(backup.encrypted),
        keys=age_keys,
    )
    with job_workdir(jobs_root(settings), f"verify-{backup.id}-{uuid.uuid4().hex}") as workdir:
        try:
            handle = await copy_store.open(copy, workdir)
        except CopyUnavailable as exc:
            return Verification(False, backup.checksum, None, str(exc))
        with handle:
            result = await verify_archive(
                handle.fileno(), options, launcher=launcher, executor=executor
            )
    return Verification(
        result.problem is None,
        backup.checksum,
        result.sha256,
        result.problem,
        contents_checked=result.contents_checked,
    )


BACKUP_IN_USE = "Une restauration en cours ou en attente utilise cette sauvegarde"


async def delete_backup(
    *, metadata: Metadata, copy_store: CopyStore, queue: JobQueue, backup: Record
) -> None:
    """Delete every copy of a backup, then its record: the one path of
    ``DELETE /api/backups/{id}`` and of retention. Refused (409) while a restore or a drill
    reads it, or a restore runs it first; a running dump is stopped first (its staged data
    removed); a copy already gone is fine. A copy that cannot be deleted stays,
    ``delete_failed`` with the reason, and so does the record: 409 naming it (a new
    deletion or a retry finishes)."""
    backup_id: int = backup.id
    if await metadata.read(
        # A pending drill reads it too ("restauration d'essai").
        lambda c: restores.pending_readers(c, backup_id) + drills.pending_readers(c, backup_id)
    ):
        raise Conflict(BACKUP_IN_USE)
    await queue.cancel(JobKind.BACKUP, backup_id, CancelReason.DELETED)
    failures = await copy_store.delete_copies(await _copies_of(metadata, backup))
    if failures:
        raise Conflict("Suppression incomplète: " + "; ".join(failures))
    await metadata.write(lambda c: backups.delete_backup(c, backup_id))


async def set_pinned(*, metadata: Metadata, backup: Record, pinned: bool) -> Record:
    """Pin (retention never deletes it) or unpin a backup; not an edit of the backup
    itself, but its record changes, so ``updated_at`` moves."""
    if backup.pinned == pinned:
        return backup
    backup_id: int = backup.id
    changed = await metadata.write(
        lambda c: backups.update_backup(c, backup_id, {"pinned": pinned, "updated_at": utcnow()})
    )
    if changed is None:
        raise NotFound(BACKUP.missing)
    return changed
