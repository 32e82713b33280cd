"""Reading and deleting a backup's copies wherever they are: the one place that knows
how to reach a copy from its row (the local backup root, a storage's bucket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from backup_api.repositories import Record
from backup_api.repositories.copies import LOCAL
from backup_api.storage.base import Storage

#: What a copy's owner reads when its archive is gone from where it was written.
COPY_MISSING = "fichier de sauvegarde introuvable"


class CopyUnavailable(Exception):
    """A copy that cannot be read now; the message says why (French). ``missing``: it is
    gone from where it was written (else its storage did not answer)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class CopyStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def size(self, copy: Record) -> int:
        """The stored size; ``CopyUnavailable`` if it is gone."""
        key = copy.location
        if not await self._storage.exists(key):
            raise CopyUnavailable(COPY_MISSING, missing=True)
        return await self._storage.size(key)

    def chunks(self, copy: Record) -> AsyncIterator[bytes]:
        """The stored bytes, streamed."""
        return self._storage.iter_bytes(copy.location)

    async def open(self, copy: Record, workdir: Path) -> BinaryIO:
        """A seekable reader on a real descriptor (verifications and restores hand it to
        an archive process), for the caller to close; a remote copy is fetched into
        ``workdir`` first."""
        key = copy.location
        if not await self._storage.exists(key):
            raise CopyUnavailable(COPY_MISSING, missing=True)
        return await asyncio.to_thread(self._storage.open_sync, key)

    async def delete(self, copy: Record) -> str | None:
        """Delete a copy; None when it is gone (or was already), else why not (French)."""
        await self._storage.delete(copy.location)
        return None


def is_local(copy: Record) -> bool:
    return bool(copy.kind == LOCAL)
