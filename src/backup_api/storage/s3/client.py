"""The botocore client of one location, and what its errors mean to the owner.

Always explicit: the endpoint (so ``AWS_ENDPOINT_URL*`` never applies), the credentials
(empty keys mean unsigned requests, never botocore's default chain of environment, profile
or instance role), no proxy from the environment, checksums only where the operation
requires them (recent botocore adds CRC checksums that several S3-compatible servers
reject). Every request goes to the location's host, at its pinned address when it has one,
and redirects are never followed: a storage cannot be pointed at an internal service.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import botocore.awsrequest
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import URLLib3Session
from urllib3.util import parse_url

from backup_api.storage.s3.errors import describe_response
from backup_api.storage.s3.location import S3Location

_SSL_ONLY = ("ssl_context", "cert_file", "key_file")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_session: Any = None
_session_lock = threading.Lock()


class S3Error(Exception):
    """An S3 operation failed; the message is French, secret-free and shown to the owner."""


class ObjectLockedError(S3Error):
    """The object is under Object Lock until ``retain_until``."""

    def __init__(self, retain_until: datetime) -> None:
        super().__init__(f"objet verrouillé jusqu'au {retain_until:%Y-%m-%d %H:%M:%S} UTC")
        self.retain_until = retain_until


class ForeignHostError(Exception):
    """A request was about to leave the location's host (a redirect, a rewritten URL)."""


def _botocore_session() -> Any:
    """One botocore session per process, blind to the host's AWS configuration files."""
    global _session
    with _session_lock:
        if _session is None:
            session = botocore.session.Session()
            session.set_config_variable("config_file", os.devnull)
            session.set_config_variable("credentials_file", os.devnull)
            _session = session
        return _session


class _PinnedPools:
    """urllib3 pools that connect to one address whatever the URL's host says, with TLS
    checked against the URL's host name (``server_hostname``/``assert_hostname``)."""

    def __init__(self, address: str | None, pool_kwargs: dict[str, Any]) -> None:
        self._address = address
        self._kwargs = pool_kwargs
        self._pools: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()

    def connection_from_url(self, url: str) -> Any:
        parts = parse_url(url)
        scheme = parts.scheme or "http"
        host = parts.host or ""
        port = parts.port or _DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                kwargs = dict(self._kwargs)
                target = (self._address or host).strip("[]")
                if scheme == "https":
                    kwargs.update(
                        server_hostname=host.strip("[]"), assert_hostname=host.strip("[]")
                    )
                    pool = botocore.awsrequest.AWSHTTPSConnectionPool(target, port, **kwargs)
                else:
                    for name in _SSL_ONLY:
                        kwargs.pop(name, None)
                    pool = botocore.awsrequest.AWSHTTPConnectionPool(target, port, **kwargs)
                self._pools[key] = pool
            return pool

    def clear(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


class _LocationSession(URLLib3Session):  # type: ignore[misc]
    """botocore's HTTP session, held to the location's host and pinned address."""

    def __init__(self, location: S3Location) -> None:
        super().__init__(
            verify=True,
            proxies={},
            timeout=(location.connect_timeout, location.read_timeout),
            max_pool_connections=4,
        )
        endpoint = urlsplit(location.endpoint)
        host = (endpoint.hostname or "").lower()
        self._hosts = {host, f"{location.bucket}.{host}".lower()}
        self._scheme = endpoint.scheme
        self._pinned = _PinnedPools(location.pinned_address, self._get_pool_manager_kwargs())

    def _get_connection_manager(self, url: str, proxy_url: str | None = None) -> Any:
        return self._pinned

    def send(self, request: Any) -> Any:
        url = urlsplit(request.url)
        if (url.hostname or "").lower() not in self._hosts or url.scheme != self._scheme:
            raise HTTPClientError(error=ForeignHostError(url.hostname))
        port = url.port
        host = url.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if port is not None and port != _DEFAULT_PORTS.get(url.scheme):
            host = f"{host}:{port}"
        # The pool's host is the pinned address: name the real host, as signed.
        request.headers["Host"] = host
        return super().send(request)

    def close(self) -> None:
        self._pinned.clear()
        super().close()


def client_config(location: S3Location) -> Config:
    return Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": location.max_attempts, "mode": "standard"},
        connect_timeout=location.connect_timeout,
        read_timeout=location.read_timeout,
        s3={"addressing_style": "path" if location.path_style else "virtual"},
        signature_version=UNSIGNED if location.unsigned else None,
        proxies={},
        user_agent_appid="backup-api",
    )


def make_client(location: S3Location) -> Any:
    """A botocore S3 client for ``location`` (thread-safe once made)."""
    session = _botocore_session()
    with _session_lock:
        # Explicit keys, even empty ones: botocore never looks for credentials elsewhere.
        client = session.create_client(
            "s3",
            region_name=location.region or "us-east-1",
            endpoint_url=location.endpoint,
            aws_access_key_id=location.access_key_id,
            aws_secret_access_key=location.secret_access_key,
            config=client_config(location),
        )
    client._endpoint.http_session = _LocationSession(location)
    client.meta.events.register("before-call.s3", _never_redirect)
    return client


def _never_redirect(context: dict[str, Any], **_: Any) -> None:
    # botocore's S3 region redirector would re-send a request elsewhere on a 301/307 or a
    # region error (and, against a server that keeps redirecting, recurse): mark every
    # request as already redirected so it never does. The region is the owner's to give.
    context.setdefault("s3_redirect", {})["redirected"] = True


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException, bucket: str = "") -> str:
    """The owner's French reason for ``exc``; never the secret, never a server's own text."""
    if isinstance(exc, S3Error):
        return str(exc)
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return describe_response(error_code(exc), status, bucket)
    if isinstance(exc, SSLError):
        return "erreur TLS"
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
        return "délai dépassé"
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
        return "stockage injoignable"
    if isinstance(exc, HTTPClientError):
        inner = exc.kwargs.get("error")
        if isinstance(inner, ForeignHostError):
            return "requête vers un autre hôte refusée (redirection)"
        return "stockage injoignable"
    if isinstance(exc, BotoCoreError):
        return f"erreur du client de stockage: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return "stockage injoignable"
    return f"erreur du stockage: {type(exc).__name__}"
