"""Local storage: what a cancelled job leaves behind."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings
from pathlib import Path

import pytest

from backup_api.storage.local import LocalStorage
from tests.support.locks import wait_until


# A loop of its own: the test waits for its default executor's threads by shutting it down.
@pytest.mark.asyncio(loop_scope="function")
async def test_a_writer_cancelled_while_opening_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for attempt in range(20):
        task = asyncio.create_task(storage.create_writer(f"postgresql/db_{attempt}.zip"))
        await asyncio.sleep(0)  # the file is being created in a worker thread now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Every worker thread has finished (each file is created by now)...
    await asyncio.get_running_loop().shutdown_default_executor()
    # ...and each file is aborted once its creation is seen done on the loop.
    await wait_until(lambda: not any((tmp_path / "postgresql").iterdir()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    assert [p.name for p in (tmp_path / "postgresql").iterdir()] == []


async def test_a_writer_commits_under_its_final_name(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = await storage.create_writer("mysql/db.zip")
    os.write(writer.fileno(), b"PK")
    await writer.commit()
    assert [p.name for p in (tmp_path / "mysql").iterdir()] == ["db.zip"]
    assert (tmp_path / "mysql" / "db.zip").read_bytes() == b"PK"
