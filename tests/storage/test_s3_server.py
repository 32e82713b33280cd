"""The test S3 server itself: authentication is enforced, buckets come with or without Object
Lock, and multipart uploads can be listed."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.servers.s3 import S3Server


def test_only_the_created_key_is_accepted(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="a", Body=b"x")
    assert s3_server.object_bytes(bucket, "a") == b"x"
    wrong = s3_server.client(aws_access_key_id="AKIAWRONGWRONGWRONG0", aws_secret_access_key="no")
    with pytest.raises(ClientError):
        wrong.get_object(Bucket=bucket, Key="a")
    bad_secret = s3_server.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError):
        bad_secret.get_object(Bucket=bucket, Key="a")


def test_object_lock_bucket_and_multipart_listing(s3_server: S3Server) -> None:
    locked = s3_server.make_bucket(object_lock=True)
    config = s3_server.client().get_object_lock_configuration(Bucket=locked)
    assert config["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    plain = s3_server.make_bucket()
    upload = s3_server.client().create_multipart_upload(Bucket=plain, Key="k")
    assert [u["Key"] for u in s3_server.list_multipart_uploads(plain)] == ["k"]
    s3_server.client().abort_multipart_upload(Bucket=plain, Key="k", UploadId=upload["UploadId"])
    assert s3_server.list_multipart_uploads(plain) == []
