"""The upload process's own S3 requests (no botocore client there): what it imports, what
goes on the wire (signed or not, no extra checksum, named for the endpoint's host at its
pinned address, both addressing styles), what it does with redirects, TLS faults,
transient errors; and its peak memory on a 20 MiB upload, printed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from backup_api.storage.s3.client import make_client
from backup_api.storage.s3.location import S3Location
from backup_api.storage.s3.upload import CopyOutcome, S3Upload, UploadTarget
from backup_api.storage.s3.uploader import MIN_PART_SIZE
from tests.archiving.test_archive_process_imports import imported
from tests.support.fakes import stalled_server
from tests.support.servers.s3 import S3Server, port_of, recording_proxy, redirecting_server

PART = MIN_PART_SIZE
KEY = "backups/postgresql/shop_20260101_000000.zip"
CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum", "x-amz-trailer")
#: Modules that make a botocore client (its service model, its endpoint rules).
CLIENT_MODULES = {
    "botocore.client",
    "botocore.session",
    "botocore.loaders",
    "botocore.regions",
    "backup_api.storage.s3.client",
    "backup_api.storage.s3.objects",
}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _upload(
    location: S3Location, data: bytes, **start: Any
) -> tuple[S3Upload, list[CopyOutcome]]:
    upload = await S3Upload.start([UploadTarget(location, KEY, {"format": 1})], PART, **start)
    await asyncio.to_thread(_write_all, upload.fileno(), data)
    return upload, await upload.commit(hashlib.sha256(data).hexdigest(), len(data))


def _under_importtime(log: Path):  # type: ignore[no-untyped-def]
    def wrap(argv: list[str]) -> list[str]:
        python, *rest = argv
        return ["sh", "-c", 'exec "$@" 2>>"$0"', str(log), python, "-X", "importtime", *rest]

    return wrap


async def test_the_upload_process_makes_no_botocore_client(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket(object_lock=True)
    log = tmp_path / "importtime.log"
    location = s3_server.location(bucket, object_lock_days=1)
    _, outcomes = await _upload(location, os.urandom(PART + 1), wrap=_under_importtime(log))
    # Every call ran: multipart upload, parts, completion, retention, manifest.
    assert [(o.ok, o.error) for o in outcomes] == [(True, None)]
    assert s3_server.object_bytes(bucket, KEY + ".manifest.json")
    modules = imported(log)
    assert "backup_api.storage.s3.rest" in modules
    assert "botocore.auth" in modules
    assert sorted(modules & CLIENT_MODULES) == []


def _peak_rss(pid: int, peak: list[int], done: threading.Event) -> None:
    """VmHWM (the process's peak resident set so far, kB) read until the process is gone:
    the last value read is its peak over the whole upload."""
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak[0] = int(line.split()[1])
        except OSError:
            return
        done.wait(0.02)


async def test_the_upload_process_peak_memory(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    data = os.urandom(20 * 1024 * 1024)
    upload = await S3Upload.start(
        [UploadTarget(s3_server.location(bucket), KEY, {})], 8 * 1024 * 1024
    )
    peak = [0]
    done = threading.Event()
    watcher = threading.Thread(target=_peak_rss, args=(upload.process.pid, peak, done))
    watcher.start()
    try:
        await asyncio.to_thread(_write_all, upload.fileno(), data)
        outcomes = await upload.commit(hashlib.sha256(data).hexdigest(), len(data))
    finally:
        done.set()
        watcher.join()
    assert [o.ok for o in outcomes] == [True]
    assert s3_server.object_bytes(bucket, KEY) == data
    print(f"\nupload process peak RSS (VmHWM), 20 MiB in 8 MiB parts: {peak[0] / 1024:.1f} MiB")


async def test_requests_are_signed_named_for_the_host_and_carry_no_extra_checksum(
    s3_server: S3Server,
) -> None:
    bucket = s3_server.make_bucket(object_lock=True)
    data = os.urandom(PART + 7)
    # localhost would reach nothing on this port: the pinned 127.0.0.2 gets the requests.
    with recording_proxy(s3_server, host="127.0.0.2") as proxy:
        port = port_of(proxy)
        location = s3_server.location(
            bucket,
            endpoint=f"http://localhost:{port}",
            pinned_address="127.0.0.2",
            object_lock_days=1,
        )
        _, outcomes = await _upload(location, data)
        records = list(proxy.records)
    assert [(o.ok, o.error) for o in outcomes] == [(True, None)]
    assert s3_server.object_bytes(bucket, KEY) == data
    # Create, two parts, complete, retention, manifest.
    assert [r.method for r in records] == ["POST", "PUT", "PUT", "POST", "PUT", "PUT"]
    assert {r.headers["host"] for r in records} == {f"localhost:{port}"}
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in records)
    assert [n for r in records for n in r.headers if n.startswith(CHECKSUM_HEADERS)] == []
    # Content-MD5 where Object Lock wants it: the parts, the retention, the manifest.
    assert ["content-md5" in r.headers for r in records] == [False, True, True, False, True, True]
    assert s3_server.secret_access_key not in repr([tuple(r) for r in records])


async def test_empty_keys_send_unsigned_requests(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    with recording_proxy(s3_server) as proxy:
        location = s3_server.location(
            bucket,
            endpoint=f"http://127.0.0.1:{port_of(proxy)}",
            access_key_id="",
            secret_access_key="",
        )
        upload = await S3Upload.start([UploadTarget(location, KEY, {})], PART)
        await upload.abort()
        records = list(proxy.records)
    # moto refuses an anonymous request in its own way; what matters is how it went out.
    assert records
    assert [r for r in records if "authorization" in r.headers] == []
    assert s3_server.list_multipart_uploads(bucket) == []


async def test_virtual_hosted_addressing_as_the_service_client_does(s3_server: S3Server) -> None:
    # The suite's server reads buckets from the path only (its Host names are made up), so
    # a virtual-hosted request finds no bucket there, once its signature is checked: the
    # upload process must send what the service's botocore client sends.
    bucket = s3_server.make_bucket()
    with recording_proxy(s3_server) as proxy:
        port = port_of(proxy)
        location = s3_server.location(
            bucket,
            endpoint=f"http://s3.test.invalid:{port}",
            pinned_address="127.0.0.1",
            path_style=False,
        )
        upload = await S3Upload.start([UploadTarget(location, KEY, {})], PART)
        await upload.abort()
        ours = [(r.method, r.path, r.headers["host"]) for r in proxy.records]
        proxy.records.clear()
        with contextlib.suppress(Exception):
            make_client(location).create_multipart_upload(
                Bucket=bucket, Key=KEY, ContentType="application/zip"
            )
        theirs = [(r.method, r.path, r.headers["host"]) for r in proxy.records]
    assert ours == [("POST", f"/{KEY}?uploads", f"{bucket}.s3.test.invalid:{port}")]
    assert ours == theirs
    assert [(o.ok, o.error) for o in upload.started] == [
        (False, f"compartiment introuvable: {bucket}")
    ]


async def test_redirects_are_not_followed(s3_server: S3Server) -> None:
    with redirecting_server("http://127.0.0.1:1") as elsewhere:
        with redirecting_server(f"http://127.0.0.1:{port_of(elsewhere)}") as redirector:
            location = s3_server.location(
                "b", endpoint=f"http://127.0.0.1:{port_of(redirector)}", max_attempts=3
            )
            upload = await S3Upload.start([UploadTarget(location, KEY, {})], PART)
            await upload.abort()
            assert [(o.ok, o.error) for o in upload.started] == [
                (False, "le stockage répond par une redirection, qui n'est pas suivie")
            ]
            assert len(redirector.records) == 1
        assert elsewhere.records == []


async def test_tls_to_a_plain_http_server(s3_server: S3Server) -> None:
    location = s3_server.location("b", endpoint=f"https://127.0.0.1:{s3_server.port}")
    upload = await S3Upload.start([UploadTarget(location, KEY, {})], PART)
    await upload.abort()
    assert [(o.ok, o.error) for o in upload.started] == [(False, "erreur TLS")]


async def test_a_silent_endpoint_times_out(s3_server: S3Server) -> None:
    with stalled_server() as port:
        location = s3_server.location(
            "b", endpoint=f"http://127.0.0.1:{port}", connect_timeout=1.0, read_timeout=0.3
        )
        upload = await S3Upload.start([UploadTarget(location, KEY, {})], PART)
        await upload.abort()
    assert [(o.ok, o.error) for o in upload.started] == [(False, "délai dépassé")]


class _FlakyHandler(BaseHTTPRequestHandler):
    """Answers each request's first attempt with a 503 SlowDown, then passes it on."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        attempt = (self.command, self.path)
        self.server.attempts.append(attempt)
        if self.server.attempts.count(attempt) == 1:
            error = b"<Error><Code>SlowDown</Code><Message>later</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        upstream = http.client.HTTPConnection(*self.server.target, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PUT = do_POST = do_DELETE = _handle  # noqa: N815


@contextlib.contextmanager
def _flaky_proxy(s3: S3Server) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    server.daemon_threads = True
    server.attempts = []
    server.target = ("127.0.0.1", s3.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_server_errors_are_retried_up_to_the_locations_attempts(
    s3_server: S3Server,
) -> None:
    bucket, failing = s3_server.make_bucket(), s3_server.make_bucket()
    with _flaky_proxy(s3_server) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        location = s3_server.location(bucket, endpoint=endpoint, max_attempts=2)
        _, outcomes = await _upload(location, b"retried")
        assert [(o.ok, o.error) for o in outcomes] == [(True, None)]
        # Every call answered 503 once, then went through.
        assert len(proxy.attempts) == 2 * len(set(proxy.attempts))
        once = s3_server.location(failing, endpoint=endpoint, max_attempts=1)
        upload = await S3Upload.start([UploadTarget(once, KEY, {})], PART)
        await upload.abort()
    assert s3_server.object_bytes(bucket, KEY) == b"retried"
    assert [(o.ok, o.error) for o in upload.started] == [
        (False, "le stockage est indisponible (erreur du serveur)")
    ]
