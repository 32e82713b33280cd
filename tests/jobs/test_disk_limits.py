"""One user cannot fill the disk under everyone else's backups: a per-user quota of stored
backups, and a free-space reserve on the backup root that no backup starts below and that a
running backup is stopped at."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apphelpers import Api, make_settings, running_app, unique_name
from tests.support.locks import table_locked, tool_processes
from tests.support.sample_data import create_bulky, create_filled

MIB = 1 << 20


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_a_user_over_quota_cannot_start_backups(pg_server: Any, tmp_path: Path) -> None:
    source = unique_name("quota")
    create_filled(pg_server, source)
    # One byte: the first backup is allowed (nothing stored yet), and fills it.
    settings = make_settings(tmp_path, user_quota_bytes=1)
    try:
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            bob = await Api(client).signup()
            database = await alice.add_database(pg_server, source)
            first = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
            assert first["status"] == "completed"
            response = await alice.post(f"/api/backups/database/{database['id']}")
            assert response.status_code == 507, response.text
            assert response.json() == {
                "error": f"Quota de stockage atteint: vos sauvegardes occupent {first['size']} "
                "octets sur 1 autorisés; supprimez-en pour en créer de nouvelles"
            }
            assert [b["id"] for b in (await alice.get("/api/backups")).json()["backups"]] == [
                first["id"]
            ]
            # The quota is per user.
            theirs = await bob.add_database(pg_server, source)
            assert (await bob.post(f"/api/backups/database/{theirs['id']}")).status_code == 202
            # Deleting a stored backup gives the room back.
            assert (await alice.delete(f"/api/backups/{first['id']}")).status_code == 200
            assert (await alice.post(f"/api/backups/database/{database['id']}")).status_code == 202
    finally:
        pg_server.drop_database(source)


@contextlib.contextmanager
def small_volume(directory: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` MiB mounted on ``directory``: free space the test controls."""
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
async def test_the_free_space_reserve(mysql_server: Any, tmp_path: Path) -> None:
    source = unique_name("bulky")
    create_bulky(mysql_server, source)
    try:
        with small_volume(tmp_path / "volume", 4) as volume:
            # 80 % of 4 MiB stays free: backups may use 0.8 MiB of it. The dump's first
            # output must reach the archive process within the connect timeout, and this
            # app's first backup waits for that process to boot: on a busy machine that
            # alone can take the suite's usual 5 s, which would fail the backup as a
            # connection problem before the reserve is ever reached.
            settings = make_settings(
                tmp_path,
                backup_root=volume / "backups",
                disk_reserve_percent=80,
                connect_timeout_seconds=60,
            )
            async with running_app(settings) as (_, client):
                alice = await Api(client).signup()
                database = await alice.add_database(mysql_server, source)

                # Below the reserve already: refused before anything starts.
                filler = volume / "filler"
                filler.write_bytes(os.urandom(MIB))
                response = await alice.post(f"/api/backups/database/{database['id']}")
                assert response.status_code == 507, response.text
                assert response.json() == {
                    "error": "Espace disque insuffisant sur le serveur de sauvegarde: aucune "
                    "sauvegarde ne peut démarrer pour le moment, réessayez plus tard"
                }
                assert (await alice.get("/api/backups")).json()["backups"] == []
                filler.unlink()

                # Crossed while running: the dump has written ``bulk`` (but what the tool's
                # 1 MiB output buffer holds) and waits on the locked table, its archive over
                # the reserve, when it is stopped.
                with table_locked(mysql_server, source, "items"):
                    started = await alice.start_backup(database["id"])
                    failed = await alice.wait_backup(started["id"], timeout=60)
                    assert failed["status"] == "failed"
                    assert failed["error_msg"] == "espace disque insuffisant"
                    marker = f"backup:{started['id']}@{settings.backup_root.resolve()}"
                    assert tool_processes("mysqldump", marker) == []
                # Neither the staged file nor anything under the final name is left.
                assert files_under(volume) == []

            # Without the reserve the same backup fits on the volume: the disk never
            # filled, the reserve stopped it.
            unreserved = make_settings(
                tmp_path / "unreserved", backup_root=volume / "backups", disk_reserve_percent=0
            )
            async with running_app(unreserved) as (_, client):
                alice = await Api(client).signup()
                database = await alice.add_database(mysql_server, source)
                done = await alice.wait_backup((await alice.start_backup(database["id"]))["id"])
                assert done["status"] == "completed"
                assert done["size"] > MIB
                assert files_under(volume) == [Path(done["filepath"])]
    finally:
        mysql_server.drop_database(source)
