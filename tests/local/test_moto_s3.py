from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from airflow_distmap.local.moto_s3 import NoSuchObject, open_object


@mock_aws
def test_streams_an_object_in_chunks_without_changing_it() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    body = b"id,text\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(300_000))
    s3.put_object(Bucket="data", Key="big.csv", Body=body)

    stream = open_object("data", "big.csv")
    chunks = iter(lambda: stream.read(65_536), b"")
    assert b"".join(chunks) == body


@mock_aws
@pytest.mark.parametrize(
    ("bucket", "key", "code"), [("absent", "k", "NoSuchBucket"), ("data", "absent", "NoSuchKey")]
)
def test_missing_bucket_or_key_names_s3_error(bucket: str, key: str, code: str) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="data")
    with pytest.raises(NoSuchObject) as raised:
        open_object(bucket, key)
    assert raised.value.code == code
    assert bucket in str(raised.value)
