"""Who is calling: the authenticated account as the request path needs it, and a cache of it.

Every authenticated request used to load its user row before doing its own work; on SQLite
that lookup costs as much as the request itself (each statement is a thread hop through
aiosqlite). The caller's id and role change only through this process (role change,
deletion: both ``forget`` the entry after their commit) or, rarely, through the
``create-admin`` command of another process, which only ever adds rights; a short time to
live bounds how long such an outside change goes unseen.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from backup_api.exceptions import Forbidden
from backup_api.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an account's id and role, immutable and shared between requests."""

    id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


def ensure_owner(user: Principal, owner_id: int | None) -> None:
    """403 unless ``user`` owns the record (``owner_id``) or is an admin."""
    if not user.is_admin and owner_id != user.id:
        raise Forbidden()


class PrincipalCache:
    """user id -> Principal, each entry kept at most ``ttl`` seconds, at most ``size`` entries."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[int, tuple[float, Principal]] = OrderedDict()

    def get(self, user_id: int) -> Principal | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        expires, principal = entry
        if time.monotonic() >= expires:
            del self._entries[user_id]
            return None
        return principal

    def put(self, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        self._entries[principal.id] = (time.monotonic() + self.ttl, principal)
        self._entries.move_to_end(principal.id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
