"""The audit trail: who, from where, did what to which record, and how it ended.

Each event is one log line on the ``backup_api.audit`` logger (its fields also attached
to the record, ``record.audit``, which the JSON log format writes out) and one row of
``audit_events`` in the metadata database. The row is written by ``AuditWriter`` in the
background, in batches, so that a request does not wait for it: entries recorded within
a request are all stored once the writer runs next (``flush`` waits for that; the
listing and the shutdown call it), and an entry is lost only if the metadata database
refuses the write, which the log then says (the entry's own line stays).

Never a password or a token: an account is named by its id, a personal token by its id,
and an e-mail that fails the address syntax (a password typed in the wrong field) is not
written at all. The actor and the client's address default to the request's (see
``logcontext``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from backup_api import logcontext
from backup_api.db import Metadata
from backup_api.models import normalize_email
from backup_api.repositories import audit as audit_records

logger = logging.getLogger("backup_api.audit")

# --- actions
LOGIN = "login"
REGISTER = "register"
PASSWORD_CHANGE = "password_change"  # noqa: S105 (action names, not secrets)
API_TOKEN_CREATE = "api_token_create"  # noqa: S105
API_TOKEN_REVOKE = "api_token_revoke"  # noqa: S105
API_TOKEN_USE = "api_token_use"  # noqa: S105
USER_ROLE_CHANGE = "user_role_change"
USER_DELETE = "user_delete"
DATABASE_CREATE = "database_create"
DATABASE_UPDATE = "database_update"
DATABASE_DELETE = "database_delete"
BACKUP_CREATE = "backup_create"
BACKUP_DELETE = "backup_delete"
BACKUP_DOWNLOAD = "backup_download"
BACKUP_VERIFY = "backup_verify"
BACKUP_PIN = "backup_pin"
RESTORE_CREATE = "restore_create"
RESTORE_DELETE = "restore_delete"
SCHEDULE_UPDATE = "schedule_update"
SCHEDULE_DELETE = "schedule_delete"
RETENTION_UPDATE = "retention_update"
RETENTION_DELETE = "retention_delete"
STORAGE_CREATE = "storage_create"
STORAGE_UPDATE = "storage_update"
STORAGE_DELETE = "storage_delete"
STORAGE_IMPORT = "storage_import"
NOTIFICATION_CREATE = "notification_create"
NOTIFICATION_UPDATE = "notification_update"
NOTIFICATION_DELETE = "notification_delete"

# --- what an action is done to
USER = "user"
DATABASE = "database"
BACKUP = "backup"
RESTORE = "restore"
STORAGE = "storage"
API_TOKEN = "api_token"  # noqa: S105
NOTIFICATION = "notification"

# --- outcomes
SUCCESS = "success"
FAILURE = "failure"
THROTTLED = "throttled"


def loggable_email(value: str) -> str:
    try:
        return normalize_email(value)
    except ValueError:
        return "<invalid>"


def record(
    action: str,
    outcome: str,
    *,
    client: str | None = None,
    user_id: int | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
    **details: Any,
) -> None:
    """Log and store one event. ``user_id`` (who acted) and ``client`` default to the
    request's caller and address; ``details`` (e-mail, reason, counts...) must hold no
    secret, and only JSON values (``None`` ones are left out)."""
    context = logcontext.current()
    if context is not None:
        client = client if client is not None else context.client
        user_id = user_id if user_id is not None else context.user_id
    kept = {key: value for key, value in details.items() if value is not None}
    event: dict[str, Any] = {
        "action": action,
        "outcome": outcome,
        "client": client,
        "user_id": user_id,
        "target_type": target_type,
        "target_id": target_id,
        **kept,
    }
    level = logging.INFO if outcome == SUCCESS else logging.WARNING
    text = " ".join(f"{key}={value}" for key, value in event.items() if value is not None)
    logger.log(level, "audit %s", text, extra={"audit": event})
    if context is not None and context.audit is not None:
        context.audit.submit(
            {
                "time": datetime.now(UTC),
                "user_id": user_id,
                "client": client,
                "request_id": context.request_id,
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "outcome": outcome,
                "details": kept,
            }
        )


class AuditWriter:
    """Stores submitted entries in the background, a batch per metadata write, in the
    order they came."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._closing = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    def submit(self, entry: dict[str, Any]) -> None:
        self._pending.append(entry)
        if self._loop is None:
            return
        if threading.get_ident() == self._thread:
            self._wake.set()
        else:
            # A unit of work run in a thread: the event belongs to the loop.
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Return once every entry submitted so far is stored (or its write failed)."""
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._store(batch)

    async def _store(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self._metadata.write(lambda c: audit_records.insert_many(c, batch))
        except Exception:
            # Their log lines were written already: the trail still has them.
            logger.exception("%d audit entries could not be stored", len(batch))

    async def close(self) -> None:
        """Stop the background writer once it stored what it had (not cancelled: a
        write cut short would roll its batch back), then store what came meanwhile."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
