"""Rebuilding backup records from what a storage holds: each archive's manifest says what
it is, so losing the service's own disk (or moving to a new instance) loses no backup."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from backup_api import encryption
from backup_api.copies.store import CopyStore, CopyUnavailable
from backup_api.db import Metadata
from backup_api.exceptions import StorageUnavailable
from backup_api.models import BackupTrigger, CopyStatus, JobStatus, utcnow
from backup_api.repositories import Record, backups, copies
from backup_api.storage.base import object_uri
from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import S3Error
from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.manifest import ManifestError, parse_manifest


@dataclass
class ImportOutcome:
    found: int = 0
    known: int = 0
    imported: list[tuple[Record, list[Record]]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


async def import_backups(
    *, metadata: Metadata, copy_store: CopyStore, storage: Record
) -> ImportOutcome:
    """Read every manifest under the storage's prefix and record, as completed backups of
    the storage's owner with one copy there, the archives this service does not know."""
    try:
        location = await copy_store.location(storage.id)
        found = await asyncio.to_thread(objects.list_manifests, location)
    except (CopyUnavailable, S3Error) as exc:
        raise StorageUnavailable(f"Stockage distant indisponible: {exc}") from None
    outcome = ImportOutcome(found=len(found))
    storage_id: int = storage.id
    known = await metadata.read(lambda c: copies.object_keys_of_storage(c, storage_id))
    for raw in found:
        key = str(raw.get("key", ""))
        if key in known:
            outcome.known += 1
            continue
        try:
            manifest = parse_manifest(raw)
        except ManifestError:
            outcome.invalid.append(key)
            continue
        head = await _head(location, key)
        if head is None or manifest["size"] is None or head[0] != manifest["size"]:
            outcome.invalid.append(key)  # the archive is missing, or not the one described
            continue
        backup, copy = _records(storage, location, key, manifest, head[1])
        try:
            inserted = await metadata.write(partial(_insert, backup=backup, copy=copy))
        except IntegrityError:
            # Its location is a known backup's already (another storage record naming
            # the same bucket and prefix).
            outcome.known += 1
            continue
        outcome.imported.append(inserted)
    return outcome


async def _head(location: S3Location, key: str) -> tuple[int, str | None] | None:
    try:
        return await asyncio.to_thread(objects.head_object, location, key)
    except S3Error:
        return None


def _records(
    storage: Record,
    location: S3Location,
    key: str,
    manifest: dict[str, Any],
    version_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    now = utcnow()
    created = datetime.fromisoformat(manifest["created_at"])
    uri = object_uri(location.bucket, key)
    backup = {
        "filename": manifest["filename"],
        "filepath": uri,
        "size": manifest["size"],
        "status": JobStatus.COMPLETED.value,
        "checksum": manifest["checksum"],
        "db_type": manifest["db_type"],
        "db_name": manifest["db_name"],
        "database_name": manifest["database_name"],
        "user_id": storage.user_id,
        "database_id": None,
        "dump_size": manifest["dump_size"],
        "dump_tool_version": manifest["dump_tool_version"],
        "started_at": created,
        "finished_at": created,
        "created_at": created,
        "updated_at": now,
        "trigger": BackupTrigger.IMPORT.value,
        **encryption.imported_columns(manifest["filename"], manifest["encryption"]),
    }
    copy = {
        "storage_id": storage.id,
        "kind": storage.type,
        "storage_name": storage.name,
        "location": uri,
        "object_key": key,
        "status": CopyStatus.COMPLETED.value,
        "size": manifest["size"],
        "version_id": version_id,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    return backup, copy


def _insert(
    connection: Connection, *, backup: dict[str, Any], copy: dict[str, Any]
) -> tuple[Record, list[Record]]:
    row = backups.insert_backup(connection, backup)
    return row, copies.insert_copies(connection, [{**copy, "backup_id": row.id}])
