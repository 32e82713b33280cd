"""The system clock's wait: woken early, ended by its deadline, and stopped by a cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from backup_api.clock import SystemClock


async def test_a_cancel_arriving_with_a_wake_up_still_stops_the_sleeper() -> None:
    """A loop being stopped (cancelled) just as something wakes it must end, not sleep on."""
    clock = SystemClock()
    wake = asyncio.Event()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(hours=1), wake))
    await asyncio.sleep(0)  # the sleeper is now waiting on ``wake``
    wake.set()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert sleeper.cancelled()


async def test_a_wake_up_ends_the_sleep_early() -> None:
    clock = SystemClock()
    wake = asyncio.Event()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + timedelta(hours=1), wake))
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(sleeper, 10)
    assert sleeper.done()
    assert not sleeper.cancelled()


async def test_the_deadline_ends_the_sleep() -> None:
    clock = SystemClock()
    wake = asyncio.Event()
    deadline = clock.now() + timedelta(milliseconds=50)
    await clock.sleep_until(deadline, wake)
    assert clock.now() >= deadline
    assert not wake.is_set()
