"""Process and thread priorities: niceness, and the scheduling group's under autogroup.

Light on purpose (``os`` only): the archive process imports it (see ``archiving.child``).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["lower_priority", "set_group_niceness", "set_session_niceness"]


def lower_priority(who: int, nice: int) -> None:
    """Make a thread (its native id; per-thread on Linux) or a process (0: the caller) at
    least ``nice``; never raises its priority back. Best effort."""
    if not nice:
        return
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, who)
        os.setpriority(os.PRIO_PROCESS, who, max(current, nice))


def set_group_niceness(pid: int, nice: int) -> None:
    """Set the niceness of ``pid``'s session's scheduling group (best effort).

    Under autogroup scheduling a session competes with other sessions as one group, and a
    process's own niceness only orders it within its group: a process alone in its session
    would ignore it. A kernel without autogroup has no such file.
    """
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as autogroup:
        autogroup.write(str(nice))


def set_session_niceness(pid: int, nice: int) -> None:
    """Set ``pid``'s niceness and its session's group's (best effort)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    set_group_niceness(pid, nice)
