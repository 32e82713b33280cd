"""Standard Webhooks (https://www.standardwebhooks.com/): the secret, the body, the
signature and the headers of one attempt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from backup_api.models import format_timestamp

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix)


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes; the decoded bytes are the HMAC key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def body(event_type: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body every attempt of one delivery sends, byte for byte."""
    payload = {"type": event_type, "timestamp": format_timestamp(at), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signature(secret: str, message_id: str, timestamp: int, content: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.{content}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, content: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, content),
    }
