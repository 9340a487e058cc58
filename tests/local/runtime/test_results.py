from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from airflow_distmap.local.errors import StatesError
from airflow_distmap.local.runtime.results import (
    S3StreamWriter,
    WriterConfig,
    parse_writer,
    transform_entry,
    write_result_files,
)

RUN_ID = "fd5d5e09-8644-4804-b61a-9860092818fd"
ARN = f"arn:aws:states:us-east-1:123456789012:mapRun:sm/label:{RUN_ID}"


def entry(status: str, output: Any = None, n: int = 0) -> dict[str, Any]:
    value: dict[str, Any] = {"ExecutionArn": f"arn:x:{n}", "Input": json.dumps({"n": n}), "Status": status}
    if output is not None:
        value["Output"] = json.dumps(output)
    if status == "FAILED":
        value["Error"] = "Boom"
        value["Cause"] = "bad"
    return value


def test_parse_writer_defaults() -> None:
    assert parse_writer(None, None) == WriterConfig(None, "", "COMPACT", "JSON")
    spec = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {}}
    assert parse_writer(spec, {"Bucket": "b", "Prefix": "p"}) == WriterConfig("b", "p", "NONE", "JSON")
    only_config = {"WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSON"}}
    assert parse_writer(only_config, None).bucket is None
    with pytest.raises(StatesError) as caught:
        parse_writer(spec, {"Prefix": "p"})
    assert caught.value.error == "States.ResultWriterFailed"


def test_transformations_keep_failed_children_unchanged() -> None:
    ok = entry("SUCCEEDED", [1, 2])
    failed = entry("FAILED")
    assert transform_entry(ok, "NONE") == [ok]
    assert transform_entry(ok, "COMPACT") == [[1, 2]]
    assert transform_entry(ok, "FLATTEN") == [1, 2]
    assert transform_entry(failed, "FLATTEN") == [failed]


@pytest.mark.parametrize("in_process", [True, False], ids=["moto-buffer", "s3-api"])
def test_layout_manifest_and_file_schema(in_process: bool) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        config = WriterConfig("results", "jobs/", "NONE", "JSON")
        groups = {
            "SUCCEEDED": [entry("SUCCEEDED", {"r": 1})],
            "FAILED": [entry("FAILED", n=1)],
            "PENDING": [],
        }
        details = write_result_files(s3, config, RUN_ID, ARN, groups, in_process=in_process)
        assert details == {"Bucket": "results", "Key": f"jobs/{RUN_ID}/manifest.json"}
        manifest = json.loads(s3.get_object(Bucket="results", Key=details["Key"])["Body"].read())
        assert manifest["DestinationBucket"] == "results"
        assert manifest["MapRunArn"] == ARN
        assert manifest["ResultFiles"]["PENDING"] == []
        [succeeded] = manifest["ResultFiles"]["SUCCEEDED"]
        [failed] = manifest["ResultFiles"]["FAILED"]
        assert succeeded["Key"] == f"jobs/{RUN_ID}/SUCCEEDED_0.json"
        assert failed["Key"] == f"jobs/{RUN_ID}/FAILED_0.json"
        body = s3.get_object(Bucket="results", Key=succeeded["Key"])["Body"].read()
        assert succeeded["Size"] == len(body)
        head = s3.head_object(Bucket="results", Key=succeeded["Key"])
        assert head["ContentLength"] == len(body)
        assert head["ETag"] == '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        assert json.loads(body) == [entry("SUCCEEDED", {"r": 1})]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="results")["Contents"]]
        assert not any("PENDING" in key for key in keys)


def test_jsonl_output_and_roll_over() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        config = WriterConfig("results", "out", "COMPACT", "JSONL")
        groups = {"SUCCEEDED": [entry("SUCCEEDED", {"i": i}, i) for i in range(10)]}
        details = write_result_files(s3, config, RUN_ID, ARN, groups, max_file_bytes=40)
        manifest = json.loads(s3.get_object(Bucket="results", Key=details["Key"])["Body"].read())
        files = manifest["ResultFiles"]["SUCCEEDED"]
        names = [f["Key"].rsplit("/", 1)[1] for f in files]
        assert len(names) >= 2
        assert names == [f"SUCCEEDED_{n}.json" for n in range(len(names))]
        lines: list[Any] = []
        for file in files:
            text = s3.get_object(Bucket="results", Key=file["Key"])["Body"].read().decode()
            lines.extend(json.loads(line) for line in text.splitlines())
        assert lines == [{"i": i} for i in range(10)]


def test_json_arrays_roll_over_under_the_size_limit() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        config = WriterConfig("results", "out", "COMPACT", "JSON")
        groups = {"SUCCEEDED": [entry("SUCCEEDED", {"i": i}, i) for i in range(10)]}
        details = write_result_files(s3, config, RUN_ID, ARN, groups, max_file_bytes=40)
        manifest = json.loads(s3.get_object(Bucket="results", Key=details["Key"])["Body"].read())
        items: list[Any] = []
        for file in manifest["ResultFiles"]["SUCCEEDED"]:
            body = s3.get_object(Bucket="results", Key=file["Key"])["Body"].read()
            assert file["Size"] == len(body) <= 40
            items.extend(json.loads(body))  # each file one JSON array
        assert len(manifest["ResultFiles"]["SUCCEEDED"]) >= 3
        assert items == [{"i": i} for i in range(10)]


def test_large_files_go_up_as_multipart_uploads() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        writer = S3StreamWriter(s3, "results", "big.json", part_size=5 * 1024 * 1024)
        chunk = b"x" * (1024 * 1024)
        for _ in range(11):
            writer.write(chunk)
        writer.close()
        head = s3.head_object(Bucket="results", Key="big.json")
        assert head["ContentLength"] == 11 * 1024 * 1024
        assert head["ETag"].endswith('-3"')  # three parts


def test_missing_bucket_fails_with_result_writer_failed() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        config = WriterConfig("no-such-results-bucket", "p", "NONE", "JSON")
        with pytest.raises(StatesError) as caught:
            write_result_files(s3, config, RUN_ID, ARN, {"SUCCEEDED": [entry("SUCCEEDED", 1)]})
        assert caught.value.error == "States.ResultWriterFailed"
        assert "NoSuchBucket" in caught.value.cause
