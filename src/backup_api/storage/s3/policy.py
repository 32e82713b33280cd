"""Where a storage's requests may go: the outbound rule applied to its endpoint, once per
use, and the address it resolved to pinned for the connections that follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backup_api.netpolicy import (
    HostNotAllowedError,
    outbound_allowed_among,
    resolve_addresses,
)
from backup_api.storage.s3.location import S3Location

if TYPE_CHECKING:
    from backup_api.config import Settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


class EndpointError(HostNotAllowedError):
    """The endpoint is not a usable http(s) URL."""


def endpoint_host_port(endpoint: str) -> tuple[str, int]:
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise EndpointError(f"adresse du stockage invalide: {endpoint}") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise EndpointError(f"adresse du stockage invalide (http ou https attendu): {endpoint}")
    return parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


async def outbound_location(
    settings: Settings, storage: Any, secret: str, owner_is_admin: bool
) -> S3Location:
    """The location of ``storage`` (a storage's record or model: its endpoint, region,
    bucket, prefix, access_key_id, path_style, object_lock_days) with its endpoint
    resolved once and pinned.

    Non-admins reach public addresses only, unless the operator lists the host or its
    network in ``allowed_outbound_hosts``; admins are not limited. Raises
    ``HostNotAllowedError`` (French message) otherwise.
    """
    host, port = endpoint_host_port(storage.endpoint)
    addresses = await resolve_addresses(host, port)
    if not owner_is_admin:
        addresses = outbound_allowed_among(host, addresses, settings.allowed_outbound_hosts)
    return S3Location(
        endpoint=storage.endpoint,
        region=storage.region,
        bucket=storage.bucket,
        prefix=storage.prefix,
        access_key_id=storage.access_key_id,
        secret_access_key=secret,
        path_style=storage.path_style,
        object_lock_days=storage.object_lock_days,
        pinned_address=addresses[0],
    )
