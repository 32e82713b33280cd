"""Where archives live. A key is a relative path such as ``postgresql/shop_20231030_143022.zip``.

The contract every backend keeps: an archive exists under its key only once it is complete.
Writers stage data elsewhere (a temp file, a multipart upload) and publish it in ``commit``;
``abort`` throws the staged data away. Nothing here knows about users or HTTP.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from typing import BinaryIO, NamedTuple, Protocol

#: What the owner reads when the backend ran out of space (French, shown to users).
DISK_FULL = "espace disque insuffisant"


def storage_key(db_type: str, filename: str) -> str:
    """Where a backup's archive is stored."""
    return f"{db_type}/{filename}"


def object_key(prefix: str, db_type: str, filename: str) -> str:
    """Where a backup's archive is stored in a bucket: ``{prefix}/{db_type}/{filename}``
    (no leading slash when the prefix is empty)."""
    prefix = prefix.strip("/")
    key = storage_key(db_type, filename)
    return f"{prefix}/{key}" if prefix else key


def object_uri(bucket: str, key: str) -> str:
    """How a copy in a bucket is shown: ``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


class StorageFullError(OSError):
    """The backend ran out of space while writing."""


#: The errnos that mean "out of space" (a full disk, or the owner's quota).
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class ArchiveWriter(Protocol):
    """A staged archive, written by a helper process through a file descriptor."""

    def fileno(self) -> int:
        """A descriptor open for writing at the start of the staged archive.

        The archive process writes the whole archive to it, sequentially (a local
        backend gives its staged file; an object-store backend would give a pipe that it
        uploads from). Running out of space shows as ``ENOSPC`` on that descriptor.
        """
        ...

    async def commit(self) -> None:
        """Make the archive durable and visible under its key, atomically."""
        ...

    async def abort(self) -> None:
        """Discard the staged archive; safe to call after a failed write or twice."""
        ...


class SpaceInfo(NamedTuple):
    # A NamedTuple, not a dataclass: the archive process imports this module, and
    # ``dataclasses`` would slow its start (see archiving/child.py).
    total_bytes: int
    free_bytes: int


class Storage(Protocol):
    """The archive store interface (local directory now; object storage later)."""

    async def create_writer(self, key: str) -> ArchiveWriter:
        """Start staging a new archive for ``key``; fails if ``key`` already exists."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a complete archive is stored under ``key``."""
        ...

    async def size(self, key: str) -> int:
        """Size in bytes of the archive under ``key``."""
        ...

    def open_sync(self, key: str) -> BinaryIO:
        """A seekable binary reader on a real file descriptor (a restore hands it to the
        archive process), for use in a worker thread (verify, restore)."""
        ...

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream the archive in chunks without loading it whole."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the archive; returns whether something was removed."""
        ...

    async def cleanup_staged(self) -> int:
        """Remove staged leftovers of interrupted writes (on start); returns how many."""
        ...

    async def space(self) -> SpaceInfo:
        """Capacity of the backend."""
        ...
