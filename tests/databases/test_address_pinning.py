"""MySQL clients are given the address the service resolved and checked, never the
registered name to resolve again (the PostgreSQL counterpart, ``hostaddr``, is in
test_security_injection.py)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

from backup_api.dumpers.base import ConnectionInfo
from backup_api.dumpers.mysql import defaults_file
from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled, snapshot


def test_the_mysql_option_file_names_the_pinned_address(tmp_path: Path) -> None:
    conn = ConnectionInfo(
        host="db.example.com",
        port=3306,
        username="u",
        password="secret",
        db_name="d",
        pinned_address="192.0.2.10",
    )
    lines = defaults_file(conn, tmp_path).content.decode().splitlines()
    assert 'host="192.0.2.10"' in lines
    assert not any("db.example.com" in line for line in lines)


def host_recording_tool(directory: Path, name: str, log: Path) -> str:
    """The real ``name``, run as given, after writing to ``log`` the ``host=`` line of the
    option file it was handed (a pipe, read once: its content is handed on through
    another; the password goes to no file)."""
    real = shutil.which(name)
    assert real is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        "#!/bin/bash\n"
        f'[ "$1" = --version ] && exec "{real}" "$@"\n'
        'file="${1#--defaults-extra-file=}"\n'
        'content="$(cat "$file")"\n'
        f'printf "%s\\n" "$content" | grep "^host=" >> "{log}"\n'
        'exec 9< <(printf "%s\\n" "$content")\n'
        "shift\n"
        f'exec "{real}" --defaults-extra-file=/dev/fd/9 "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_a_mysql_job_connects_to_the_checked_address(
    mysql_server: Any, tmp_path: Path
) -> None:
    """Registered by name (``localhost``, which may also resolve to ``::1``) with only
    127.0.0.1 allowed: every client run is given 127.0.0.1, the address that was checked
    (``mysql`` for the registration's probe, then ``mysqldump`` and ``mysql`` for the jobs)."""
    assert mysql_server.host == "127.0.0.1"
    source = unique_name("pin")
    expected = create_filled(mysql_server, source)
    log = tmp_path / "hosts.log"
    tools = tmp_path / "tools"
    settings = make_settings(
        tmp_path,
        allowed_db_hosts=["127.0.0.1"],
        mysqldump_path=host_recording_tool(tools, "mysqldump", log),
        mysql_path=host_recording_tool(tools, "mysql", log),
    )
    try:
        async with running_app(settings) as (_, client):
            api = await Api(client).signup()
            database = await api.add_database(mysql_server, source, host="localhost")
            assert database["host"] == "localhost"
            backup = await api.wait_backup((await api.start_backup(database["id"]))["id"])
            assert backup["status"] == "completed", backup["error_msg"]
            response = await api.post(
                f"/api/backups/{backup['id']}/restore",
                json={"database_id": database["id"], "confirm": source},
            )
            restore = await api.wait_restore(response.json()["restore"]["id"])
            assert restore["status"] == "completed", restore["error_msg"]
        # The backup may also have asked the server for its size beside the dump (a first
        # backup's estimate, see jobs.progress): one more run, pinned the same.
        runs = log.read_text().splitlines()
        assert set(runs) == {'host="127.0.0.1"'}
        assert len(runs) >= 3
        assert snapshot(mysql_server, source) == expected
    finally:
        mysql_server.drop_database(source)
