"""How the client reaches a store: the faults it names, the headers it sends, the
credentials it never borrows, the address it is pinned to, the redirects it ignores."""

from __future__ import annotations

import os

import boto3
import pytest

from backup_api.storage.s3 import objects
from backup_api.storage.s3.client import S3Error, make_client
from tests.support.fakes import stalled_server
from tests.support.servers.common import free_port
from tests.support.servers.s3 import (
    S3Server,
    port_of,
    recording_proxy,
    redirecting_server,
)

CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum", "x-amz-trailer")


def test_unreachable_endpoint(s3_server: S3Server) -> None:
    location = s3_server.location("b", endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(S3Error, match=r"^stockage injoignable$"):
        objects.check_bucket(location)


def test_slow_endpoint_times_out(s3_server: S3Server) -> None:
    with stalled_server() as port:
        location = s3_server.location(
            "b", endpoint=f"http://127.0.0.1:{port}", connect_timeout=1.0, read_timeout=0.3
        )
        with pytest.raises(S3Error, match=r"^délai dépassé$"):
            objects.check_bucket(location)


def _checksum_headers(headers: dict[str, str]) -> list[str]:
    found = [name for name in headers if name.startswith(CHECKSUM_HEADERS)]
    if "aws-chunked" in headers.get("content-encoding", ""):
        found.append("content-encoding: aws-chunked")
    return found


def test_no_checksum_is_sent_unless_required(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    with recording_proxy(s3_server) as proxy:
        endpoint = f"http://127.0.0.1:{port_of(proxy)}"
        client = make_client(s3_server.location(bucket, endpoint=endpoint))
        client.put_object(Bucket=bucket, Key="backups/one", Body=b"x" * 1000)
        upload = client.create_multipart_upload(Bucket=bucket, Key="backups/two")
        part = client.upload_part(
            Bucket=bucket,
            Key="backups/two",
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"y" * 1000,
        )
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="backups/two",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        writes = [r for r in proxy.records if r.method == "PUT"]
        assert len(writes) == 2
        assert [_checksum_headers(r.headers) for r in writes] == [[], []]
        # The recorder does see them when a client sends them (botocore's default).
        default = s3_server.client(endpoint_url=endpoint)
        default.put_object(Bucket=bucket, Key="backups/three", Body=b"z")
        assert _checksum_headers(proxy.records[-1].headers) != []
    assert s3_server.object_bytes(bucket, "backups/two") == b"y" * 1000


def test_empty_keys_never_borrow_the_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    # The environment's keys do work for a client that reads them (boto3's default chain).
    boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1").head_bucket(
        Bucket=bucket
    )
    with recording_proxy(s3_server) as proxy:
        location = s3_server.location(
            bucket,
            endpoint=f"http://127.0.0.1:{port_of(proxy)}",
            access_key_id="",
            secret_access_key="",
        )
        # moto answers an anonymous request with an error of its own; a store would say
        # "access denied". What matters: the request went out unsigned and was refused.
        with pytest.raises(S3Error):
            objects.check_bucket(location)
        assert proxy.records
        assert [r for r in proxy.records if "authorization" in r.headers] == []
    assert s3_server.keys(bucket) == []


def test_the_pinned_address_is_used_whatever_the_name_resolves_to(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    # A name that resolves nowhere reaches the server through its pinned address.
    location = s3_server.location(
        bucket, endpoint=f"http://s3.test.invalid:{s3_server.port}", pinned_address="127.0.0.1"
    )
    objects.check_bucket(location)
    # localhost resolves to 127.0.0.1 (nothing listens there on this port); the proxy on
    # 127.0.0.2 gets the requests, named for the endpoint's host as they were signed.
    with recording_proxy(s3_server, host="127.0.0.2") as proxy:
        port = port_of(proxy)
        location = s3_server.location(
            bucket, endpoint=f"http://localhost:{port}", pinned_address="127.0.0.2"
        )
        objects.check_bucket(location)
        assert proxy.records
        assert {r.headers["host"] for r in proxy.records} == {f"localhost:{port}"}
        unpinned = location._replace(pinned_address=None)
        with pytest.raises(S3Error, match=r"^stockage injoignable$"):
            objects.check_bucket(unpinned)


def test_redirects_are_not_followed(s3_server: S3Server) -> None:
    with redirecting_server("http://127.0.0.1:1") as elsewhere:
        with redirecting_server(f"http://127.0.0.1:{port_of(elsewhere)}") as redirector:
            location = s3_server.location(
                "b", endpoint=f"http://127.0.0.1:{port_of(redirector)}", max_attempts=3
            )
            with pytest.raises(S3Error, match="redirection"):
                objects.check_bucket(location)
            assert redirector.records
        assert elsewhere.records == []


def test_the_secret_is_in_no_request(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    with recording_proxy(s3_server) as proxy:
        location = s3_server.location(bucket, endpoint=f"http://127.0.0.1:{port_of(proxy)}")
        objects.check_bucket(location)
        seen = repr([tuple(r) for r in proxy.records])
    assert s3_server.secret_access_key not in seen
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") != s3_server.secret_access_key
