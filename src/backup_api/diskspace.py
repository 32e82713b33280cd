"""The free-space reserve of the backup root: a share of its filesystem that backups leave
free, so that one large dump cannot fill the disk under everyone else's backups.

No backup starts while free space is below the reserve (``services.admission``), and a
running one is stopped when it crosses it (``within_reserve``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
from collections.abc import Coroutine
from typing import Any, TypeVar

from backup_api.storage.base import SpaceInfo, Storage, StorageFullError

logger = logging.getLogger("backup_api.diskspace")

T = TypeVar("T")

#: How often a running backup's filesystem is looked at.
WATCH_INTERVAL = 0.25


def reserve_bytes(space: SpaceInfo, percent: float) -> int:
    return math.ceil(space.total_bytes * percent / 100)


def below_reserve(space: SpaceInfo, percent: float) -> bool:
    return percent > 0 and space.free_bytes < reserve_bytes(space, percent)


class ReserveCrossedError(StorageFullError):
    """Free space dropped below the reserve while a backup was being written."""

    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, "réserve d'espace disque atteinte")


async def _until_below(storage: Storage, percent: float, interval: float) -> None:
    while True:
        try:
            if below_reserve(await storage.space(), percent):
                return
        except Exception:
            # The backend could not say: the write itself still reports a full disk.
            logger.warning("could not read the backup root's free space", exc_info=True)
        await asyncio.sleep(interval)


async def within_reserve(
    work: Coroutine[Any, Any, T],
    storage: Storage,
    percent: float,
    *,
    interval: float = WATCH_INTERVAL,
) -> T:
    """Await ``work`` (a backup's tool run) while the free space of ``storage`` stays above
    ``percent`` of its size; when it drops below, ``work`` is cancelled (it kills its tool
    and waits for it, as on any cancellation) and ``ReserveCrossedError`` is raised."""
    if percent <= 0:
        return await work
    worker = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_below(storage, percent, interval))
    crossed = False
    try:
        await asyncio.wait((worker, watcher), return_when=asyncio.FIRST_COMPLETED)
        crossed = watcher.done()
    finally:
        watcher.cancel()
        if not worker.done():
            worker.cancel()
            # However this call ends, the work has cleaned up (its tool reaped) first.
            await asyncio.shield(asyncio.wait((worker,)))
    if crossed and worker.cancelled():
        raise ReserveCrossedError
    return worker.result()
