"""Archives in a local directory: staged as ``.<name>.part`` beside the final name, then
fsynced and renamed, so a file under its final name is always a complete archive."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import anyio

from backup_api.storage.base import DISK_FULL, FULL_ERRNOS, SpaceInfo, StorageFullError

PART_PREFIX = "."
PART_SUFFIX = ".part"


class UnsafeKeyError(ValueError):
    pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalArchiveWriter:
    def __init__(self, final_path: Path) -> None:
        self.final_path = final_path
        self.part_path = final_path.with_name(PART_PREFIX + final_path.name + PART_SUFFIX)
        self._fd: int | None = os.open(
            self.part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
        )
        self._done = False

    def fileno(self) -> int:
        assert self._fd is not None, "writer already closed"
        return self._fd

    def _commit_sync(self) -> None:
        assert self._fd is not None, "writer already closed"
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise StorageFullError(exc.errno, DISK_FULL) from exc
            raise
        finally:
            self._close_quietly()
        if self.final_path.exists():
            raise FileExistsError(errno.EEXIST, "archive already exists", str(self.final_path))
        os.rename(self.part_path, self.final_path)
        _fsync_dir(self.final_path.parent)
        self._done = True

    def _close_quietly(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _abort_sync(self) -> None:
        self._close_quietly()
        if not self._done:
            self.part_path.unlink(missing_ok=True)

    async def commit(self) -> None:
        await anyio.to_thread.run_sync(self._commit_sync)

    async def abort(self) -> None:
        await anyio.to_thread.run_sync(self._abort_sync)


def _abort_if_created(created: asyncio.Future[LocalArchiveWriter]) -> None:
    if not created.cancelled() and created.exception() is None:
        created.result()._abort_sync()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """Absolute path for ``key``, refusing anything that would leave the root."""
        pure = PurePosixPath(key)
        if (
            not key
            or "\x00" in key
            or "\\" in key
            or pure.is_absolute()
            or any(part in ("", ".", "..") for part in pure.parts)
        ):
            raise UnsafeKeyError(key)
        path = self.root.joinpath(*pure.parts)
        if not path.is_relative_to(self.root):
            raise UnsafeKeyError(key)
        return path

    async def create_writer(self, key: str) -> LocalArchiveWriter:
        path = self.path(key)

        def _create() -> LocalArchiveWriter:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if path.exists():
                raise FileExistsError(errno.EEXIST, "archive already exists", str(path))
            return LocalArchiveWriter(path)

        created = asyncio.get_running_loop().run_in_executor(None, _create)
        try:
            return await asyncio.shield(created)
        except asyncio.CancelledError:
            # Cancelled while the file was being created: the caller never gets the
            # writer, so the ``.part`` it opens must not outlive this call.
            created.add_done_callback(_abort_if_created)
            raise

    async def exists(self, key: str) -> bool:
        path = self.path(key)
        return await anyio.to_thread.run_sync(path.is_file)

    async def size(self, key: str) -> int:
        path = self.path(key)
        stat = await anyio.to_thread.run_sync(path.stat)
        return stat.st_size

    def open_sync(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    async def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path(key), "rb") as handle:
            while chunk := await handle.read(chunk_size):
                yield chunk

    async def delete(self, key: str) -> bool:
        path = self.path(key)

        def _delete() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await anyio.to_thread.run_sync(_delete)

    async def cleanup_staged(self) -> int:
        def _cleanup() -> int:
            removed = 0
            if not self.root.is_dir():
                return 0
            for part in self.root.rglob(f"{PART_PREFIX}*{PART_SUFFIX}"):
                if part.is_file():
                    part.unlink(missing_ok=True)
                    removed += 1
            return removed

        return await anyio.to_thread.run_sync(_cleanup)

    async def space(self) -> SpaceInfo:
        def _space() -> SpaceInfo:
            self.root.mkdir(parents=True, exist_ok=True)
            usage = shutil.disk_usage(self.root)
            return SpaceInfo(total_bytes=usage.total, free_bytes=usage.free)

        return await anyio.to_thread.run_sync(_space)
