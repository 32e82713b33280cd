"""The seed document's whole flow, through HTTP, on both metadata backends and both engines."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.apphelpers import PASSWORD, Api, make_settings, running_app, unique_name
from tests.support.sample_data import create_filled, snapshot

SEED_MESSAGE = "Sauvegarde créée avec succès. Le processus de sauvegarde a commencé."
SEED_BACKUP_KEYS = [
    "id",
    "filename",
    "filepath",
    "size",
    "status",
    "created_at",
    "updated_at",
    "user_id",
    "database_id",
]
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(params=["postgresql", "mysql"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("pg_server" if request.param == "postgresql" else "mysql_server")


async def test_seed_flow(server: Any, metadata_url: str, tmp_path: Path) -> None:
    source = unique_name("ma_base")
    expected = create_filled(server, source)
    settings = make_settings(tmp_path, database_url=metadata_url)

    async with running_app(settings) as (_, client):
        # 1. Authentication, with the seed's bodies.
        response = await client.post(
            "/auth/register",
            json={"email": "user@example.com", "password": PASSWORD, "role": "user"},
        )
        assert response.status_code == 201
        assert response.json()["user"]["email"] == "user@example.com"
        assert "password" not in response.text
        assert "hash" not in response.text
        response = await client.post(
            "/auth/login", json={"email": "user@example.com", "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] > 0
        api = Api(client)
        api.token = body["token"]

        # 2. Databases: create (port as a string, as the seed sends it), list, get, update.
        database = await api.add_database(server, source, name="Ma Base")
        assert database["port"] == str(server.port)
        assert database["type"] == server.kind
        assert "password" not in database
        assert server.password not in response.text
        response = await api.get("/api/databases")
        assert [d["id"] for d in response.json()["databases"]] == [database["id"]]
        response = await api.get(f"/api/databases/{database['id']}")
        assert response.json()["database"]["db_name"] == source
        update = {
            "name": "Ma Base Modifiée",
            "type": server.kind,
            "host": server.host,
            "port": server.port,  # an integer is accepted too
            "username": server.user,
            "password": server.password,
            "db_name": source,
        }
        response = await api.put(f"/api/databases/{database['id']}", json=update)
        assert response.status_code == 200, response.text
        assert response.json()["database"]["name"] == "Ma Base Modifiée"
        assert response.json()["database"]["port"] == str(server.port)
        # Without a password the stored one is kept (the backup below proves it).
        update.pop("password")
        response = await api.put(f"/api/databases/{database['id']}", json=update)
        assert response.status_code == 200, response.text

        # 3. Backup: 202 at once with the seed's body, then completed in the background.
        response = await api.post(f"/api/backups/database/{database['id']}")
        assert response.status_code == 202
        assert response.json()["message"] == SEED_MESSAGE
        pending = response.json()["backup"]
        assert list(pending)[: len(SEED_BACKUP_KEYS)] == SEED_BACKUP_KEYS
        assert pending["status"] == "pending"
        assert pending["size"] == 0
        assert TIMESTAMP.match(pending["created_at"])
        assert re.fullmatch(rf"{source}_\d{{8}}_\d{{6}}\.zip", pending["filename"])
        assert (
            pending["filepath"]
            == f"{settings.backup_root.as_posix()}/{server.kind}/" + (pending["filename"])
        )
        backup = await api.wait_backup(pending["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        archive_path = Path(backup["filepath"])
        assert archive_path.is_file()
        assert backup["size"] == archive_path.stat().st_size > 0
        assert backup["error_msg"] is None
        assert len(backup["checksum"]) == 64
        # One destination: the service's own backup root.
        assert backup["copies"] == [
            {
                "storage_id": None,
                "storage_name": "local",
                "location": f"{server.kind}/{backup['filename']}",
                "status": "completed",
                "size": backup["size"],
                "error_msg": None,
                "retain_until": None,
            }
        ]

        # 4. Listings and details.
        response = await api.get("/api/backups")
        assert [b["id"] for b in response.json()["backups"]] == [backup["id"]]
        response = await api.get(f"/api/backups/database/{database['id']}")
        assert [b["id"] for b in response.json()["backups"]] == [backup["id"]]

        # 5. Download: streamed ZIP with the attachment name, holding one plain SQL dump.
        response = await api.get(f"/api/backups/{backup['id']}/download")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="{backup["filename"]}"'
        )
        assert response.content == archive_path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert archive.testzip() is None
            names = archive.namelist()
            assert names == [backup["filename"].removesuffix(".zip") + ".sql"]
            sql = archive.read(names[0])
        assert subprocess.run(["unzip", "-tq", archive_path], check=False).returncode == 0

        # 6. The SQL loads back with the engine's own client into an empty database.
        copy = unique_name("copie")
        server.create_database(copy)
        server.execute(sql.decode("utf-8"), copy)
        assert snapshot(server, copy) == expected

        # 7. Delete the database: its backups stay, detached.
        response = await api.delete(f"/api/databases/{database['id']}")
        assert response.status_code == 200
        assert response.json()["message"]
        response = await api.get(f"/api/backups/{backup['id']}")
        assert response.json()["backup"]["database_id"] is None
        response = await api.get(f"/api/backups/{backup['id']}/download")
        assert response.status_code == 200

        # 8. Delete the backup: record and file gone.
        response = await api.delete(f"/api/backups/{backup['id']}")
        assert response.status_code == 200
        assert not archive_path.exists()
        response = await api.get(f"/api/backups/{backup['id']}")
        assert response.status_code == 404
        assert response.json() == {"error": "Sauvegarde introuvable"}
        server.drop_database(copy)
    server.drop_database(source)


async def test_listings_follow_every_change_of_a_record(pg_server: Any, tmp_path: Path) -> None:
    """Listings render each row once per state: a record that changes (pending, then
    completed; deleted) must never be listed in an old state, and a listed record is
    exactly the one ``GET /api/backups/{id}`` returns."""
    source = unique_name("listed")
    create_filled(pg_server, source)
    async with running_app(make_settings(tmp_path)) as (_, client):
        api = await Api(client).signup()
        database = await api.add_database(pg_server, source)
        started = await api.start_backup(database["id"])
        listed = (await api.get("/api/backups")).json()["backups"]
        assert [b["id"] for b in listed] == [started["id"]]
        assert listed[0]["status"] in ("pending", "completed")
        finished = await api.wait_backup(started["id"])
        assert finished["status"] == "completed"
        for url in ("/api/backups", f"/api/backups/database/{database['id']}"):
            listed = (await api.get(url)).json()["backups"]
            assert listed == [finished], url
        second = await api.wait_backup((await api.start_backup(database["id"]))["id"])
        listed = (await api.get("/api/backups?limit=1")).json()["backups"]
        assert listed == [second]
        listed = (await api.get("/api/backups?limit=1&offset=1")).json()["backups"]
        assert listed == [finished]
        assert (await api.delete(f"/api/backups/{second['id']}")).status_code == 200
        listed = (await api.get("/api/backups")).json()["backups"]
        assert listed == [finished]
    pg_server.drop_database(source)
