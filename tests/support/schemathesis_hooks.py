"""schemathesis hooks for tests/api/test_schemathesis.py, loaded through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from backup_api.archiving.agecrypt import generate_identity, parse_recipient
from backup_api.cron import EXPRESSION_PATTERN, CronError, normalize_expression
from backup_api.models import check_endpoint
from backup_api.services.databases import PLACE_FIELDS
from backup_api.services.storages import PLACE_FIELDS as STORAGE_PLACE_FIELDS
from tests.support.servers import RESERVED_PORTS

# email_validator refuses addresses on special-use domains (RFC 6761), which hypothesis
# generates as valid e-mails; the document cannot say so with `format: email`.
SPECIAL_USE_DOMAIN = re.compile(
    r"(?:^|[.@])(?:arpa|invalid|local|localhost|onion|test)\.?$", re.IGNORECASE
)


CRON_SHAPE = re.compile(EXPRESSION_PATTERN)
#: A real age recipient, for generated ones of the right shape but a wrong checksum.
RECIPIENT = generate_identity()[1]


def _recipient(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parse_recipient(value)
    except ValueError:
        return RECIPIENT if re.fullmatch(r"age1[0-9a-z]{58}", value) else value
    return value


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
        case.body = body = {**body, "port": "9" if isinstance(body["port"], str) else 9}
    path = case.path
    put = case.method.upper() == "PUT" and isinstance(body, dict)
    # Moving a registered database (type, host, port, username) needs its password in the
    # same request, a rule on the stored record that no schema can state: a generated PUT
    # without a password keeps the database where it is. The same for a storage (endpoint,
    # bucket) and its secret key.
    if put and path.startswith("/api/databases/") and "password" not in body:
        case.body = body = {key: value for key, value in body.items() if key not in PLACE_FIELDS}
    if put and path.startswith("/api/storages/") and "secret_access_key" not in body:
        case.body = body = {
            key: value for key, value in body.items() if key not in STORAGE_PLACE_FIELDS
        }
    # A backup needs a destination: without a storage (generated ids name none), it keeps
    # its local copy.
    if (
        path.startswith("/api/databases")
        and isinstance(body, dict)
        and body.get("keep_local") is False
        and not body.get("storage_ids")
    ):
        case.body = body = {key: value for key, value in body.items() if key != "keep_local"}
    # A generated storage's endpoint could be any host: a valid one is replaced by a port
    # where nothing listens, so that its test never reaches out.
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if path.startswith("/api/storages") and isinstance(endpoint, str) and len(endpoint) <= 1024:
        try:
            check_endpoint(endpoint)
        except ValueError:
            pass
        else:
            case.body = body = {**body, "endpoint": "http://127.0.0.1:9"}
    # A notification channel's URL is an http(s) URL or an apprise one depending on the
    # channel's type, which no schema pattern states: a generated one is replaced by a
    # local port where nothing listens (a PUT, whose channel's type the fuzzer does not
    # know, keeps the stored one). The same for a schedule's heartbeat URL.
    targets = {"webhook": "http://127.0.0.1:9/hook", "apprise": "json://127.0.0.1:9/x"}
    url = body.get("url") if isinstance(body, dict) else None
    if path.startswith("/api/notifications") and isinstance(url, str):
        if put:
            case.body = body = {key: value for key, value in body.items() if key != "url"}
        elif isinstance(body.get("type"), str) and body["type"] in targets:
            case.body = body = {**body, "url": targets[body["type"]]}
    if isinstance(body, dict) and isinstance(body.get("heartbeat_url"), str):
        case.body = body = {**body, "heartbeat_url": "http://127.0.0.1:9/ping"}
    # A schedule's pattern states an expression's shape, not each field's range (minute
    # 0-59, a range's start before its end...): a generated one of the right shape that
    # cron cannot read is replaced by one it can.
    # An age recipient's pattern states its shape, not its Bech32 checksum: a generated
    # one of the right shape is replaced by a real one. A generated identity cannot open
    # the fuzzer's backup (and is refused, 400, as documented): left out.
    encryption = body.get("encryption") if isinstance(body, dict) else None
    if isinstance(encryption, dict) and isinstance(encryption.get("recipients"), list):
        recipients = [_recipient(value) for value in encryption["recipients"]]
        case.body = body = {**body, "encryption": {**encryption, "recipients": recipients}}
    if isinstance(body, dict) and "identity" in body and "database_id" in body:
        case.body = body = {key: value for key, value in body.items() if key != "identity"}
    cron = body.get("cron") if isinstance(body, dict) else None
    if isinstance(cron, str) and len(cron) <= 128 and CRON_SHAPE.fullmatch(cron):
        try:
            normalize_expression(cron)
        except CronError:
            case.body = {**case.body, "cron": "0 3 * * *"}


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    email = body.get("email") if isinstance(body, dict) else None
    return not (isinstance(email, str) and SPECIAL_USE_DOMAIN.search(email))
