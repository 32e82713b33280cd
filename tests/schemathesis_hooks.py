"""schemathesis hooks for tests/test_schemathesis.py, loaded through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from tests.servers import RESERVED_PORTS

# email_validator refuses addresses on special-use domains (RFC 6761), which hypothesis
# generates as valid e-mails; the document cannot say so with `format: email`.
SPECIAL_USE_DOMAIN = re.compile(
    r"(?:^|[.@])(?:arpa|invalid|local|localhost|onion|test)\.?$", re.IGNORECASE
)


def _port_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """The allowed hosts (the suite's servers' address) cannot tell ports apart: keep a
    generated database off the machine's own services on that address."""
    body = case.body
    if isinstance(body, dict) and _port_number(body.get("port")) in RESERVED_PORTS:
        case.body = {**body, "port": "9" if isinstance(body["port"], str) else 9}


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    email = body.get("email") if isinstance(body, dict) else None
    return not (isinstance(email, str) and SPECIAL_USE_DOMAIN.search(email))
