"""Reading and deleting a backup's copies wherever they are: the one place that knows
how to reach a copy from its row (the local backup root, a storage's bucket).

A remote copy is reached with its storage's credentials, decrypted for the request, and
through the outbound rule (``storage.s3.policy``) each time: an endpoint edited to point
elsewhere is judged again. The S3 calls are blocking (botocore) and run in threads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import BinaryIO

from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.models import CopyStatus, utcnow
from backup_api.netpolicy import HostNotAllowedError
from backup_api.repositories import Record, copies
from backup_api.repositories.copies import LOCAL
from backup_api.security import CredentialError, Keys, decrypt_secret
from backup_api.storage.base import Storage
from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import S3Error
from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.policy import outbound_location

#: What a copy's owner reads when its archive is gone from where it was written.
COPY_MISSING = "fichier de sauvegarde introuvable"
STORAGE_DELETED = "le stockage de cette copie a été supprimé"


class CopyUnavailable(Exception):
    """A copy that cannot be read now; the message says why (French). ``missing``: it is
    gone from where it was written (else its storage did not answer)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def is_local(copy: Record) -> bool:
    return bool(copy.kind == LOCAL)


class CopyStore:
    def __init__(
        self, storage: Storage, metadata: Metadata, settings: Settings, keys: Keys
    ) -> None:
        self._storage = storage
        self._metadata = metadata
        self._settings = settings
        self._keys = keys

    async def location(self, storage_id: int | None) -> S3Location:
        """How to reach a storage now: its credentials, its endpoint through the outbound
        rule. ``CopyUnavailable`` when it is gone or may not be reached."""
        if storage_id is None:
            raise CopyUnavailable(STORAGE_DELETED)
        found, owner_is_admin = await self._metadata.read(
            lambda c: copies.storage_of_copy(c, storage_id)
        )
        if found is None:
            raise CopyUnavailable(STORAGE_DELETED)
        try:
            secret = decrypt_secret(self._keys, found.secret_encrypted)
            return await outbound_location(self._settings, found, secret, owner_is_admin)
        except (CredentialError, HostNotAllowedError) as exc:
            raise CopyUnavailable(str(exc)) from None

    async def size(self, copy: Record) -> int:
        """The stored size; ``CopyUnavailable`` if it is gone or unreachable."""
        if is_local(copy):
            if not await self._storage.exists(copy.location):
                raise CopyUnavailable(COPY_MISSING, missing=True)
            return await self._storage.size(copy.location)
        location = await self.location(copy.storage_id)
        try:
            found = await asyncio.to_thread(objects.head_object, location, copy.object_key)
        except S3Error as exc:
            raise CopyUnavailable(str(exc)) from None
        if found is None:
            raise CopyUnavailable(COPY_MISSING, missing=True)
        return found[0]

    async def chunks(self, copy: Record) -> AsyncIterator[bytes]:
        """The stored bytes, streamed (a remote copy one chunk at a time, read in a
        thread: constant memory)."""
        if is_local(copy):
            async for chunk in self._storage.iter_bytes(copy.location):
                yield chunk
            return
        location = await self.location(copy.storage_id)
        stream: Iterator[bytes] = await asyncio.to_thread(
            objects.iter_object, location, copy.object_key
        )
        try:
            while chunk := await asyncio.to_thread(next, stream, b""):
                yield chunk
        finally:
            await asyncio.to_thread(stream.close)  # type: ignore[attr-defined]

    async def open(self, copy: Record, workdir: Path) -> BinaryIO:
        """A seekable reader on a real descriptor (verifications and restores hand it to
        an archive process), for the caller to close; a remote copy is fetched into
        ``workdir`` first, whole (the archive's checks read it twice: hash, then entry)."""
        if is_local(copy):
            if not await self._storage.exists(copy.location):
                raise CopyUnavailable(COPY_MISSING, missing=True)
            return await asyncio.to_thread(self._storage.open_sync, copy.location)
        location = await self.location(copy.storage_id)
        path = workdir / "archive"
        try:
            await asyncio.to_thread(_download, location, copy.object_key, path)
        except S3Error as exc:
            raise CopyUnavailable(str(exc), missing=str(exc) == "objet introuvable") from None
        return await asyncio.to_thread(path.open, "rb")

    async def delete(self, copy: Record) -> str | None:
        """Delete a copy; None when it is gone (or was already), else why not (French)."""
        if is_local(copy):
            await self._storage.delete(copy.location)
            return None
        try:
            location = await self.location(copy.storage_id)
        except CopyUnavailable as exc:
            if copy.storage_id is None:
                return None  # its storage is gone, and with it what this service can reach
            return str(exc)
        try:
            await asyncio.to_thread(
                objects.delete_object, location, copy.object_key, copy.version_id
            )
            await asyncio.to_thread(
                objects.delete_object, location, objects.manifest_key(copy.object_key), None
            )
        except S3Error as exc:  # ObjectLockedError says until when
            return str(exc)
        return None

    async def delete_copies(self, copy_rows: Sequence[Record]) -> list[str]:
        """Delete each copy and its row; those that cannot be deleted become
        ``delete_failed`` with the reason. The French "destination: reason" of each
        failure."""
        failures: list[str] = []
        for copy in copy_rows:
            reason = await self.delete(copy)
            copy_id: int = copy.id
            if reason is None:
                await self._metadata.write(partial(copies.delete_copy, copy_id=copy_id))
                continue
            failures.append(f"{copy.storage_name}: {reason}")
            values = {
                "status": CopyStatus.DELETE_FAILED.value,
                "error_msg": reason,
                "updated_at": utcnow(),
            }
            await self._metadata.write(partial(copies.update_copy, copy_id=copy_id, values=values))
        return failures


def _download(location: S3Location, key: str, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        objects.download_to_fd(location, key, fd)
        os.fsync(fd)
    finally:
        os.close(fd)
