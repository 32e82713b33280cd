"""A backup's copies on several destinations at once, against a real S3 server (moto)
read back with an independent client (boto3): the archive, its manifest, downloads,
verifications and row-exact restores from a remote copy, deletion of every copy, and the
faults (a missing bucket, refused credentials, an endpoint that is gone), each ending in
a true state with no multipart upload left open."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.clocks import TravelClock
from tests.support.sample_data import create_filled, snapshot
from tests.support.servers.common import free_port
from tests.support.servers.s3 import S3Server

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def service(settings_factory: Any) -> AsyncIterator[tuple[FastAPI, Api]]:
    # The suite's S3 server listens on 127.0.0.1: listed, as an operator would.
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings) as (app, client):
        yield app, await Api(client).signup()


async def add_storage(
    api: Api, s3: S3Server, bucket: str, *, name: str | None = None, **overrides: Any
) -> dict[str, Any]:
    body = {
        "name": name or bucket,
        "type": "s3",
        "endpoint": s3.endpoint,
        "region": s3.region,
        "bucket": bucket,
        "prefix": "backups",
        "access_key_id": s3.access_key_id,
        "secret_access_key": s3.secret_access_key,
        "path_style": True,
    }
    body.update(overrides)
    response = await api.post("/api/storages", json=body)
    assert response.status_code == 201, response.text
    storage: dict[str, Any] = response.json()["storage"]
    return storage


def object_key(copy: dict[str, Any]) -> tuple[str, str]:
    bucket, key = copy["location"].removeprefix("s3://").split("/", 1)
    return bucket, key


async def backup_of(api: Api, database_id: int) -> dict[str, Any]:
    started = await api.start_backup(database_id)
    return await api.wait_backup(started["id"])


async def wait_copies(api: Api, backup_id: int, timeout: float = 30) -> dict[str, Any]:
    """The backup once no copy is ``running`` (a retry runs in the background)."""
    async with asyncio.timeout(timeout):
        while True:
            backup: dict[str, Any] = (await api.get(f"/api/backups/{backup_id}")).json()["backup"]
            if not any(copy["status"] == "running" for copy in backup["copies"]):
                return backup
            await asyncio.sleep(0.05)


async def test_local_and_two_buckets_at_once(
    pg_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    source = unique_name("copies")
    create_filled(pg_server, source)
    first, second = s3_server.make_bucket(), s3_server.make_bucket()
    one = await add_storage(alice, s3_server, first, name="premier")
    two = await add_storage(alice, s3_server, second, name="second")
    database = await alice.add_database(pg_server, source, storage_ids=[one["id"], two["id"]])
    assert database["storage_ids"] == [one["id"], two["id"]]
    assert database["keep_local"] is True

    backup = await backup_of(alice, database["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    local, remote_one, remote_two = backup["copies"]
    assert [c["storage_id"] for c in backup["copies"]] == [None, one["id"], two["id"]]
    assert [c["storage_name"] for c in backup["copies"]] == ["local", "premier", "second"]
    assert {c["status"] for c in backup["copies"]} == {"completed"}
    assert local["location"] == f"postgresql/{backup['filename']}"
    assert remote_one["location"] == f"s3://{first}/backups/postgresql/{backup['filename']}"
    assert backup["filepath"].endswith(local["location"])

    archive = Path(backup["filepath"]).read_bytes()
    assert hashlib.sha256(archive).hexdigest() == backup["checksum"]
    for copy, bucket in ((remote_one, first), (remote_two, second)):
        _, key = object_key(copy)
        assert s3_server.object_bytes(bucket, key) == archive
        assert copy["size"] == len(archive)
        manifest = json.loads(s3_server.object_bytes(bucket, key + ".manifest.json"))
        assert manifest["checksum"] == backup["checksum"]
        assert manifest["size"] == len(archive)
        assert manifest["db_name"] == source
        assert manifest["db_type"] == "postgresql"
        assert manifest["encryption"] is None
        assert s3_server.list_multipart_uploads(bucket) == []

    # Downloads: the local copy by default, any complete copy on request.
    default = await alice.get(f"/api/backups/{backup['id']}/download")
    assert default.status_code == 200
    assert default.content == archive
    chosen = await alice.get(f"/api/backups/{backup['id']}/download?storage_id={two['id']}")
    assert chosen.status_code == 200
    assert chosen.content == archive
    assert chosen.headers["content-length"] == str(len(archive))
    local_only = await alice.get(f"/api/backups/{backup['id']}/download?storage_id=local")
    assert local_only.content == archive
    stranger = await alice.get(f"/api/backups/{backup['id']}/download?storage_id=999999")
    assert stranger.status_code == 404
    assert stranger.json() == {"error": "Aucune copie de cette sauvegarde sur ce stockage"}

    # Verification of a remote copy re-reads it whole.
    verified = await alice.post(f"/api/backups/{backup['id']}/verify?storage_id={one['id']}")
    assert verified.status_code == 200
    assert verified.json()["verification"]["valid"] is True
    assert verified.json()["verification"]["checksum_actual"] == backup["checksum"]

    # Deletion removes every copy, the manifests with them.
    deleted = await alice.delete(f"/api/backups/{backup['id']}")
    assert deleted.status_code == 200, deleted.text
    assert not Path(backup["filepath"]).exists()
    assert s3_server.keys(first) == []
    assert s3_server.keys(second) == []
    assert (await alice.get(f"/api/backups/{backup['id']}")).status_code == 404
    pg_server.drop_database(source)


async def test_restore_row_exact_from_a_remote_copy_alone(
    pg_server: Any, mysql_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    for server in (pg_server, mysql_server):
        source = unique_name("remote")
        expected = create_filled(server, source)
        bucket = s3_server.make_bucket()
        storage = await add_storage(alice, s3_server, bucket)
        database = await alice.add_database(
            server, source, storage_ids=[storage["id"]], keep_local=False
        )
        backup = await backup_of(alice, database["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        [copy] = backup["copies"]
        assert copy["storage_id"] == storage["id"]
        # Without a local copy, the backup's path is its remote location.
        assert backup["filepath"] == copy["location"]
        server.execute("DELETE FROM items WHERE id > 100; DROP TABLE notes;", source)
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": database["id"], "confirm": source},
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        assert snapshot(server, source) == expected
        server.drop_database(source)


async def test_a_failed_destination_costs_its_copy_alone_and_a_retry_completes_it(
    pg_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    source = unique_name("partial")
    create_filled(pg_server, source)
    good, gone = s3_server.make_bucket(), f"missing-{unique_name('b').replace('_', '-')}"
    working = await add_storage(alice, s3_server, good, name="bon")
    missing = await add_storage(alice, s3_server, gone, name="absent")
    database = await alice.add_database(
        pg_server, source, storage_ids=[working["id"], missing["id"]]
    )
    backup = await backup_of(alice, database["id"])
    # The archive was made: the backup says failed, names the destination, and its
    # complete copies stay usable.
    assert backup["status"] == "failed"
    assert backup["checksum"] is not None
    assert backup["error_msg"].startswith("copie manquante sur absent: ")
    assert "compartiment introuvable" in backup["error_msg"]
    statuses = {c["storage_name"]: c["status"] for c in backup["copies"]}
    assert statuses == {"local": "completed", "bon": "completed", "absent": "failed"}
    failed = backup["copies"][2]
    assert failed["error_msg"] == f"compartiment introuvable: {gone}"
    download = await alice.get(f"/api/backups/{backup['id']}/download?storage_id={working['id']}")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum"]
    refused = await alice.get(f"/api/backups/{backup['id']}/download?storage_id={missing['id']}")
    assert refused.status_code == 409
    assert refused.json()["error"] == "La copie sur absent n'est pas complète (statut: failed)"

    # The bucket appears; a retry sends the copy from a complete one.
    s3_server.client().create_bucket(Bucket=gone)
    response = await alice.post(f"/api/backups/{backup['id']}/copies/retry")
    assert response.status_code == 202, response.text
    assert response.json()["backup"]["copies"][2]["status"] == "running"
    done = await wait_copies(alice, backup["id"])
    assert done["status"] == "completed"
    assert done["error_msg"] is None
    assert [c["status"] for c in done["copies"]] == ["completed"] * 3
    _, key = object_key(done["copies"][2])
    assert hashlib.sha256(s3_server.object_bytes(gone, key)).hexdigest() == backup["checksum"]
    assert s3_server.list_multipart_uploads(gone) == []
    nothing = await alice.post(f"/api/backups/{backup['id']}/copies/retry")
    assert nothing.status_code == 409
    assert nothing.json() == {"error": "Aucune copie manquante à renvoyer"}
    pg_server.drop_database(source)


async def test_refused_credentials_and_a_gone_endpoint_fail_their_copies(
    pg_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    source = unique_name("faults")
    create_filled(pg_server, source)
    bucket = s3_server.make_bucket()
    refused = await add_storage(
        alice, s3_server, bucket, name="refuse", secret_access_key="not-the-secret"
    )
    closed = await add_storage(
        alice, s3_server, bucket, name="ferme", endpoint=f"http://127.0.0.1:{free_port()}"
    )
    database = await alice.add_database(
        pg_server, source, storage_ids=[refused["id"], closed["id"]], keep_local=False
    )
    backup = await backup_of(alice, database["id"])
    # Nothing complete anywhere: the backup failed outright, with each reason.
    assert backup["status"] == "failed"
    reasons = {c["storage_name"]: c["error_msg"] for c in backup["copies"]}
    assert reasons == {
        "refuse": "identifiants refusés par le stockage",
        "ferme": "stockage injoignable",
    }
    assert {c["status"] for c in backup["copies"]} == {"failed"}
    assert "not-the-secret" not in json.dumps(backup)
    assert s3_server.keys(bucket) == []
    assert s3_server.list_multipart_uploads(bucket) == []
    download = await alice.get(f"/api/backups/{backup['id']}/download")
    assert download.status_code == 409
    retry = await alice.post(f"/api/backups/{backup['id']}/copies/retry")
    assert retry.status_code == 409
    assert retry.json() == {"error": "Aucune copie complète à partir de laquelle renvoyer"}
    pg_server.drop_database(source)


async def test_locked_copies_are_kept_until_their_date_and_deletion_says_so(
    pg_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    source = unique_name("locked")
    create_filled(pg_server, source)
    bucket = s3_server.make_bucket(object_lock=True)
    storage = await add_storage(alice, s3_server, bucket, name="coffre", object_lock_days=1)
    database = await alice.add_database(pg_server, source, storage_ids=[storage["id"]])
    backup = await backup_of(alice, database["id"])
    assert backup["status"] == "completed", backup["error_msg"]
    remote = backup["copies"][1]
    assert remote["retain_until"] is not None
    response = await alice.delete(f"/api/backups/{backup['id']}")
    assert response.status_code == 409
    assert response.json()["error"].startswith("Suppression incomplète: coffre: objet verrouillé")
    after = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
    # The local copy went; the locked one stays, saying why.
    assert [c["storage_name"] for c in after["copies"]] == ["coffre"]
    assert after["copies"][0]["status"] == "delete_failed"
    assert after["copies"][0]["error_msg"].startswith("objet verrouillé jusqu'au ")
    _, key = object_key(remote)
    assert key in s3_server.keys(bucket)
    # A retry tries the deletion again, and it is refused again until the date.
    retry = await alice.post(f"/api/backups/{backup['id']}/copies/retry")
    assert retry.status_code == 202
    still = await wait_copies(alice, backup["id"])
    assert still["copies"][0]["status"] == "delete_failed"
    pg_server.drop_database(source)


async def test_missing_copies_are_sent_again_on_their_own_every_hour(
    pg_server: Any, s3_server: S3Server, settings_factory: Any
) -> None:
    clock = TravelClock(loops=3)
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    async with running_app(settings, clock=clock) as (_, client):
        alice = await Api(client).signup()
        source = unique_name("hourly")
        create_filled(pg_server, source)
        later = f"later-{unique_name('b').replace('_', '-')}"
        storage = await add_storage(alice, s3_server, later, name="plus-tard")
        database = await alice.add_database(pg_server, source, storage_ids=[storage["id"]])
        backup = await backup_of(alice, database["id"])
        assert backup["status"] == "failed"
        s3_server.client().create_bucket(Bucket=later)
        # Not before the hour.
        clock.travel(timedelta(minutes=30))
        await asyncio.sleep(0.2)
        assert (await wait_copies(alice, backup["id"]))["copies"][1]["status"] == "failed"
        clock.travel(timedelta(minutes=31))
        async with asyncio.timeout(30):
            while (await wait_copies(alice, backup["id"]))["status"] != "completed":
                await asyncio.sleep(0.05)
        done = await wait_copies(alice, backup["id"])
        assert done["copies"][1]["status"] == "completed"
        _, key = object_key(done["copies"][1])
        assert hashlib.sha256(s3_server.object_bytes(later, key)).hexdigest() == backup["checksum"]
        pg_server.drop_database(source)


async def test_a_storage_being_written_is_not_deleted(
    pg_server: Any, s3_server: S3Server, service: tuple[FastAPI, Api]
) -> None:
    _, alice = service
    source = unique_name("busy")
    create_filled(pg_server, source)
    bucket = s3_server.make_bucket()
    storage = await add_storage(alice, s3_server, bucket)
    database = await alice.add_database(pg_server, source, storage_ids=[storage["id"]])
    used = await alice.delete(f"/api/storages/{storage['id']}")
    assert used.status_code == 409
    backup = await backup_of(alice, database["id"])
    assert backup["status"] == "completed"
    # Out of the database's destinations, it still holds the backup's copy.
    await alice.put(f"/api/databases/{database['id']}", json={"storage_ids": []})
    held = await alice.delete(f"/api/storages/{storage['id']}")
    assert held.status_code == 409
    assert held.json()["error"].startswith(
        "Impossible de supprimer le stockage: il contient encore des sauvegardes"
    )
    assert (await alice.delete(f"/api/backups/{backup['id']}")).status_code == 200
    assert (await alice.delete(f"/api/storages/{storage['id']}")).status_code == 200
    pg_server.drop_database(source)
