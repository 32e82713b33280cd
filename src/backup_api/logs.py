"""Logging setup: one format (plain text, or one JSON object a line), and the
secret-redacting filter on every handler, uvicorn's included."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

from backup_api import logcontext
from backup_api.redact import RedactingFilter

_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "backup_api")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the request id, user id
    and job id when the line was written within a request or a job. The message is read
    after the handler's filters ran, so it is the redacted one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = logcontext.current()
        if context is not None:
            for key in ("request_id", "user_id", "job_id"):
                value = getattr(context, key)
                if value is not None:
                    line[key] = value
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            line["audit"] = audit
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's own logging setup, its formatters made JSON ones when asked: its first
    lines (the process starting, the socket bound) come before the application's lifespan
    could change them."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"] = {
            name: {"()": "backup_api.logs.JsonFormatter"} for name in config["formatters"]
        }
    return config


def install_redaction() -> None:
    redacting = RedactingFilter()
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redacting)


def install_format(log_format: str) -> None:
    """JSON lines on every handler of ours and of uvicorn (its access lines too); plain
    text keeps each handler's own format (uvicorn's colours, the root's text)."""
    if log_format != "json":
        return
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter())


def configure(level: str, log_format: str = "text") -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(log_format))
        root.addHandler(handler)
    logging.getLogger("backup_api").setLevel(level.upper())
    install_format(log_format)
    install_redaction()
