"""The upload process and its service end (S3Upload): one archive fed into the pipe by the
test, sent to real buckets (moto), read back with boto3; every fault ends with no
multipart upload left behind."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import ObjectLockedError
from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.upload import CopyOutcome, S3Upload, UploadTarget
from backup_api.storage.s3.uploader import ABORTED, MIN_PART_SIZE, SIZE_MISMATCH
from tests.support.servers.s3 import S3Server

PART = MIN_PART_SIZE
KEY = "backups/postgresql/shop_20260101_000000.zip"
MANIFEST = {"format": 1, "database_name": "shop", "checksum": None, "size": None}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _feed(upload: S3Upload, data: bytes) -> None:
    await asyncio.to_thread(_write_all, upload.fileno(), data)


async def _upload(targets: list[UploadTarget], data: bytes) -> list[CopyOutcome]:
    upload = await S3Upload.start(targets, PART)
    await _feed(upload, data)
    return await upload.commit(hashlib.sha256(data).hexdigest(), len(data))


def _target(location: S3Location, key: str = KEY) -> UploadTarget:
    return UploadTarget(location, key, dict(MANIFEST))


async def _wait_exit(upload: S3Upload) -> int:
    return await asyncio.to_thread(upload.process.wait)


async def test_one_archive_to_two_buckets_in_parts(s3_server: S3Server) -> None:
    first, second = s3_server.make_bucket(), s3_server.make_bucket()
    data = os.urandom(2 * PART + 12345)
    checksum = hashlib.sha256(data).hexdigest()
    outcomes = await _upload(
        [_target(s3_server.location(first)), _target(s3_server.location(second))], data
    )
    # An unversioned bucket's object is its "null" version (moto names it, S3 may not).
    assert [o._replace(version_id=None) for o in outcomes] == [
        CopyOutcome(True, len(data), None, None, None)
    ] * 2
    for bucket in (first, second):
        assert s3_server.object_bytes(bucket, KEY) == data
        parts = s3_server.client().head_object(Bucket=bucket, Key=KEY, PartNumber=1)
        assert parts["PartsCount"] == 3
        manifest = json.loads(s3_server.object_bytes(bucket, KEY + ".manifest.json"))
        assert manifest == {**MANIFEST, "checksum": checksum, "size": len(data)}
        assert s3_server.list_multipart_uploads(bucket) == []


async def test_the_upload_process_keeps_to_the_pinned_address(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    location = s3_server.location(
        bucket, endpoint=f"http://s3.test.invalid:{s3_server.port}", pinned_address="127.0.0.1"
    )
    outcomes = await _upload([_target(location)], b"pinned")
    assert [o.ok for o in outcomes] == [True]
    assert s3_server.object_bytes(bucket, KEY) == b"pinned"


async def test_an_empty_archive(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    outcomes = await _upload([_target(s3_server.location(bucket))], b"")
    assert [o.ok for o in outcomes] == [True]
    assert s3_server.object_bytes(bucket, KEY) == b""


async def test_abort_leaves_nothing(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    upload = await S3Upload.start([_target(s3_server.location(bucket))], PART)
    await _feed(upload, os.urandom(PART + 10))
    await upload.abort()
    await upload.abort()
    assert upload.process.returncode == 0
    assert s3_server.keys(bucket) == []
    assert s3_server.list_multipart_uploads(bucket) == []


async def test_a_size_that_does_not_match_is_not_completed(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    upload = await S3Upload.start([_target(s3_server.location(bucket))], PART)
    await _feed(upload, b"abc")
    outcomes = await upload.commit("0" * 64, 4)
    assert [(o.ok, o.error) for o in outcomes] == [(False, SIZE_MISMATCH)]
    assert s3_server.keys(bucket) == []
    assert s3_server.list_multipart_uploads(bucket) == []


async def test_the_service_going_away_aborts_the_uploads(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    upload = await S3Upload.start([_target(s3_server.location(bucket))], PART)
    await _feed(upload, os.urandom(PART + 10))
    # As when the service crashes: its end of the control socket closes, nothing is said.
    upload._close()
    assert await _wait_exit(upload) == 0
    assert s3_server.list_multipart_uploads(bucket) == []
    assert s3_server.keys(bucket) == []
    await upload.abort()


async def test_sigterm_aborts_the_uploads(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    upload = await S3Upload.start([_target(s3_server.location(bucket))], PART)
    await _feed(upload, os.urandom(PART + 10))
    upload.process.send_signal(signal.SIGTERM)
    assert await _wait_exit(upload) == 0
    assert s3_server.list_multipart_uploads(bucket) == []
    await upload.abort()


async def test_a_killed_upload_process_is_cleaned_up_by_recovery(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    location = s3_server.location(bucket)
    upload = await S3Upload.start([_target(location)], PART)
    await _feed(upload, os.urandom(PART + 10))
    upload.process.kill()
    assert await _wait_exit(upload) == -signal.SIGKILL
    assert [u["Key"] for u in s3_server.list_multipart_uploads(bucket)] == [KEY]
    await upload.abort()
    started = datetime.now(UTC) + timedelta(minutes=1)
    assert objects.abort_stale_uploads(location, started) == 1
    assert s3_server.list_multipart_uploads(bucket) == []


async def test_a_bucket_deleted_mid_way_fails_alone(s3_server: S3Server) -> None:
    kept, doomed = s3_server.make_bucket(), s3_server.make_bucket()
    data = os.urandom(PART + 99)
    upload = await S3Upload.start(
        [_target(s3_server.location(doomed)), _target(s3_server.location(kept))], PART
    )
    assert [o.ok for o in upload.started] == [True, True]
    s3_server.client().delete_bucket(Bucket=doomed)
    await _feed(upload, data)
    outcomes = await upload.commit(hashlib.sha256(data).hexdigest(), len(data))
    assert (outcomes[0].ok, outcomes[0].error) == (False, f"compartiment introuvable: {doomed}")
    assert outcomes[1].ok
    assert s3_server.object_bytes(kept, KEY) == data
    assert s3_server.list_multipart_uploads(kept) == []


async def test_credentials_revoked_mid_way_fail_alone(s3_server: S3Server) -> None:
    kept, revoked = s3_server.make_bucket(), s3_server.make_bucket()
    user, key_id, secret = s3_server.make_user()
    data = os.urandom(PART + 99)
    revoked_location = s3_server.location(revoked, access_key_id=key_id, secret_access_key=secret)
    upload = await S3Upload.start(
        [_target(revoked_location), _target(s3_server.location(kept))], PART
    )
    assert [o.ok for o in upload.started] == [True, True]
    s3_server.iam().delete_access_key(UserName=user, AccessKeyId=key_id)
    await _feed(upload, data)
    outcomes = await upload.commit(hashlib.sha256(data).hexdigest(), len(data))
    assert (outcomes[0].ok, outcomes[0].error) == (False, "identifiants refusés par le stockage")
    assert outcomes[1].ok
    assert s3_server.object_bytes(kept, KEY) == data
    # Nobody can abort with the revoked key; the service's recovery does it with a good one.
    assert objects.abort_stale_uploads(s3_server.location(revoked), datetime.now(UTC)) == 1
    assert s3_server.list_multipart_uploads(revoked) == []


async def test_a_missing_bucket_shows_at_start(s3_server: S3Server) -> None:
    kept = s3_server.make_bucket()
    data = b"x" * 100
    upload = await S3Upload.start(
        [_target(s3_server.location("no-such-bucket-here")), _target(s3_server.location(kept))],
        PART,
    )
    assert [(o.ok, o.error) for o in upload.started] == [
        (False, "compartiment introuvable: no-such-bucket-here"),
        (True, None),
    ]
    await _feed(upload, data)
    outcomes = await upload.commit(hashlib.sha256(data).hexdigest(), len(data))
    assert [o.ok for o in outcomes] == [False, True]


async def test_the_pipe_is_drained_when_every_destination_failed(s3_server: S3Server) -> None:
    upload = await S3Upload.start([_target(s3_server.location("no-such-bucket-here"))], PART)
    # Far more than a pipe holds: the archive writer would block if nobody read.
    data = os.urandom(3 * PART)
    await _feed(upload, data)
    outcomes = await upload.commit(hashlib.sha256(data).hexdigest(), len(data))
    assert [(o.ok, o.error) for o in outcomes] == [
        (False, "compartiment introuvable: no-such-bucket-here")
    ]


async def test_object_lock_keeps_the_archive_until_its_date(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket(object_lock=True)
    location = s3_server.location(bucket, object_lock_days=2)
    before = datetime.now(UTC)
    data = os.urandom(PART + 1)
    [outcome] = await _upload([_target(location)], data)
    assert outcome.ok
    assert outcome.version_id
    assert outcome.retain_until is not None
    assert before + timedelta(days=2) - timedelta(seconds=1) <= outcome.retain_until
    assert outcome.retain_until <= datetime.now(UTC) + timedelta(days=2)
    # HeadObject, not GetObjectRetention: moto fails on the latter once a retention is set.
    head = s3_server.client().head_object(Bucket=bucket, Key=KEY, VersionId=outcome.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == outcome.retain_until
    assert objects.retention_of(location, KEY, outcome.version_id) == outcome.retain_until
    with pytest.raises(ObjectLockedError):
        objects.delete_object(location, KEY, outcome.version_id)
    assert s3_server.object_bytes(bucket, KEY) == data


async def test_the_secret_is_in_neither_argv_nor_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    bucket = s3_server.make_bucket()
    upload = await S3Upload.start([_target(s3_server.location(bucket))], PART)
    try:
        pid = upload.process.pid
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read()
        secret = s3_server.secret_access_key.encode()
        assert b"backup_api.storage.s3.uploader" in cmdline
        assert secret not in cmdline
        assert secret not in environ
        assert b"AWS_" not in environ
    finally:
        await upload.abort()
    assert s3_server.list_multipart_uploads(bucket) == []
    assert ABORTED
