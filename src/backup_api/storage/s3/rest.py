"""The few S3 calls of the upload process, made without a botocore client: requests
signed with botocore's own SigV4 signer and sent with urllib3.

A botocore client loads S3's whole service model and endpoint rules (tens of MiB, once
per upload process); the upload process needs six calls. Same rules as the service's
client (``client``): the location's endpoint and keys only (empty keys: unsigned
requests), connections to its pinned address with TLS checked against the endpoint's
name, redirects never followed, no proxy, no checksum beyond what S3 requires, retries
on connection errors and server errors as botocore's "standard" mode does.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any, NamedTuple, cast
from urllib.parse import quote, urlsplit

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import get_cert_path
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from backup_api.storage.s3.errors import describe_response
from backup_api.storage.s3.location import S3Location

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
#: What botocore's "standard" retry mode retries, besides connection errors.
_TRANSIENT_STATUSES = (500, 502, 503, 504, 429)
_TRANSIENT_CODES = {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "EC2ThrottledException",
}
#: botocore's: t = rand(0, 1) * min(2 ** attempt, 20) seconds.
_MAX_BACKOFF = 20.0


class S3RequestError(Exception):
    """A call failed; the message is the owner's French reason, secret-free."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.code = code


class _Keys:
    """What botocore's signer reads of credentials (``botocore.credentials`` itself pulls in
    much of botocore for its providers); the secret stays out of repr()."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token: str | None = None

    def __repr__(self) -> str:
        return f"_Keys({self.access_key!r}, '***')"


class Response(NamedTuple):
    status: int
    headers: Any
    data: bytes


def content_md5(data: bytes | bytearray) -> str:
    """Content-MD5 of ``data``: S3 wants it (or a checksum) on writes under Object Lock."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def iso8601(moment: datetime) -> str:
    """A date as S3 reads it in Object Lock headers and bodies (UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(data: bytes) -> ET.Element | None:
    try:
        # The store's own answers; expat refuses entity expansion bombs.
        return ET.fromstring(data)  # noqa: S314
    except ET.ParseError:
        return None


def _find_text(data: bytes, name: str) -> str | None:
    """The text of the first element named ``name`` (any namespace) in an XML body."""
    root = _parse(data)
    if root is None:
        return None
    for element in root.iter():
        if _local(element.tag) == name:
            return element.text or ""
    return None


def _error_code(data: bytes) -> str | None:
    """The ``Code`` of an XML ``Error`` body; None when the body is not one."""
    root = _parse(data)
    if root is None or _local(root.tag) != "Error":
        return None
    for element in root:
        if _local(element.tag) == "Code":
            return (element.text or "").strip()
    return ""


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, SSLError):
        return "erreur TLS"
    # A connection refused is a NewConnectionError, itself a ConnectTimeoutError.
    if isinstance(exc, NewConnectionError):
        return "stockage injoignable"
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, Urllib3TimeoutError)):
        return "délai dépassé"
    return "stockage injoignable"


class S3RestClient:
    """Requests to one location's bucket over one connection pool (not thread-safe: the
    upload process makes them from one thread)."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        endpoint = urlsplit(location.endpoint)
        self._scheme = endpoint.scheme
        if self._scheme not in _DEFAULT_PORTS:
            raise S3RequestError("adresse du stockage invalide (http ou https attendu)")
        host = (endpoint.hostname or "").lower()
        port = endpoint.port or _DEFAULT_PORTS[self._scheme]
        self._path = endpoint.path.rstrip("/")
        if location.path_style:
            self._path = f"{self._path}/{quote(location.bucket, safe='')}"
        else:
            host = f"{location.bucket}.{host}".lower()
        shown = f"[{host}]" if ":" in host else host
        if port != _DEFAULT_PORTS[self._scheme]:
            shown = f"{shown}:{port}"
        # The pool's host is the pinned address: the Host header names the real one, as
        # signed.
        self._host_header = shown
        self._base = f"{self._scheme}://{shown}"
        target = (location.pinned_address or host).strip("[]")
        timeout = urllib3.Timeout(connect=location.connect_timeout, read=location.read_timeout)
        self._pool: urllib3.HTTPConnectionPool
        if self._scheme == "https":
            self._pool = urllib3.HTTPSConnectionPool(
                target,
                port,
                timeout=timeout,
                maxsize=1,
                retries=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=get_cert_path(True),
                server_hostname=host,
                assert_hostname=host,
            )
        else:
            self._pool = urllib3.HTTPConnectionPool(
                target, port, timeout=timeout, maxsize=1, retries=False
            )
        self._signer = (
            None
            if location.unsigned
            else S3SigV4Auth(
                _Keys(location.access_key_id, location.secret_access_key),
                "s3",
                location.region or "us-east-1",
            )
        )

    def close(self) -> None:
        self._pool.close()

    # ---------------------------------------------------------------- requests

    def _url(self, key: str, query: list[tuple[str, str]]) -> str:
        path = f"{self._path}/{quote(key, safe='/~')}"
        if query:
            path += "?" + "&".join(
                quote(name, safe="-_.~") + (f"={quote(value, safe='-_.~')}" if value else "")
                for name, value in query
            )
        return path

    def request(
        self,
        method: str,
        key: str,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | bytearray = b"",
    ) -> Response:
        """Send one request (again on a transient failure, up to the location's attempts);
        a 2xx response or ``S3RequestError``. An XML error in a 200 response (S3 may
        answer CompleteMultipartUpload so) is an error too."""
        path = self._url(key, query or [])
        attempts = max(1, self.location.max_attempts)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._send(method, path, headers or {}, body)
            except (HTTPError, OSError) as exc:
                if last:
                    raise S3RequestError(_transport_reason(exc)) from None
            else:
                code = _error_code(response.data) if response.data else None
                if code is None:
                    if 200 <= response.status < 300:
                        return response
                    code = str(response.status)
                transient = response.status in _TRANSIENT_STATUSES or code in _TRANSIENT_CODES
                if last or not transient:
                    reason = describe_response(code, response.status, self.location.bucket)
                    raise S3RequestError(reason, code)
            time.sleep(random.random() * min(2.0**attempt, _MAX_BACKOFF))
        raise AssertionError("unreachable")

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | bytearray
    ) -> Response:
        sent = {"Host": self._host_header, "User-Agent": "backup-api", **headers}
        if self._signer is not None:
            # Signed anew at each attempt: the signature carries the time.
            request = AWSRequest(method=method, url=self._base + path, headers=sent, data=body)
            self._signer.add_auth(request)
            sent = dict(request.headers.items())
        reply = self._pool.urlopen(
            method,
            path,
            # A bytearray goes out as it is (urllib3 sends any buffer): no copy of a part.
            body=cast(bytes, body),
            headers=sent,
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=True,
        )
        return Response(reply.status, reply.headers, reply.data)

    # ---------------------------------------------------------------- calls

    def create_multipart_upload(self, key: str, lock_until: datetime | None) -> str:
        headers = {"Content-Type": "application/zip", **_lock_headers(lock_until)}
        response = self.request("POST", key, [("uploads", "")], headers)
        upload_id = _find_text(response.data, "UploadId")
        if not upload_id:
            raise S3RequestError("erreur du stockage: réponse illisible")
        return upload_id

    def upload_part(
        self, key: str, upload_id: str, number: int, data: bytearray, with_md5: bool
    ) -> str:
        """Send one part; returns its ETag."""
        headers = {"Content-MD5": content_md5(data)} if with_md5 else {}
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = self.request("PUT", key, query, headers, data)
        return str(response.headers.get("ETag", ""))

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str | None:
        """Complete the upload from its parts (number, ETag); returns the version id."""
        root = ET.Element("CompleteMultipartUpload", xmlns=_NAMESPACE)
        for number, etag in parts:
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = etag
        body = ET.tostring(root, encoding="utf-8")
        headers = {"Content-Type": "application/xml"}
        response = self.request("POST", key, [("uploadId", upload_id)], headers, body)
        return _version_id(response)

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.request("DELETE", key, [("uploadId", upload_id)])

    def put_object(
        self, key: str, body: bytes, content_type: str, lock_until: datetime | None
    ) -> str | None:
        """Write a small object (locked until ``lock_until`` when given); its version id."""
        headers = {"Content-Type": content_type, **_lock_headers(lock_until)}
        if lock_until is not None:
            headers["Content-MD5"] = content_md5(body)
        return _version_id(self.request("PUT", key, None, headers, body))

    def put_object_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        """Put that version under Object Lock, COMPLIANCE until ``until``."""
        root = ET.Element("Retention", xmlns=_NAMESPACE)
        ET.SubElement(root, "Mode").text = "COMPLIANCE"
        ET.SubElement(root, "RetainUntilDate").text = iso8601(until)
        body = ET.tostring(root, encoding="utf-8")
        # S3 requires a checksum of this body: Content-MD5, the one every server reads.
        headers = {"Content-Type": "application/xml", "Content-MD5": content_md5(body)}
        query = [("retention", "")]
        if version_id:
            query.append(("versionId", version_id))
        self.request("PUT", key, query, headers, body)


def _lock_headers(until: datetime | None) -> dict[str, str]:
    if until is None:
        return {}
    return {
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-object-lock-retain-until-date": iso8601(until),
    }


def _version_id(response: Response) -> str | None:
    value = response.headers.get("x-amz-version-id")
    return str(value) if value else None
