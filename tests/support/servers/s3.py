"""A throwaway S3-compatible server: moto's server mode on a free port, authentication enforced.

moto lets the first ``INITIAL_NO_AUTH_ACTION_COUNT`` requests through unauthenticated; the
suite spends them creating one IAM user with an access key and an allow-everything policy.
From then on only that key is accepted, so wrong credentials and unsigned requests are
refused as a real store would. moto keeps objects in memory: keep them small.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import boto3
from botocore.config import Config

from backup_api.storage.s3.location import S3Location
from tests.support.servers.common import HOST, STARTUP_TIMEOUT, STOP_TIMEOUT, ServerStartError
from tests.support.servers.common import free_port as _free_port

REGION = "us-east-1"
USER_NAME = "backup-api"
#: create_user, create_policy, attach_user_policy, create_access_key.
NO_AUTH_ACTIONS = 4
_ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class S3Server:
    """A running moto server and the one key pair it accepts."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.endpoint = f"http://{HOST}:{port}"
        self.region = REGION
        self.log_path = log_path
        self.access_key_id = ""
        self.secret_access_key = ""

    def _bootstrap(self) -> None:
        # These four requests are the unauthenticated window: anything signed will do.
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName=USER_NAME)
        policy = iam.create_policy(PolicyName="admin", PolicyDocument=json.dumps(_ADMIN_POLICY))
        iam.attach_user_policy(UserName=USER_NAME, PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName=USER_NAME)["AccessKey"]
        self.access_key_id = key["AccessKeyId"]
        self.secret_access_key = key["SecretAccessKey"]

    def client(self, **overrides: Any) -> Any:
        """An independent boto3 S3 client with the server's credentials."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": Config(s3={"addressing_style": "path"}),
        }
        options.update(overrides)
        return boto3.client("s3", **options)

    def iam(self) -> Any:
        return boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def make_user(self) -> tuple[str, str, str]:
        """Another user allowed everything: (user name, access key id, secret), for tests
        that revoke a key while it is in use."""
        iam = self.iam()
        name = f"u-{uuid.uuid4().hex[:12]}"
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name, PolicyName="admin", PolicyDocument=json.dumps(_ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return name, key["AccessKeyId"], key["SecretAccessKey"]

    def location(self, bucket: str, **overrides: Any) -> S3Location:
        """The service's view of ``bucket`` (one attempt per request, short timeouts)."""
        values: dict[str, Any] = {
            "endpoint": self.endpoint,
            "region": REGION,
            "bucket": bucket,
            "prefix": "backups",
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "connect_timeout": 5.0,
            "read_timeout": 20.0,
            "max_attempts": 1,
        }
        values.update(overrides)
        return S3Location(**values)

    def make_bucket(self, *, object_lock: bool = False, prefix: str = "t") -> str:
        """A fresh bucket (versioned with Object Lock enabled when asked)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def list_multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Multipart uploads still open in ``bucket`` (empty once everything is completed or
        aborted)."""
        uploads: list[dict[str, Any]] = (
            self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        )
        return uploads

    def object_bytes(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str) -> list[str]:
        contents = self.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(item["Key"] for item in contents)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_ready(server: S3Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"moto_server exited with {server.process.returncode}: "
                + server.log_path.read_text(errors="replace")[-2000:]
            )
        # moto's own health route does not count as an action of the no-auth window.
        url = f"{server.endpoint}/moto-api/"
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2),  # noqa: S310
        ):
            return
        time.sleep(0.1)
    server.stop()
    raise ServerStartError("moto_server did not answer in time")


def start_s3(log_dir: Path) -> S3Server:
    """Start moto_server on a free port of 127.0.0.1 and create its one user."""
    port = _free_port()
    log_path = log_dir / f"moto-{port}.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MOTO_", "BOTO_"))
    }
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_ACTIONS)
    # Buckets in the path whatever the Host says (tests pin names like s3.test.invalid).
    env["S3_IGNORE_SUBDOMAIN_BUCKETNAME"] = "true"
    env["AWS_DEFAULT_REGION"] = REGION
    moto_server = Path(sys.executable).with_name("moto_server")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(moto_server), "-H", HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = S3Server(process, port, log_path)
    try:
        _wait_ready(server)
        server._bootstrap()
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------- peers that record


class Recorded(NamedTuple):
    method: str
    path: str
    #: Lower-cased names.
    headers: dict[str, str]


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    records: list[Recorded]
    target: tuple[str, int] | None
    redirect_to: str
    gone = False

    def go_away(self) -> None:
        """The endpoint disappears: open connections are dropped at their next request,
        new ones refused."""
        self.gone = True
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                data += self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        if self.server.gone:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self._body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.records.append(Recorded(self.command, self.path, headers))
        if self.server.target is None:
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(*self.server.target, timeout=30)
        forwarded = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        forwarded["Content-Length"] = str(len(body))
        upstream.request(self.command, self.path, body=body, headers=forwarded)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "date"):
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815


@contextlib.contextmanager
def _serving(
    host: str, target: tuple[str, int] | None, redirect_to: str = ""
) -> Iterator[_RecordingServer]:
    server = _RecordingServer((host, 0), _Handler)
    server.records = []
    server.target = target
    server.redirect_to = redirect_to
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def recording_proxy(s3: S3Server, host: str = HOST) -> Iterator[_RecordingServer]:
    """An HTTP proxy in front of ``s3`` on ``host`` (any 127.x address) that records every
    request as received (method, path, headers) before passing it on unchanged."""
    with _serving(host, (HOST, s3.port)) as server:
        yield server


@contextlib.contextmanager
def redirecting_server(redirect_to: str) -> Iterator[_RecordingServer]:
    """An HTTP server that answers every request with a 307 to ``redirect_to`` + path."""
    with _serving(HOST, None, redirect_to) as server:
        yield server


def port_of(server: _RecordingServer) -> int:
    return int(server.server_address[1])
