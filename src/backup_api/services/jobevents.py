"""A running job watched live: the Server-Sent Events of ``GET /api/backups/{id}/events``
and ``GET /api/restores/{id}/events``.

Each stream sends its job's document (what ``GET`` of the job answers) as a ``progress``
event every ``progress_interval_seconds`` while the job is pending, then the final record
as a ``done`` event, and ends. Nothing is held for a stream beyond its own coroutine: the
figures come from the progress board and the record from the metadata database, read
again at each tick (ownership included); a client that goes away cancels the coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from sse_starlette import ServerSentEvent

from backup_api.exceptions import AppError
from backup_api.jobs.progress import ProgressBoard
from backup_api.jobs.queue import JobKind
from backup_api.models import JobStatus

#: Reads the job's document and its status (raises ``AppError`` if it is no longer the
#: caller's to see, or gone).
Fetch = Callable[[], Awaitable[tuple[bytes, str]]]

#: A comment line this often keeps proxies from closing a quiet stream (a queued job).
PING_SECONDS = 15
PROGRESS = "progress"
DONE = "done"
ERROR = "error"


async def job_events(
    first: tuple[bytes, str],
    fetch: Fetch,
    *,
    board: ProgressBoard,
    kind: JobKind,
    job_id: int,
    interval: float,
) -> AsyncIterator[ServerSentEvent]:
    """The events of one job, from its ``first`` document (read by the route, so a
    refusal is an HTTP status rather than an event)."""
    document, status = first
    while status == JobStatus.PENDING.value:
        yield ServerSentEvent(data=document.decode(), event=PROGRESS)
        entry = board.get(kind, job_id)
        if entry is None:
            await asyncio.sleep(interval)
        else:
            # The job's end wakes the stream at once: its record is final by then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.closed.wait(), interval)
        try:
            document, status = await fetch()
        except AppError as exc:  # deleted meanwhile (or no longer the caller's)
            yield ServerSentEvent(data=json.dumps({"error": exc.message}), event=ERROR)
            return
    yield ServerSentEvent(data=document.decode(), event=DONE)
