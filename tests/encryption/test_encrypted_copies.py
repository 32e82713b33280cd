"""Encrypted backups in a bucket (the suite's S3 server): the object is the age file, its
manifest names the mode and recipients (never a key), the identity is checked against the
fetched remote copy before anything is queued, and a new instance that imports the
bucket restores it with the identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from backup_api.archiving.agecrypt import generate_identity
from tests.copies.test_copies import add_storage, backup_of, object_key
from tests.encryption.conftest import FAST_LOG_N
from tests.encryption.helpers import age_decrypt, keygen, unzip_ok
from tests.support.apphelpers import Api, running_app, unique_name
from tests.support.sample_data import create_filled, snapshot
from tests.support.servers.s3 import S3Server

pytestmark = pytest.mark.asyncio


async def test_an_encrypted_backup_in_a_bucket_alone(
    pg_server: Any, s3_server: S3Server, settings_factory: Any, tmp_path: Path
) -> None:
    key, recipient = keygen(tmp_path)
    identity = next(
        line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )
    wrong, _ = generate_identity()
    source = unique_name("enc_s3")
    expected = create_filled(pg_server, source)
    bucket = s3_server.make_bucket()
    first = settings_factory(allowed_outbound_hosts=["127.0.0.1"], age_scrypt_log_n=FAST_LOG_N)
    async with running_app(first) as (_, client):
        alice = await Api(client).signup()
        storage = await add_storage(alice, s3_server, bucket)
        database = await alice.add_database(
            pg_server,
            source,
            storage_ids=[storage["id"]],
            keep_local=False,
            encryption={"recipients": [recipient]},
        )
        backup = await backup_of(alice, database["id"])
        assert backup["status"] == "completed", backup["error_msg"]
        assert backup["encrypted"] is True
        [copy] = backup["copies"]
        assert copy["location"].endswith(".zip.age")
        _, object_name = object_key(copy)
        stored = s3_server.object_bytes(bucket, object_name)
        assert stored.startswith(b"age-encryption.org/v1\n")
        assert hashlib.sha256(stored).hexdigest() == backup["checksum"]
        manifest = json.loads(s3_server.object_bytes(bucket, object_name + ".manifest.json"))
        assert manifest["encryption"] == {"mode": "recipients", "recipients": [recipient]}
        (tmp_path / "f.zip.age").write_bytes(stored)
        age_decrypt(tmp_path / "f.zip.age", tmp_path / "f.zip", key=key)
        unzip_ok(tmp_path / "f.zip")

        target = unique_name("enc_dst")
        pg_server.create_database(target)
        other = await alice.add_database(pg_server, target)
        refused = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": other["id"], "identity": wrong},
        )
        assert refused.status_code == 400
        assert refused.json()["error"].startswith("Identité age incorrecte")
        response = await alice.post(
            f"/api/backups/{backup['id']}/restore",
            json={"database_id": other["id"], "identity": identity},
        )
        assert response.status_code == 202, response.text
        restore = await alice.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        assert snapshot(pg_server, target) == expected

    # Another instance imports the bucket: the backup is known as encrypted.
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
        [imported] = response.json()["imported"]
        assert imported["encrypted"] is True
        again = unique_name("enc_again")
        pg_server.create_database(again)
        registered = await bob.add_database(pg_server, again)
        missing = await bob.post(
            f"/api/backups/{imported['id']}/restore", json={"database_id": registered["id"]}
        )
        assert missing.status_code == 400
        response = await bob.post(
            f"/api/backups/{imported['id']}/restore",
            json={"database_id": registered["id"], "identity": identity},
        )
        assert response.status_code == 202, response.text
        restore = await bob.wait_restore(response.json()["restore"]["id"])
        assert restore["status"] == "completed", restore["error_msg"]
        assert snapshot(pg_server, again) == expected
    for name in (source, target, again):
        pg_server.drop_database(name)
