"""schemathesis, run as its users run it (``schemathesis run``), against the live OpenAPI
document of a real service process: every default check (no 500, responses as documented,
valid requests accepted and invalid ones refused, 405 with the right ``Allow``, auth
enforced where declared, deleted resources gone...) in every phase (examples, coverage,
fuzzing, stateful)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apphelpers import PASSWORD, unique_name
from tests.support.sample_data import create_filled
from tests.support.serverproc import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = """
[headers]
Authorization = "Bearer ${BACKUP_API_FUZZ_TOKEN}"

# A database's retention policy and schedule are optional sub-resources: deleting one that
# the database does not have is a 404 by design, not a resource the creation of the
# database failed to make.
[[operations]]
include-name = "DELETE /api/databases/{database_id}/retention"
checks.ensure_resource_availability.enabled = false

[[operations]]
include-name = "DELETE /api/databases/{database_id}/schedule"
checks.ensure_resource_availability.enabled = false

# The fuzzer's storages point at an address where nothing answers: reading a bucket through
# one is a documented 502 (the service stands between the client and the storage), never a
# 500.
[[operations]]
include-name = "POST /api/storages/{storage_id}/import"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]

[[operations]]
include-name = "GET /api/backups/{backup_id}/download"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]
"""


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, pg_server: Any, mysql_server: Any
) -> Iterator[dict[str, Any]]:
    """A service whose databases may only be the suite's servers, with an admin, one
    registered database and a completed backup of it for the fuzzer to find."""
    workdir = Path(tmp_path_factory.mktemp("schemathesis"))
    hosts = sorted({pg_server.host, mysql_server.host})
    server = ServerProcess(workdir, allowed_db_hosts=",".join(hosts))
    source = unique_name("fuzz")
    create_filled(pg_server, source)
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
                "db_name": source,
            }
            created = client.post("/api/databases", json=database, headers=headers)
            assert created.status_code == 201, created.text
            database_id = created.json()["database"]["id"]
            started = client.post(f"/api/backups/database/{database_id}", headers=headers)
            assert started.status_code == 202, started.text
            backup_url = f"/api/backups/{started.json()['backup']['id']}"
            deadline = time.monotonic() + 60
            while (backup := client.get(backup_url, headers=headers).json()["backup"])[
                "status"
            ] == "pending":
                assert time.monotonic() < deadline, backup
                time.sleep(0.1)
            assert backup["status"] == "completed", backup
            operations = sum(
                len(methods) for methods in client.get("/openapi.json").json()["paths"].values()
            )
        yield {"url": server.url, "token": token, "workdir": workdir, "operations": operations}
    finally:
        server.stop()
        pg_server.drop_database(source)


def test_api_passes_schemathesis_default_checks(live: dict[str, Any]) -> None:
    workdir: Path = live["workdir"]
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {
        **os.environ,
        # The token goes through the environment, never a command line.
        "BACKUP_API_FUZZ_TOKEN": live["token"],
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{live['url']}/openapi.json",
        "--max-examples",
        "10",
        "--seed",
        "1",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    # Every operation of the document was exercised, and many requests were made.
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None, output
    assert int(tested.group(1)) == live["operations"], output
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated is not None, output
    assert int(generated.group(1)) >= 20 * live["operations"], output
