"""A clock that tests move by hand: the service's time travels instead of passing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class TravelClock:
    """``backup_api.clock.Clock`` whose time only changes when the test says so.

    Every loop that waits on it (the scheduler, the retention sweep) is known by its wake
    event. ``settled()`` returns once each of them is asleep again having seen the current
    time: what was due then has been started (the backups themselves run in real time).
    """

    def __init__(self, start: datetime | None = None, *, loops: int = 2) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        # How many loops settle: an application's scheduler and retention sweep. Counted,
        # so that one loop asleep before the other has first looked is not "settled".
        self._expected = loops
        # Each waiting loop's wake event, and whether it is asleep at the current time.
        self._loops: dict[asyncio.Event, bool] = {}
        self._all_asleep = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def travel_to(self, instant: datetime) -> None:
        assert instant >= self._now, "time only goes forward"
        self._now = instant
        # Each loop's own wake event: it looks at the new time at once.
        for wake in self._loops:
            self._loops[wake] = False
            wake.set()
        self._update()

    def travel(self, delta: timedelta) -> None:
        self.travel_to(self._now + delta)

    async def sleep_until(self, deadline: datetime, wake: asyncio.Event) -> None:
        self._loops[wake] = False
        self._update()
        try:
            while self._now < deadline and not wake.is_set():
                self._loops[wake] = True
                self._update()
                await wake.wait()
        except asyncio.CancelledError:
            # The loop is stopping: nobody waits for it any more.
            self._loops.pop(wake, None)
            self._update()
            raise
        if wake in self._loops:
            self._loops[wake] = False
            self._update()

    def _update(self) -> None:
        if len(self._loops) >= self._expected and all(self._loops.values()):
            self._all_asleep.set()
        else:
            self._all_asleep.clear()

    async def settled(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self._all_asleep.wait(), timeout)
