"""The service's object operations against a real S3 server (moto, authentication on),
read back with an independent client (boto3)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import ObjectLockedError, S3Error
from tests.support.servers.s3 import S3Server


def test_check_bucket_writes_reads_back_and_leaves_nothing(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    objects.check_bucket(s3_server.location(bucket))
    assert s3_server.keys(bucket) == []


def test_check_bucket_in_a_versioned_bucket_leaves_no_version(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket(object_lock=True)
    objects.check_bucket(s3_server.location(bucket, object_lock_days=1))
    versions = s3_server.client().list_object_versions(Bucket=bucket)
    assert versions.get("Versions", []) == []
    assert versions.get("DeleteMarkers", []) == []


def test_object_lock_asked_of_a_bucket_without_it(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    with pytest.raises(S3Error, match="Object Lock"):
        objects.check_bucket(s3_server.location(bucket, object_lock_days=1))


def test_wrong_secret_is_refused_and_not_repeated(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    location = s3_server.location(bucket, secret_access_key="s3cr3t-that-is-wrong")
    with pytest.raises(S3Error) as caught:
        objects.check_bucket(location)
    assert str(caught.value) == "identifiants refusés par le stockage"
    assert "s3cr3t" not in repr(caught.value)
    assert "s3cr3t" not in repr(location)


def test_unknown_key_id_is_refused(s3_server: S3Server) -> None:
    location = s3_server.location(s3_server.make_bucket(), access_key_id="AKIAUNKNOWN000000000")
    with pytest.raises(S3Error, match=r"^identifiants refusés par le stockage$"):
        objects.check_bucket(location)


def test_missing_bucket_is_named(s3_server: S3Server) -> None:
    with pytest.raises(S3Error, match=r"^compartiment introuvable: no-such-bucket-here$"):
        objects.check_bucket(s3_server.location("no-such-bucket-here"))


def test_head_iter_download_delete(s3_server: S3Server, tmp_path: os.PathLike[str]) -> None:
    bucket = s3_server.make_bucket()
    location = s3_server.location(bucket)
    data = os.urandom(300_000)
    s3_server.client().put_object(Bucket=bucket, Key="backups/postgresql/a.zip", Body=data)
    assert objects.head_object(location, "backups/postgresql/a.zip") == (len(data), None)
    assert objects.head_object(location, "backups/postgresql/none.zip") is None
    chunks = list(objects.iter_object(location, "backups/postgresql/a.zip", chunk=65536))
    assert max(len(c) for c in chunks) <= 65536
    assert b"".join(chunks) == data
    path = os.path.join(tmp_path, "copy")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert objects.download_to_fd(location, "backups/postgresql/a.zip", fd) == len(data)
    finally:
        os.close(fd)
    with open(path, "rb") as fh:
        assert fh.read() == data
    objects.delete_object(location, "backups/postgresql/a.zip", None)
    assert s3_server.keys(bucket) == []
    with pytest.raises(S3Error, match=r"^objet introuvable$"):
        list(objects.iter_object(location, "backups/postgresql/a.zip"))


def test_manifests_are_listed_under_the_prefix(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    location = s3_server.location(bucket)
    objects.put_manifest(location, "backups/mysql/b.zip", {"format": 1, "database_name": "é"})
    s3_server.client().put_object(Bucket=bucket, Key="backups/x.manifest.json", Body=b"not json")
    s3_server.client().put_object(Bucket=bucket, Key="other/y.zip.manifest.json", Body=b"{}")
    assert objects.list_manifests(location) == [
        {"format": 1, "database_name": "é", "key": "backups/mysql/b.zip"}
    ]


def test_locked_version_cannot_be_deleted_before_its_date(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket(object_lock=True)
    location = s3_server.location(bucket, object_lock_days=1)
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    put = s3_server.client().put_object(
        Bucket=bucket,
        Key="backups/k.zip",
        Body=b"locked",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
        ContentMD5=objects.content_md5(b"locked"),
    )
    version = put["VersionId"]
    assert objects.retention_of(location, "backups/k.zip", version) == until
    with pytest.raises(ObjectLockedError) as caught:
        objects.delete_object(location, "backups/k.zip", version)
    assert caught.value.retain_until == until
    assert str(caught.value) == f"objet verrouillé jusqu'au {until:%Y-%m-%d %H:%M:%S} UTC"
    assert s3_server.object_bytes(bucket, "backups/k.zip") == b"locked"


def test_stale_uploads_are_aborted_under_the_prefix_only(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    client = s3_server.client()
    client.create_multipart_upload(Bucket=bucket, Key="backups/old.zip")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/other.zip")
    location = s3_server.location(bucket)
    # moto reports every upload as initiated in 2010, so only "before now" can be shown here.
    assert objects.abort_stale_uploads(location, datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert [u["Key"] for u in s3_server.list_multipart_uploads(bucket)] == ["elsewhere/other.zip"]
