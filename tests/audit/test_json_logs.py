"""``BACKUP_API_LOG_FORMAT=json``: the service as a real process writes one JSON object a
line, uvicorn's lines included, each request's lines carrying its id and caller and each
job's its id; a failed backup's line says why without the password; the start names the
key files. The redacting filter applies to the JSON lines as to the text ones."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from backup_api.logs import JsonFormatter, configure
from backup_api.redact import RedactingFilter, live_secrets
from tests.support.apphelpers import PASSWORD
from tests.support.serverproc import ServerProcess

DEADLINE = 60.0


def lines_of(server: ServerProcess) -> list[dict[str, Any]]:
    text = server.log.read_text()
    # Every line parses: nothing in the log is left in another format.
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for_line(server: ServerProcess, needle: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE
    while True:
        lines = lines_of(server)
        if any(needle in line["message"] for line in lines):
            return lines
        assert time.monotonic() < deadline, f"{needle!r} never logged:\n{lines}"
        time.sleep(0.05)


def test_json_lines_of_requests_jobs_and_start(tmp_path: Path, pg_server: Any) -> None:
    # A role whose password is also the name of the (missing) database it asks for: the
    # tool's error then quotes the password, and only the redaction keeps it out.
    secret = f"pw_{uuid.uuid4().hex[:16]}"
    role = f"audit_{uuid.uuid4().hex[:8]}"
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'", "postgres")
    server = ServerProcess(tmp_path, log_format="json", log_level="info")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = {"email": "root@example.com", "password": PASSWORD, "role": "admin"}
            assert client.post("/auth/register", json=body).status_code == 201
            login = {"email": "root@example.com", "password": PASSWORD}
            token = client.post("/auth/login", json=login).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            me = client.get("/auth/me", headers={**headers, "X-Request-ID": "trace-me-1"})
            assert me.headers["x-request-id"] == "trace-me-1"
            user_id = me.json()["user"]["id"]
            database = {
                "name": "pg",
                "type": "postgresql",
                "host": pg_server.host,
                "port": str(pg_server.port),
                "username": role,
                "password": secret,
                "db_name": secret,
            }
            response = client.post("/api/databases", json=database, headers=headers)
            assert response.status_code == 201, response.text
            database_request = response.headers["x-request-id"]
            response = client.post(
                f"/api/backups/database/{response.json()['database']['id']}", headers=headers
            )
            assert response.status_code == 202, response.text
            backup_id = response.json()["backup"]["id"]
            deadline = time.monotonic() + DEADLINE
            while True:
                backup = client.get(f"/api/backups/{backup_id}", headers=headers).json()["backup"]
                if backup["status"] != "pending":
                    break
                assert time.monotonic() < deadline, backup
                time.sleep(0.05)
        assert backup["status"] == "failed"
        lines = wait_for_line(server, f"backup {backup_id} failed")
    finally:
        server.stop()
        pg_server.execute(f"DROP ROLE IF EXISTS {role}", "postgres")

    assert secret not in server.log.read_text()
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    # uvicorn's own lines, from before the application started, and its access lines.
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    (access,) = [line for line in lines if line.get("request_id") == "trace-me-1"]
    assert access["logger"] == "uvicorn.access"
    assert "GET /auth/me" in access["message"]
    assert access["user_id"] == user_id
    # The audit line of the database's registration: its request, its caller, its fields.
    audited = [line for line in lines if "audit" in line]
    (created,) = [line for line in audited if line["audit"]["action"] == "database_create"]
    assert created["request_id"] == database_request
    assert created["user_id"] == user_id
    # The failed backup: its reason, as its record holds it (the password masked), and the
    # job's id rather than a request's.
    (failed,) = [line for line in lines if f"backup {backup_id} failed" in line["message"]]
    assert failed["message"] == f"backup {backup_id} failed: {backup['error_msg']}"
    assert 'database "***" does not exist' in failed["message"]
    assert failed["job_id"] == f"backup-{backup_id}"
    assert failed["user_id"] == user_id
    assert "request_id" not in failed
    assert failed["level"] == "WARNING"
    # The start: where the generated keys are, and what losing one costs.
    messages = [line["message"] for line in lines]
    secrets_dir = tmp_path / "secrets"
    assert f"key file generated: {secrets_dir / 'jwt.key'}" in messages
    assert f"key file generated: {secrets_dir / 'encryption.key'}" in messages
    (warning,) = [m for m in messages if m.startswith(f"back up {secrets_dir / 'encryption.key'}")]
    assert "cannot be decrypted" in warning


@pytest.fixture
def captured() -> Any:
    """A handler on the root logger, set up as the service sets up its own."""
    root = logging.getLogger()
    saved = root.handlers[:], logging.getLogger("backup_api").level
    stream: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stream.append(self.format(record))

    root.handlers = [Collect()]
    configure("info", "json")
    yield stream
    root.handlers = saved[0]
    logging.getLogger("backup_api").setLevel(saved[1])


def test_the_json_format_keeps_the_redaction(captured: list[str]) -> None:
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, JsonFormatter)
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    live_secrets.add("hunter2-but-longer")
    try:
        logging.getLogger("backup_api.jobs").warning("tool said: %s", "hunter2-but-longer!")
        try:
            raise ValueError("password hunter2-but-longer refused")
        except ValueError:
            logging.getLogger("backup_api.jobs").exception("unexpected")
    finally:
        live_secrets.remove("hunter2-but-longer")
    first, second = (json.loads(line) for line in captured)
    assert first["message"] == "tool said: ***!"
    assert first["logger"] == "backup_api.jobs"
    assert "request_id" not in first
    assert "password *** refused" in second["exception"]
    assert "hunter2" not in "".join(captured)
