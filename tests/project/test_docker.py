"""The Docker files, read (no engine can build an image here), and the health probe they
run, run for real against a service process."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from backup_api.healthcheck import health_url
from tests.support.serverproc import free_port, server_process

ROOT = Path(__file__).resolve().parents[2]
PROBE = ["python", "-m", "backup_api.healthcheck"]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def probe(port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_API_")}
    # As in the image: the service listens on every interface, the probe asks locally.
    env.update({"BACKUP_API_HOST": "0.0.0.0", "BACKUP_API_PORT": str(port)})
    return subprocess.run(
        [sys.executable, *PROBE[1:]], env=env, capture_output=True, text=True, timeout=30
    )


def test_image_and_compose_service_have_the_health_probe() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The instruction, its continuation lines included.
    healthcheck = re.search(r"^HEALTHCHECK (?:[^\n]*\\\n)*\s*CMD (\[[^\n]*\])$", dockerfile, re.M)
    assert healthcheck is not None
    assert yaml.safe_load(healthcheck.group(1)) == PROBE
    assert compose()["services"]["api"]["healthcheck"]["test"] == ["CMD", *PROBE]


def test_compose_publishes_on_the_loopback_only() -> None:
    services = compose()["services"]
    assert services["api"]["ports"] == ["127.0.0.1:3000:3000"]
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), (name, mapping)
    assert services["api"]["environment"]["BACKUP_API_ALLOW_REGISTRATION"] == "false"


def test_dockerignore_keeps_local_state_out_and_what_the_image_needs_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        for pattern in (p.rstrip("/") for p in patterns):
            if pattern.startswith("**/"):
                if any(fnmatch.fnmatch(part, pattern[3:]) for part in path.split("/")):
                    return True
            elif fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                return True
        return False

    for path in (".venv", "db/backups", ".git", ".pytest_cache", "src/backup_api/__pycache__"):
        assert ignored(path), path
    assert not ignored("src/backup_api/static/swagger/swagger-ui.css")
    copied = re.findall(r"^COPY (.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for line in copied:
        for source in line.split():
            assert not ignored(source), source


def test_probe_reports_a_healthy_service_and_a_dead_one(tmp_path: Path) -> None:
    assert health_url({"BACKUP_API_HOST": "0.0.0.0", "BACKUP_API_PORT": "3000"}) == (
        "http://127.0.0.1:3000/health"
    )
    assert health_url({"BACKUP_API_HOST": "::"}) == "http://[::1]:3000/health"
    with server_process(tmp_path) as server:
        server.start()
        healthy = probe(server.port)
        assert healthy.returncode == 0, healthy.stderr
        server.stop()
        dead = probe(server.port)
    assert dead.returncode == 1
    assert dead.stderr.startswith("unhealthy: ")
    assert probe(free_port()).returncode == 1
