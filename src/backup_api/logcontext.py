"""What a log line and an audit entry know of their surroundings: the request (its id,
its client's address, the caller once authenticated) or the job they belong to.

One context variable holds a small mutable object: the middleware sets it for each
request, the job runner for each job. Mutable, so that the caller found by a dependency
(which FastAPI may run in a copied context) is seen by the rest of the request.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Protocol


class AuditSink(Protocol):
    """Where audit entries go to be stored (``audit.AuditWriter``)."""

    def submit(self, entry: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class LogContext:
    request_id: str | None = None
    client: str | None = None
    user_id: int | None = None
    #: ``backup-12``, ``restore-3``: the job a line was written for.
    job_id: str | None = None
    audit: AuditSink | None = None


_current: ContextVar[LogContext | None] = ContextVar("backup_api_log_context", default=None)


def current() -> LogContext | None:
    return _current.get()


def enter(context: LogContext) -> Token[LogContext | None]:
    return _current.set(context)


def leave(token: Token[LogContext | None]) -> None:
    _current.reset(token)


def set_user(user_id: int) -> None:
    """The request's caller, once known (the authentication dependency)."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id
