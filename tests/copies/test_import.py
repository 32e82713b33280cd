"""A new instance rebuilds its records from a bucket (each archive's manifest), and an
instance that starts again aborts the multipart uploads a crash left open."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.copies.test_copies import add_storage, backup_of
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.sample_data import create_filled, snapshot
from tests.support.servers.s3 import S3Server

pytestmark = pytest.mark.asyncio


async def test_a_new_instance_imports_what_a_bucket_holds(
    pg_server: Any, s3_server: S3Server, settings_factory: Any, tmp_path: Any
) -> None:
    source = unique_name("import")
    expected = create_filled(pg_server, source)
    bucket = s3_server.make_bucket()
    first = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(first) as (_, client):
        alice = await Api(client).signup()
        storage = await add_storage(alice, s3_server, bucket)
        database = await alice.add_database(
            pg_server, source, storage_ids=[storage["id"]], keep_local=False
        )
        original = await backup_of(alice, database["id"])
        assert original["status"] == "completed", original["error_msg"]
    # Something else in the bucket: a manifest that is not one, and one whose archive
    # is missing.
    client_s3 = s3_server.client()
    client_s3.put_object(Bucket=bucket, Key="backups/postgresql/x.zip.manifest.json", Body=b"{")
    ghost = json.loads(
        s3_server.object_bytes(
            bucket, original["copies"][0]["location"].split("/", 3)[3] + ".manifest.json"
        )
    )
    client_s3.put_object(
        Bucket=bucket,
        Key="backups/postgresql/ghost.zip.manifest.json",
        Body=json.dumps({**ghost, "filename": "ghost.zip"}).encode(),
    )

    # Another instance: its own metadata and disk, the same bucket.
    second = settings_factory(
        allowed_outbound_hosts=["127.0.0.1"],
        database_url=f"sqlite+aiosqlite:///{tmp_path}/other.sqlite3",
        backup_root=tmp_path / "other-backups",
    )
    async with running_app(second) as (_, client):
        bob = await Api(client).signup()
        storage = await add_storage(bob, s3_server, bucket)
        response = await bob.post(f"/api/storages/{storage['id']}/import")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["found"] == 2
        assert body["known"] == 0
        assert body["invalid"] == ["backups/postgresql/ghost.zip"]
        [imported] = body["imported"]
        for field in ("filename", "checksum", "size", "db_type", "db_name", "dump_size"):
            assert imported[field] == original[field], field
        assert imported["status"] == "completed"
        assert imported["trigger"] == "import"
        assert imported["database_id"] is None
        assert imported["created_at"] == original["created_at"]
        assert imported["copies"][0]["storage_id"] == storage["id"]
        assert imported["copies"][0]["location"] == original["copies"][0]["location"]

        download = await bob.get(f"/api/backups/{imported['id']}/download")
        assert download.status_code == 200
        verify = await bob.post(f"/api/backups/{imported['id']}/verify")
        assert verify.json()["verification"]["valid"] is True
        # Restored row for row into a database this instance knows.
        target = unique_name("imported")
        pg_server.create_database(target)
        registered = await bob.add_database(pg_server, target)
        response = await bob.post(
            f"/api/backups/{imported['id']}/restore", json={"database_id": registered["id"]}
        )
        assert response.status_code == 202, response.text
        restore = await bob.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        assert snapshot(pg_server, target) == expected

        again = (await bob.post(f"/api/storages/{storage['id']}/import")).json()
        assert (again["found"], again["known"], again["imported"]) == (2, 1, [])
        pg_server.drop_database(target)
    pg_server.drop_database(source)


async def test_uploads_left_open_by_a_crash_are_aborted_at_start(
    s3_server: S3Server, settings_factory: Any
) -> None:
    bucket = s3_server.make_bucket()
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (_, client):
        alice = await Api(client).signup()
        await add_storage(alice, s3_server, bucket)
    # What a crashed instance leaves: an upload begun under the storage's prefix.
    client = s3_server.client()
    client.create_multipart_upload(Bucket=bucket, Key="backups/postgresql/cut.zip")
    assert len(s3_server.list_multipart_uploads(bucket)) == 1
    async with running_app(settings) as (app, _):
        aborted = await app.state.backup_api.copy_retrier.wait_started()
        assert aborted == 1
    assert s3_server.list_multipart_uploads(bucket) == []
