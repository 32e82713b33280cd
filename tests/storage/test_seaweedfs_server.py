"""The benchmark's S3 server (SeaweedFS, objects on disk): it starts on free ports, accepts
its one key pair and refuses others, keeps what it is given, and leaves nothing behind."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.servers.seaweedfs import start_seaweedfs


def test_put_get_and_stop() -> None:
    server = start_seaweedfs()
    try:
        bucket = server.make_bucket()
        client = server.client()
        client.put_object(Bucket=bucket, Key="backups/postgresql/a.zip", Body=b"PK archive")
        body = client.get_object(Bucket=bucket, Key="backups/postgresql/a.zip")["Body"].read()
        assert body == b"PK archive"
        # The objects are on disk, in the server's own directory.
        assert any((server.tmpdir / "data").iterdir())
        with pytest.raises(ClientError):
            server.client(aws_secret_access_key="not-the-secret").list_objects_v2(Bucket=bucket)
        with pytest.raises(ClientError):
            server.client(aws_access_key_id="BKUNKNOWNKEY0000").list_objects_v2(Bucket=bucket)
        process = server.process
        assert process is not None
    finally:
        server.stop()
    assert process.poll() is not None
    assert not server.tmpdir.exists()
    assert not [path for path in server.grpc_sockets() if path.exists()]
