"""What the scheduler and the retention sweep read the time from, and wait with.

The service uses the system clock; tests give their own (``create_app(clock=...)``), which
they move forward instead of sleeping, so a night's schedule, a daylight-saving change or an
hour between sweeps takes no real time.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        """Return at ``deadline``, or as soon as ``wake`` is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        delay = (deadline - self.now()).total_seconds()
        if delay <= 0 or wake.is_set():
            return
        # asyncio.timeout rather than wait_for: on Python 3.11, wait_for swallows a
        # cancellation that arrives as ``wake`` is set, and a loop being stopped then
        # goes back to sleep instead of ending.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()
