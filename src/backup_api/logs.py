"""Logging setup: one format, and the secret-redacting filter on every handler."""

from __future__ import annotations

import logging

from backup_api.redact import RedactingFilter

_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "backup_api")


def install_redaction() -> None:
    redacting = RedactingFilter()
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)


def configure(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("backup_api").setLevel(level.upper())
    install_redaction()
