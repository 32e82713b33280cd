"""A throwaway S3-compatible server: moto's server mode on a free port, authentication enforced.

moto lets the first ``INITIAL_NO_AUTH_ACTION_COUNT`` requests through unauthenticated; the
suite spends them creating one IAM user with an access key and an allow-everything policy.
From then on only that key is accepted, so wrong credentials and unsigned requests are
refused as a real store would. moto keeps objects in memory: keep them small.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

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
