"""Tool versions for the health report: real scripts standing in for the tools, really run.

Each fake tool appends a line to its own log when it runs, so the tests count real process
starts rather than trusting the cache's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backup_api.toolversions import ToolVersions
from tests.support.apphelpers import Api, make_settings, running_app
from tests.support.fakes import fake_tool


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def counted_tool(directory: Path, name: str, body: str) -> Path:
    """A fake tool ``name`` that logs each run to ``<name>.runs``, then runs ``body``."""
    return fake_tool(directory, name, f'echo run >> "{directory / (name + ".runs")}"\n{body}\n')


def runs(script: Path) -> int:
    log = script.with_name(script.name + ".runs")
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_one_probe_per_binary(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    tool = counted_tool(tmp_path, "pg_dump", 'echo "pg_dump (PostgreSQL) 99.1"')
    versions = ToolVersions(executor, dict(os.environ))
    for _ in range(5):
        status = await versions.status([str(tool), "--version"])
        assert status.available is True
        assert status.path == str(tool)
        assert status.version == "pg_dump (PostgreSQL) 99.1"
    assert runs(tool) == 1


async def test_concurrent_checks_share_one_probe(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    tool = counted_tool(tmp_path, "mysqldump", "sleep 0.3; echo mysqldump 10.11")
    versions = ToolVersions(executor, dict(os.environ))
    statuses = await asyncio.gather(*(versions.status([str(tool), "--version"]) for _ in range(10)))
    assert {status.version for status in statuses} == {"mysqldump 10.11"}
    assert runs(tool) == 1


async def test_a_cancelled_check_leaves_the_probe_to_the_others(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    tool = counted_tool(tmp_path, "psql", "sleep 0.3; echo psql 16")
    versions = ToolVersions(executor, dict(os.environ))
    first = asyncio.ensure_future(versions.status([str(tool), "--version"]))
    second = asyncio.ensure_future(versions.status([str(tool), "--version"]))
    await asyncio.sleep(0.1)
    first.cancel()
    assert (await second).version == "psql 16"
    assert runs(tool) == 1


async def test_a_tool_changed_in_place_is_asked_again(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    tool = counted_tool(tmp_path, "mysql", "echo mysql 10.11")
    versions = ToolVersions(executor, dict(os.environ))
    assert (await versions.status([str(tool), "--version"])).version == "mysql 10.11"
    counted_tool(tmp_path, "mysql", "echo mysql 11.4.2")  # an upgrade: new content and size
    assert (await versions.status([str(tool), "--version"])).version == "mysql 11.4.2"
    assert (await versions.status([str(tool), "--version"])).version == "mysql 11.4.2"
    assert runs(tool) == 2


async def test_answers_are_renewed_after_max_age(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    tool = counted_tool(tmp_path, "pg_dump", "echo pg_dump 15")
    versions = ToolVersions(executor, dict(os.environ), max_age=0.2)
    await versions.status([str(tool), "--version"])
    await versions.status([str(tool), "--version"])
    assert runs(tool) == 1
    time.sleep(0.3)
    await versions.status([str(tool), "--version"])
    assert runs(tool) == 2


async def test_missing_and_removed_tools(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    versions = ToolVersions(executor, dict(os.environ))
    missing = await versions.status([str(tmp_path / "nowhere" / "pg_dump"), "--version"])
    assert (missing.available, missing.path, missing.version) == (False, None, None)
    tool = counted_tool(tmp_path, "pg_dump", "echo pg_dump 15")
    assert (await versions.status([str(tool), "--version"])).available is True
    tool.unlink()
    removed = await versions.status([str(tool), "--version"])
    assert (removed.available, removed.path) == (False, None)


async def test_failing_tool_is_unavailable(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    tool = counted_tool(tmp_path, "pg_dump", "echo 'cannot load library' ; exit 127")
    versions = ToolVersions(executor, dict(os.environ))
    status = await versions.status([str(tool), "--version"])
    assert (status.available, status.path) == (False, str(tool))
    # A tool that runs and fails fails the same way next time: it is not asked again.
    await versions.status([str(tool), "--version"])
    assert runs(tool) == 1


async def test_hanging_tool_times_out_and_is_asked_again(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    tool = counted_tool(tmp_path, "mysqldump", "exec sleep 30")
    versions = ToolVersions(executor, dict(os.environ), timeout=0.3)
    began = time.monotonic()
    status = await versions.status([str(tool), "--version"])
    assert time.monotonic() - began < 5
    assert (status.available, status.path, status.version) == (False, str(tool), None)
    # A probe that could not finish says nothing about the next one.
    await versions.status([str(tool), "--version"])
    assert runs(tool) == 2


async def test_health_asks_each_tool_once_and_keeps_service_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's own secrets, as an operator passes them, must not reach the probes.
    secret = "service-secret-" + "9" * 40
    monkeypatch.setenv("BACKUP_API_JWT_SECRET", secret)
    seen = tmp_path / "environ"
    tool = counted_tool(tmp_path, "pg_dump", f'env > "{seen}"; echo "pg_dump (PostgreSQL) 99.1"')
    settings = make_settings(tmp_path, pg_dump_path=str(tool))
    async with running_app(settings) as (_, client):
        admin = await Api(client).signup("root@example.com", role="admin")
        responses = await asyncio.gather(*(admin.get("/health") for _ in range(5)))
        responses.append(await admin.get("/health"))
    for response in responses:
        assert response.status_code == 200
        assert response.json()["tools"][str(tool)] == {
            "available": True,
            "path": str(tool),
            "version": "pg_dump (PostgreSQL) 99.1",
        }
        assert response.json()["tools"]["mysqldump"]["available"] is True
    assert runs(tool) == 1
    environ = seen.read_text()
    assert secret not in environ
    assert "BACKUP_API_JWT_SECRET" not in environ
    # Marked as the service's child, so a restart after a crash would find it.
    assert "BACKUP_API_JOB=health@" in environ
