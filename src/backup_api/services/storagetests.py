"""``POST /api/storages/{id}/test``: reach a storage's bucket as a backup would (the
owner's outbound rule, the one pinned address, the stored credentials), write a small
object, read it back and delete it, and say what failed.

Like a database's connection test, it makes the service connect where the caller says:
it counts against the same per-account limit.
"""

from __future__ import annotations

import asyncio

from botocore.exceptions import BotoCoreError

from backup_api.config import Settings
from backup_api.db import Metadata
from backup_api.exceptions import TooManyRequests
from backup_api.models import Storage, StorageTestResult
from backup_api.netpolicy import HostNotAllowedError
from backup_api.principals import Principal
from backup_api.ratelimit import RateLimiter
from backup_api.repositories import Record, users
from backup_api.security import CredentialError, Keys, decrypt_secret
from backup_api.services.connectiontests import THROTTLED
from backup_api.storage.s3.client import S3Error, describe_error
from backup_api.storage.s3.objects import check_bucket
from backup_api.storage.s3.policy import outbound_location


async def run_storage_test(
    *,
    settings: Settings,
    metadata: Metadata,
    keys: Keys,
    limiter: RateLimiter,
    caller: Principal,
    storage: Record,
) -> StorageTestResult:
    wait = limiter.acquire(caller.id)
    if wait:
        raise TooManyRequests(THROTTLED, retry_after=wait)
    owner_id: int = storage.user_id
    # The owner's role, as a backup to it would apply it.
    owner_is_admin = await metadata.read(lambda c: users.is_admin(c, owner_id))
    try:
        secret = decrypt_secret(keys, storage.secret_encrypted)
        fields = Storage(**storage._mapping)
        location = await outbound_location(settings, fields, secret, owner_is_admin)
        await asyncio.to_thread(check_bucket, location)
    except (HostNotAllowedError, S3Error, CredentialError) as exc:
        # French and free of the secret: each of these says what failed, never with what.
        return StorageTestResult(ok=False, error=str(exc))
    except BotoCoreError as exc:
        # What botocore refuses before any request (a region it cannot use...).
        return StorageTestResult(ok=False, error=describe_error(exc, storage.bucket))
    return StorageTestResult(ok=True)
