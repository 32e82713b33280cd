"""Property-based run of schemathesis against the live OpenAPI: no 500, and every response
matches what the document says (status, content type, headers, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.apphelpers import PASSWORD
from tests.serverproc import ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[dict[str, str]]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("schemathesis")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = {"email": "fuzz@example.com", "password": PASSWORD, "role": "admin"}
            assert client.post("/auth/register", json=body).status_code == 201
            login = {"email": body["email"], "password": PASSWORD}
            token = client.post("/auth/login", json=login).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            database = {
                "name": "fuzz",
                "type": "postgresql",
                "host": pg_server.host,
                "port": pg_server.port,
                "username": pg_server.user,
                "password": pg_server.password,
                "db_name": "postgres",
            }
            created = client.post("/api/databases", json=database, headers=headers)
            assert created.status_code == 201
            backup = client.post("/api/backups/database/1", headers=headers)
            assert backup.status_code == 202
        yield {"url": server.url, "token": token}
    finally:
        server.stop()


def test_api_conforms_to_its_openapi(live: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{live['url']}/openapi.json")
    headers = {"Authorization": f"Bearer {live['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    statuses: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(base_url=live["url"], headers=headers, checks=CHECKS)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        run()
    # The run really exercised the API: many calls, successes and refusals alike.
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert {200, 400, 404} <= statuses.keys(), statuses
