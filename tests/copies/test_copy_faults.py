"""Uploads cut short: a backup deleted, the service stopped, or the endpoint gone while the
archive streams to a bucket. Each ends in a true state, with no object under the final key
and no multipart upload left open."""

from __future__ import annotations

from typing import Any

import pytest

from tests.copies.test_copies import add_storage
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.locks import table_locked, wait_until
from tests.support.sample_data import create_bulky
from tests.support.servers.s3 import S3Server, recording_proxy

pytestmark = pytest.mark.asyncio


@pytest.fixture
def bulky(mysql_server: Any) -> Any:
    source = unique_name("upload")
    create_bulky(mysql_server, source)
    yield source
    mysql_server.drop_database(source)


async def test_deleting_a_backup_mid_upload_aborts_it(
    mysql_server: Any, bulky: str, s3_server: S3Server, settings_factory: Any
) -> None:
    bucket = s3_server.make_bucket()
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with table_locked(mysql_server, bulky, "items"):
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            storage = await add_storage(alice, s3_server, bucket)
            database = await alice.add_database(
                mysql_server, bulky, storage_ids=[storage["id"]], keep_local=False
            )
            backup = await alice.start_backup(database["id"])
            # The dump wrote ``bulk`` and waits on ``items``: the upload is open.
            await wait_until(lambda: s3_server.list_multipart_uploads(bucket))
            running = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
            assert running["copies"][0]["status"] == "running"
            # While a backup writes there, its storage cannot go.
            await alice.put(
                f"/api/databases/{database['id']}", json={"storage_ids": [], "keep_local": True}
            )
            busy = await alice.delete(f"/api/storages/{storage['id']}")
            assert busy.status_code == 409
            assert busy.json() == {
                "error": "Impossible de supprimer le stockage: une sauvegarde y écrit en ce moment"
            }
            deleted = await alice.delete(f"/api/backups/{backup['id']}")
            assert deleted.status_code == 200, deleted.text
    assert s3_server.list_multipart_uploads(bucket) == []
    assert s3_server.keys(bucket) == []


async def test_stopping_the_service_mid_upload_aborts_it(
    mysql_server: Any, bulky: str, s3_server: S3Server, settings_factory: Any
) -> None:
    bucket = s3_server.make_bucket()
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with table_locked(mysql_server, bulky, "items"):
        async with running_app(settings) as (_, client):
            email = "stop@example.com"
            alice = await Api(client).signup(email)
            storage = await add_storage(alice, s3_server, bucket)
            database = await alice.add_database(
                mysql_server, bulky, storage_ids=[storage["id"]], keep_local=False
            )
            backup = await alice.start_backup(database["id"])
            await wait_until(lambda: s3_server.list_multipart_uploads(bucket))
        assert s3_server.list_multipart_uploads(bucket) == []
        assert s3_server.keys(bucket) == []
    async with running_app(settings) as (_, client):
        alice = await Api(client).login(email)
        after = (await alice.get(f"/api/backups/{backup['id']}")).json()["backup"]
        assert after["status"] == "failed"
        assert after["copies"][0]["status"] == "failed"


async def test_the_endpoint_going_away_mid_upload_fails_the_copy(
    mysql_server: Any, bulky: str, s3_server: S3Server, settings_factory: Any
) -> None:
    bucket = s3_server.make_bucket()
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1"])
    with recording_proxy(s3_server) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        async with running_app(settings) as (_, client):
            alice = await Api(client).signup()
            storage = await add_storage(alice, s3_server, bucket, endpoint=endpoint)
            database = await alice.add_database(mysql_server, bulky, storage_ids=[storage["id"]])
            with table_locked(mysql_server, bulky, "items"):
                backup = await alice.start_backup(database["id"])
                await wait_until(lambda: s3_server.list_multipart_uploads(bucket))
                proxy.go_away()
            # The lock is gone: the dump finishes, its remote copy cannot.
            done = await alice.wait_backup(backup["id"])
    # The local copy stands; the remote one failed, and says why.
    assert done["status"] == "failed"
    assert [c["status"] for c in done["copies"]] == ["completed", "failed"]
    assert done["copies"][1]["error_msg"] == "stockage injoignable"
    assert s3_server.keys(bucket) == []
