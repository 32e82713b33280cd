"""The rules of copies: where a new backup goes, how copies are shown, which copy serves a
download, a verification or a restore, and what a backup's status is given its copies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Connection

from backup_api.config import Settings
from backup_api.exceptions import Conflict, NotFound
from backup_api.models import CopyPublic, CopyStatus
from backup_api.repositories import Record, copies
from backup_api.repositories.copies import LOCAL
from backup_api.storage.base import object_key, object_uri, storage_key

#: The copy statuses that hold a complete archive.
READABLE = (CopyStatus.COMPLETED.value, CopyStatus.DELETE_FAILED.value)


def new_copies(
    connection: Connection, settings: Settings, database: Record, filename: str
) -> tuple[str, list[dict[str, Any]]]:
    """The ``filepath`` of a new backup of ``database`` and the rows of its copies (without
    their ``backup_id``): the local one if the database keeps one, then one per storage in
    the owner's order. ``filepath`` is the local path, else the first remote location."""
    rows: list[dict[str, Any]] = []
    local_key = storage_key(database.type, filename)
    if database.keep_local:
        rows.append(_row(None, LOCAL, LOCAL, local_key, None))
    for storage in copies.destinations_of(connection, database.id):
        key = object_key(storage.prefix, database.type, filename)
        rows.append(
            _row(storage.id, storage.type, storage.name, object_uri(storage.bucket, key), key)
        )
    if not rows:  # refused when the database is saved; kept safe here all the same
        rows.append(_row(None, LOCAL, LOCAL, local_key, None))
    if rows[0]["kind"] == LOCAL:
        filepath = str(PurePosixPath(settings.backup_root.as_posix()) / local_key)
    else:
        filepath = str(rows[0]["location"])
    return filepath, rows


def _row(
    storage_id: int | None, kind: str, name: str, location: str, key: str | None
) -> dict[str, Any]:
    return {
        "storage_id": storage_id,
        "kind": kind,
        "storage_name": name,
        "location": location,
        "object_key": key,
        "status": CopyStatus.PENDING.value,
        "attempts": 0,
    }


def to_public(row: Record) -> CopyPublic:
    return CopyPublic.model_construct(
        storage_id=row.storage_id,
        storage_name=row.storage_name,
        location=row.location,
        status=CopyStatus(row.status),
        size=row.size,
        error_msg=row.error_msg,
        retain_until=row.retain_until,
    )


def failed_summary(rows: Sequence[Record]) -> str | None:
    """The French reason a backup is ``failed`` while some of its copies are complete:
    each destination that has no copy, and why. None when every copy is complete."""
    missing = [row for row in rows if row.status not in READABLE]
    if not missing:
        return None
    parts = [f"{row.storage_name}: {row.error_msg or 'copie absente'}" for row in missing]
    return "copie manquante sur " + "; ".join(parts)


def choose(rows: Sequence[Record], storage_id: str | None) -> Record:
    """The copy that serves a download, a verification or a restore: the one asked for
    (``storage_id`` "local" or a storage's id), else the local copy, else the first
    complete remote one. 409 when none is complete; 404 when the one asked for is not
    a copy of this backup."""
    readable = [row for row in rows if row.status in READABLE]
    if storage_id is not None:
        wanted = [row for row in rows if _names(row, storage_id)]
        if not wanted:
            raise NotFound("Aucune copie de cette sauvegarde sur ce stockage")
        if wanted[0].status not in READABLE:
            raise Conflict(
                f"La copie sur {wanted[0].storage_name} n'est pas complète "
                f"(statut: {wanted[0].status})"
            )
        return wanted[0]
    if not readable:
        raise Conflict("Aucune copie complète de cette sauvegarde")
    local = [row for row in readable if row.kind == LOCAL]
    return local[0] if local else readable[0]


def _names(row: Record, storage_id: str) -> bool:
    if storage_id == LOCAL:
        return bool(row.kind == LOCAL)
    return row.storage_id is not None and str(row.storage_id) == storage_id
