"""What the service does with objects, synchronously (the service runs these in worker
threads). Every failure is an ``S3Error`` whose message is the owner's French reason."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backup_api.storage.s3.client import (
    ObjectLockedError,
    S3Error,
    describe_error,
    error_code,
    make_client,
)
from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.manifest import MANIFEST_SUFFIX, encode_manifest
from backup_api.storage.s3.manifest import manifest_key as manifest_key
from backup_api.storage.s3.rest import content_md5 as content_md5

#: Where ``check_bucket`` writes its probe, under the location's prefix.
PROBE_NAME = ".backup-api-probe-"
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
#: A manifest is a few hundred bytes; anything much larger is not one of ours.
_MANIFEST_MAX = 64 * 1024


def _fail(location: S3Location, exc: BaseException) -> S3Error:
    return S3Error(describe_error(exc, location.bucket))


def _prefix(location: S3Location) -> str:
    prefix = location.prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def check_bucket(location: S3Location) -> None:
    """Write a small object under the prefix, read it back, compare, delete it (every
    version, so a versioned bucket keeps nothing). For the storage's ``/test``."""
    client = make_client(location)
    key = f"{_prefix(location)}{PROBE_NAME}{uuid.uuid4().hex}"
    body = os.urandom(32)
    try:
        if location.object_lock_days:
            _require_object_lock(client, location)
        put = client.put_object(Bucket=location.bucket, Key=key, Body=body)
        try:
            read = client.get_object(Bucket=location.bucket, Key=key)["Body"].read()
        finally:
            version = put.get("VersionId")
            if version:
                client.delete_object(Bucket=location.bucket, Key=key, VersionId=version)
            else:
                client.delete_object(Bucket=location.bucket, Key=key)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    if read != body:
        raise S3Error("le stockage n'a pas rendu l'objet écrit à l'identique")


def _require_object_lock(client: Any, location: S3Location) -> None:
    try:
        config = client.get_object_lock_configuration(Bucket=location.bucket)
    except ClientError as exc:
        if error_code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        config = {}
    if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise S3Error(
            f"le compartiment {location.bucket} n'a pas le verrouillage d'objets (Object Lock)"
        )


def head_object(location: S3Location, key: str) -> tuple[int, str | None] | None:
    """(size, version id) of the object, or None when there is none."""
    try:
        head = make_client(location).head_object(Bucket=location.bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return None
        raise _fail(location, exc) from None
    except (BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    return int(head["ContentLength"]), head.get("VersionId")


def retention_of(location: S3Location, key: str, version_id: str | None) -> datetime | None:
    """Until when the object (that version) is under Object Lock; None when it is not."""
    extra = {"VersionId": version_id} if version_id else {}
    try:
        head = make_client(location).head_object(Bucket=location.bucket, Key=key, **extra)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None


def delete_object(location: S3Location, key: str, version_id: str | None) -> None:
    """Delete the object: that version when given (in a versioned bucket deleting by key
    would only hide it behind a delete marker). Raises ``ObjectLockedError`` when Object
    Lock keeps it."""
    client = make_client(location)
    extra = {"VersionId": version_id} if version_id else {}
    try:
        client.delete_object(Bucket=location.bucket, Key=key, **extra)
    except ClientError as exc:
        if error_code(exc) == "AccessDenied" and version_id:
            until = _locked_until(client, location, key, version_id)
            if until is not None:
                raise ObjectLockedError(until) from None
        raise _fail(location, exc) from None
    except (BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None


def _locked_until(client: Any, location: S3Location, key: str, version_id: str) -> datetime | None:
    try:
        head = client.head_object(Bucket=location.bucket, Key=key, VersionId=version_id)
    except (ClientError, BotoCoreError, OSError):
        return None
    until = head.get("ObjectLockRetainUntilDate")
    if isinstance(until, datetime) and until > datetime.now(UTC):
        return until
    return None


def iter_object(location: S3Location, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The object's bytes, streamed in chunks of at most ``chunk`` (constant memory)."""
    try:
        body = make_client(location).get_object(Bucket=location.bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    try:
        while True:
            try:
                data = body.read(chunk)
            except (ClientError, BotoCoreError, OSError) as exc:
                raise _fail(location, exc) from None
            if not data:
                return
            yield data
    finally:
        body.close()


def download_to_fd(location: S3Location, key: str, fd: int, chunk: int = 1 << 20) -> int:
    """Write the object to ``fd`` (a file or a pipe); returns the bytes written."""
    written = 0
    for data in iter_object(location, key, chunk):
        view = memoryview(data)
        while view:
            sent = os.write(fd, view)
            view = view[sent:]
        written += len(data)
    return written


def put_manifest(
    location: S3Location,
    key: str,
    manifest: dict[str, Any],
    retain_until: datetime | None = None,
) -> None:
    """Write ``manifest`` as JSON beside the object (locked as long as it when given)."""
    body = encode_manifest(manifest)
    extra: dict[str, Any] = {}
    if retain_until is not None:
        extra = {
            "ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": retain_until,
            "ContentMD5": content_md5(body),
        }
    try:
        make_client(location).put_object(
            Bucket=location.bucket,
            Key=manifest_key(key),
            Body=body,
            ContentType="application/json",
            **extra,
        )
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None


def list_manifests(location: S3Location) -> list[dict[str, Any]]:
    """Every readable manifest under the prefix, each with ``key``: its archive's key.
    Objects that are not JSON objects are skipped (a bucket may hold anything)."""
    client = make_client(location)
    found: list[dict[str, Any]] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=_prefix(location)):
            for item in page.get("Contents", []):
                name = item["Key"]
                if not name.endswith(MANIFEST_SUFFIX) or item.get("Size", 0) > _MANIFEST_MAX:
                    continue
                body = client.get_object(Bucket=location.bucket, Key=name)["Body"].read()
                try:
                    manifest = json.loads(body)
                except ValueError:
                    continue
                if isinstance(manifest, dict):
                    manifest["key"] = name[: -len(MANIFEST_SUFFIX)]
                    found.append(manifest)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    return found


def abort_stale_uploads(location: S3Location, started_before: datetime) -> int:
    """Abort the multipart uploads under the prefix begun before ``started_before`` (those
    of an instance that crashed); returns how many."""
    client = make_client(location)
    aborted = 0
    try:
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=_prefix(location)):
            for upload in page.get("Uploads", []):
                initiated = upload.get("Initiated")
                if isinstance(initiated, datetime) and initiated >= started_before:
                    continue
                client.abort_multipart_upload(
                    Bucket=location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _fail(location, exc) from None
    return aborted
