"""The audit trail of account events: who, from where, what, and how it ended.

One log line per event on the ``backup_api.audit`` logger, its fields also attached to the
record (``record.audit``) for a structured handler. Never a password or a token: an
account is named by its id, a personal token by its id, and an e-mail that fails the
address syntax (a password typed in the wrong field) is not written at all.
"""

from __future__ import annotations

import logging
from typing import Any

from backup_api.models import normalize_email

logger = logging.getLogger("backup_api.audit")

LOGIN = "login"
PASSWORD_CHANGE = "password_change"  # noqa: S105 (action names, not secrets)
API_TOKEN_CREATE = "api_token_create"  # noqa: S105
API_TOKEN_REVOKE = "api_token_revoke"  # noqa: S105
API_TOKEN_USE = "api_token_use"  # noqa: S105

SUCCESS = "success"
FAILURE = "failure"
THROTTLED = "throttled"


def loggable_email(value: str) -> str:
    try:
        return normalize_email(value)
    except ValueError:
        return "<invalid>"


def record(action: str, outcome: str, *, client: str | None, **fields: Any) -> None:
    """Log one event; ``fields`` (user_id, token_id, email, reason...) must hold no secret."""
    event = {"action": action, "outcome": outcome, "client": client, **fields}
    level = logging.INFO if outcome == SUCCESS else logging.WARNING
    text = " ".join(f"{key}={value}" for key, value in event.items() if value is not None)
    logger.log(level, "audit %s", text, extra={"audit": event})
