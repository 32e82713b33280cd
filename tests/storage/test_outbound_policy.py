"""Where a storage's requests may go: public addresses for users, anything the operator
lists (names, networks), anything for admins; the resolved address is pinned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backup_api.config import Settings
from backup_api.models import Storage
from backup_api.netpolicy import HostNotAllowedError
from backup_api.storage.s3 import objects
from backup_api.storage.s3.policy import EndpointError, outbound_location
from tests.support.servers.s3 import S3Server


def _storage(endpoint: str, **fields: Any) -> Storage:
    values: dict[str, Any] = {
        "user_id": 1,
        "name": "s",
        "type": "s3",
        "endpoint": endpoint,
        "region": "us-east-1",
        "bucket": "b",
        "prefix": "p",
        "access_key_id": "AKIA",
        "secret_encrypted": "",
        "path_style": True,
    }
    values.update(fields)
    return Storage(**values)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "http://10.1.2.3:9000",
        "https://192.168.0.10",
        "http://169.254.169.254",
        "http://[::1]:9000",
        "http://[::ffff:127.0.0.1]:9000",
        "http://0.0.0.0:9000",
        "http://localhost:9000",
    ],
)
async def test_users_cannot_reach_private_addresses(
    settings_factory: Callable[..., Settings], endpoint: str
) -> None:
    with pytest.raises(HostNotAllowedError, match="adresse non publique"):
        await outbound_location(settings_factory(), _storage(endpoint), "secret", False)


async def test_public_addresses_are_allowed_and_pinned(
    settings_factory: Callable[..., Settings],
) -> None:
    location = await outbound_location(
        settings_factory(), _storage("https://8.8.8.8"), "secret", False
    )
    assert location.pinned_address == "8.8.8.8"
    assert location.secret_access_key == "secret"


@pytest.mark.parametrize(
    ("allowed", "endpoint", "pinned"),
    [
        (["localhost"], "http://localhost:9000", ("127.0.0.1", "::1")),
        (["127.0.0.0/8"], "http://127.0.0.1:9000", ("127.0.0.1",)),
        (["10.1.2.3"], "http://10.1.2.3:9000", ("10.1.2.3",)),
    ],
)
async def test_listed_hosts_and_networks_are_allowed(
    settings_factory: Callable[..., Settings],
    allowed: list[str],
    endpoint: str,
    pinned: tuple[str, ...],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=allowed)
    location = await outbound_location(settings, _storage(endpoint), "secret", False)
    assert location.pinned_address in pinned


async def test_a_listed_network_does_not_open_others(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(allowed_outbound_hosts=["10.0.0.0/8"])
    with pytest.raises(HostNotAllowedError):
        await outbound_location(settings, _storage("http://192.168.1.1"), "s", False)


async def test_admins_are_not_limited(settings_factory: Callable[..., Settings]) -> None:
    location = await outbound_location(
        settings_factory(), _storage("http://127.0.0.1:9000"), "secret", True
    )
    assert location.pinned_address == "127.0.0.1"


@pytest.mark.parametrize("endpoint", ["ftp://example.com", "s3.example.com", "http://:80"])
async def test_endpoints_must_be_http_urls(
    settings_factory: Callable[..., Settings], endpoint: str
) -> None:
    with pytest.raises(EndpointError, match="adresse du stockage invalide"):
        await outbound_location(settings_factory(), _storage(endpoint), "s", True)


async def test_a_listed_server_is_reached_through_the_pinned_address(
    settings_factory: Callable[..., Settings], s3_server: S3Server
) -> None:
    bucket = s3_server.make_bucket()
    storage = _storage(
        f"http://localhost:{s3_server.port}",
        bucket=bucket,
        access_key_id=s3_server.access_key_id,
    )
    settings = settings_factory(allowed_outbound_hosts=["127.0.0.1/32"])
    location = await outbound_location(settings, storage, s3_server.secret_access_key, False)
    assert location.pinned_address == "127.0.0.1"
    objects.check_bucket(location)
