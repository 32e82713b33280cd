"""A clock that tests move by hand: the scheduler's time travels instead of passing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class TravelClock:
    """``backup_api.clock.Clock`` whose time only changes when the test says so.

    ``settled()`` returns once the scheduler is asleep again having seen the current
    time: what was due then has been started (the backups themselves run in real time).
    """

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: set[asyncio.Event] = set()
        self._asleep = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def travel_to(self, instant: datetime) -> None:
        assert instant >= self._now, "time only goes forward"
        self._now = instant
        self._asleep.clear()
        # A sleeper's own wake event: it looks at the new time at once.
        for wake in self._sleepers:
            wake.set()

    def travel(self, delta: timedelta) -> None:
        self.travel_to(self._now + delta)

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        self._sleepers.add(wake)
        try:
            while self._now < deadline and not wake.is_set():
                self._asleep.set()
                await wake.wait()
        finally:
            self._sleepers.discard(wake)
            self._asleep.clear()

    async def settled(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self._asleep.wait(), timeout)
