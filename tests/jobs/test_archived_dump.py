"""What a backup archives is what the dump tool writes: the API backup's ZIP holds the
bare tool's dump byte for byte (pg_dump's random ``\\restrict`` key lines aside), and its
``dump_size`` is that dump's length.

The bare tools run here with the options the service gives them (plain SQL, the same
switches), against the suite's real servers; a dumper that dropped, added or reordered
anything (a filter, a header, a lost chunk at a buffer's edge) fails the comparison.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from tests.support.apphelpers import Api, unique_name
from tests.support.sample_data import create_filled
from tests.support.servers import mysql_option_value, pgpass_escape

#: pg_dump (15.14 and later) opens and closes a plain dump with these lines, each with a
#: key drawn at random for every dump.
KEY_LINES = (b"\\restrict ", b"\\unrestrict ")


def without_keys(dump: bytes) -> tuple[bytes, int]:
    """The dump without its key lines, and how many there were."""
    lines = dump.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(KEY_LINES)]
    return b"".join(kept), len(lines) - len(kept)


def archived(backup: dict[str, Any]) -> bytes:
    with zipfile.ZipFile(backup["filepath"]) as archive:
        (entry,) = archive.infolist()
        return archive.read(entry)


def bare_pg_dump(server: Any, name: str, workdir: Path) -> bytes:
    passfile = workdir / "pgpass"
    passfile.write_text(f"*:*:*:*:{pgpass_escape(server.password)}\n")
    passfile.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = str(passfile)
    argv = [
        "pg_dump",
        "--no-password",
        "--format=plain",
        "--encoding=UTF8",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        f"--host={server.host}",
        f"--port={server.port}",
        f"--username={server.user}",
        f"--dbname={name}",
    ]
    return subprocess.run(argv, env=env, capture_output=True, check=True).stdout


def bare_mysqldump(server: Any, name: str, workdir: Path) -> bytes:
    defaults = workdir / "my.cnf"
    defaults.write_text(
        f'[client]\nuser="{server.user}"\npassword={mysql_option_value(server.password)}\n'
        f"host={server.host}\nport={server.port}\nprotocol=TCP\n"
    )
    defaults.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env["HOME"] = str(workdir)
    argv = [
        "mysqldump",
        f"--defaults-extra-file={defaults}",
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--triggers",
        "--routines",
        "--events",
        "--no-tablespaces",
        "--skip-dump-date",
        "--",
        name,
    ]
    return subprocess.run(argv, env=env, capture_output=True, check=True).stdout


async def test_postgresql_archive_holds_the_bare_dump(
    pg_server: Any, alice: Api, tmp_path: Path
) -> None:
    name = unique_name("archived")
    create_filled(pg_server, name)
    database = await alice.add_database(pg_server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]

    dump = archived(backup)
    bare = bare_pg_dump(pg_server, name, tmp_path)
    assert backup["dump_size"] == len(dump)
    dump_body, dump_keys = without_keys(dump)
    bare_body, bare_keys = without_keys(bare)
    # Both carry the key lines, or neither (a pg_dump older than 15.14).
    assert dump_keys == bare_keys in (0, 2)
    assert dump_body == bare_body
    # The keys are the only difference: same length, so the sizes match too.
    assert backup["dump_size"] == len(bare)


async def test_mysql_archive_holds_the_bare_dump(
    mysql_server: Any, alice: Api, tmp_path: Path
) -> None:
    name = unique_name("archived")
    create_filled(mysql_server, name)
    database = await alice.add_database(mysql_server, name)
    backup = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
    assert backup["status"] == "completed", backup["error_msg"]

    dump = archived(backup)
    assert backup["dump_size"] == len(dump)
    assert dump == bare_mysqldump(mysql_server, name, tmp_path)
