from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3 import models as s3_models
from moto.s3.models import s3_backends

from airflow_distmap.local.moto_s3 import NoSuchObject, open_object, stream_multipart_completions

moto_complete = s3_models.FakeMultipart.complete


@mock_aws
def test_streams_an_object_in_chunks_without_changing_it() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    body = b"id,text\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(300_000))
    etag = s3.put_object(Bucket="data", Key="big.csv", Body=body)["ETag"]

    stream, opened_etag = open_object("data", "big.csv")
    chunks = iter(lambda: stream.read(65_536), b"")
    assert b"".join(chunks) == body
    assert opened_etag == etag


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


def _multipart_upload(s3: Any, key: str, parts: list[bytes], **create: Any) -> dict[str, Any]:
    upload_id = s3.create_multipart_upload(Bucket="data", Key=key, **create)["UploadId"]
    done = []
    for number, body in enumerate(parts, 1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        answer = s3.upload_part(
            Bucket="data", Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra
        )
        done.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                **{k: v for k, v in answer.items() if k.startswith("Checksum")},
            }
        )
    s3.complete_multipart_upload(Bucket="data", Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
    head = s3.head_object(Bucket="data", Key=key, ChecksumMode="ENABLED")
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object("data", key)  # also what HeadObject omits
    head["stored"] = (stored.checksum_type, stored.checksum_value, stored.checksum_parts)
    body = s3.get_object(Bucket="data", Key=key)["Body"].read()
    return {
        "body": body,
        **{k: v for k, v in head.items() if k.startswith(("ETag", "Checksum", "ContentLength", "stored"))},
    }


@mock_aws
@pytest.mark.parametrize(
    "checksum",
    [
        {},
        {"ChecksumAlgorithm": "CRC32"},
        {"ChecksumAlgorithm": "SHA256"},
        {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"},
    ],
)
def test_streamed_multipart_completion_gives_the_object_moto_would(
    checksum: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Snapshot what stream_multipart_completions replaces, so the rest of the session gets moto's own.
    monkeypatch.setattr(s3_models.FakeMultipart, "complete", s3_models.FakeMultipart.complete)
    monkeypatch.setattr(s3_models.FakeKey, "value", s3_models.FakeKey.__dict__["value"])
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), b"tail" * 1000]
    expected = _multipart_upload(s3, "by-moto", parts, **checksum)

    stream_multipart_completions()
    assert s3_models.FakeMultipart.complete is not moto_complete
    streamed = _multipart_upload(s3, "streamed", parts, **checksum)

    assert streamed["body"] == b"".join(parts)
    assert streamed == expected  # same bytes, ETag, length and checksums


@mock_aws
def test_streamed_multipart_completion_keeps_motos_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_models.FakeMultipart, "complete", s3_models.FakeMultipart.complete)
    monkeypatch.setattr(s3_models.FakeKey, "value", s3_models.FakeKey.__dict__["value"])
    stream_multipart_completions()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    with pytest.raises(ClientError, match="EntityTooSmall"):
        _multipart_upload(s3, "small", [b"a" * 1024, b"b"])
    upload_id = s3.create_multipart_upload(Bucket="data", Key="k")["UploadId"]
    s3.upload_part(Bucket="data", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")
    with pytest.raises(ClientError, match="InvalidPart"):
        s3.complete_multipart_upload(
            Bucket="data",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0"'}]},
        )
    with pytest.raises(ClientError):  # no object was created by the refused completions
        s3.head_object(Bucket="data", Key="small")
