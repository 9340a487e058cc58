from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from airflow_distmap.cli import main
from airflow_distmap.cli.results import _s3_client, summarise

BUCKET = "results-bucket"


def entry(status: str, items: list[dict[str, Any]], output: Any = None, **extra: Any) -> dict[str, Any]:
    record = {"ExecutionArn": "arn:child", "Status": status, "Input": json.dumps({"Items": items}), **extra}
    if output is not None:
        record["Output"] = json.dumps(output)
    return record


def put_failed_run(s3: Any, prefix: str, failed: list[dict[str, Any]]) -> str:
    """Write a Map Run's results whose one file is ``FAILED_0.json``; return its manifest's URI."""
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/FAILED_0.json", Body=json.dumps(failed).encode())
    manifest = {
        "DestinationBucket": BUCKET,
        "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:sm/Map:run",
        "ResultFiles": {
            "SUCCEEDED": [],
            "FAILED": [{"Key": f"{prefix}/FAILED_0.json", "Size": 9}],
            "PENDING": [],
        },
    }
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{BUCKET}/{prefix}/manifest.json"


@pytest.fixture
def manifest_uri() -> Iterator[str]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        items = [{"index": i, "row": {"text": f"t{i}"}} for i in range(6)]
        succeeded = [
            entry(
                "SUCCEEDED",
                items[0:3],
                {
                    "rows": [
                        {"index": 0, "skipped": True},
                        {"index": 1, "output": "T1"},
                        {"index": 2, "error": {"type": "ValueError", "message": "bad t2"}},
                    ]
                },
            ),
            entry("SUCCEEDED", items[3:4], {"rows": [{"index": 3, "output": "T3"}]}),
        ]
        cause = json.dumps({"errorMessage": "crashed", "errorType": "Runtime.ExitError"})
        failed = [entry("FAILED", items[4:6], Error="Runtime.ExitError", Cause=cause)]
        s3.put_object(Bucket=BUCKET, Key="p/run/SUCCEEDED_0.json", Body=json.dumps(succeeded).encode())
        s3.put_object(Bucket=BUCKET, Key="p/run/FAILED_0.json", Body=json.dumps(failed).encode())
        manifest = {
            "DestinationBucket": BUCKET,
            "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:sm/Map:run",
            "ResultFiles": {
                "SUCCEEDED": [{"Key": "p/run/SUCCEEDED_0.json", "Size": 100}],
                "FAILED": [{"Key": "p/run/FAILED_0.json", "Size": 50}],
                "PENDING": [],
            },
        }
        s3.put_object(Bucket=BUCKET, Key="p/run/manifest.json", Body=json.dumps(manifest).encode())
        yield f"s3://{BUCKET}/p/run/manifest.json"


def test_summary_counts_rows_and_groups_failures(manifest_uri: str) -> None:
    summary = summarise(boto3.client("s3", region_name="us-east-1"), manifest_uri, samples=5)
    assert summary["children"] == {"SUCCEEDED": 2, "FAILED": 1}
    assert summary["counts"] == {"total": 5, "succeeded": 2, "failed": 3}
    assert summary["failures_by_error"] == {"Runtime.ExitError": 2, "ValueError": 1}
    assert summary["failed_samples"][0] == {
        "index": 2,
        "error": "ValueError",
        "message": "bad t2",
        "input": {"text": "t2"},
    }
    assert [s["index"] for s in summary["failed_samples"]] == [2, 4, 5]
    assert summary["failed_samples"][1]["input"] == {"text": "t4"}
    # The Lambda error's message, as in the ledger:
    assert summary["failed_samples"][1]["message"] == "crashed"
    assert summary["result_files"]["FAILED"] == {"count": 1, "bytes": 50}


def test_command_prints_text_and_json(manifest_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", manifest_uri, "--samples", "1"]) == 0
    text = capsys.readouterr().out
    assert "Rows:      5 total, 2 succeeded, 3 failed" in text
    assert "Runtime.ExitError" in text
    assert text.count("row item") == 1
    assert main(["results", manifest_uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["failed"] == 3


def test_failed_items_without_a_row_index_are_shown_as_items(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        failed = [entry("FAILED", [{"h1": "a"}], Error="States.TaskFailed", Cause="boom")]
        failed[0]["Input"] = json.dumps({"h1": "a"})  # one plain CSV row per child, no row_handler index
        assert main(["results", put_failed_run(s3, "q/run", failed)]) == 0
    text = capsys.readouterr().out
    assert "  item: States.TaskFailed: boom" in text
    assert "None" not in text


def test_command_explains_an_unreadable_manifest(
    manifest_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", f"s3://{BUCKET}/nope/manifest.json"]) == 1
    error = capsys.readouterr().err
    assert "To fix this" in error
    assert ".." not in error


@pytest.mark.parametrize(
    ("body", "held"),
    [
        (b"[]", "an array"),
        (b"null", "null"),
        (b"{}", "an object without DestinationBucket"),
        (b"{", "not JSON"),
    ],
)
def test_a_file_that_is_no_manifest_is_named_without_a_traceback(
    manifest_uri: str, capsys: pytest.CaptureFixture[str], body: bytes, held: str
) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key="odd.json", Body=body)
    assert main(["results", f"s3://{BUCKET}/odd.json"]) == 1
    error = capsys.readouterr().err
    assert held in error
    assert "not a Map Run manifest.json" in error
    assert error.count("To fix this") == 1
    assert "Traceback" not in error


@pytest.mark.parametrize(("body", "problem"), [(None, "NoSuchKey"), (b"not json", "is not a JSON array")])
def test_an_unreadable_result_file_is_named_rather_than_its_manifest(
    capsys: pytest.CaptureFixture[str], body: bytes | None, problem: str
) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        uri = put_failed_run(s3, "broken", [])
        if body is None:
            s3.delete_object(Bucket=BUCKET, Key="broken/FAILED_0.json")
        else:
            s3.put_object(Bucket=BUCKET, Key="broken/FAILED_0.json", Body=body)
        assert main(["results", uri]) == 1
    error = capsys.readouterr().err
    assert problem in error
    assert f"result file s3://{BUCKET}/broken/FAILED_0.json" in error.replace("Result file", "result file")
    assert "Traceback" not in error
    if body is None:  # the manifest was found: its URI is not what to check
        assert "check that the Map Run's result files are still in S3" in error


def test_an_endpoint_without_configured_credentials_gets_the_local_endpoints(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    local = _s3_client("http://127.0.0.1:4566", None)
    assert local._request_signer._credentials.access_key == "testing"
    assert _s3_client(None, "us-east-1")._request_signer._credentials is None  # AWS itself: no guessing


def test_the_s3_specific_endpoint_variable_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from airflow_distmap.cli.results import add_arguments

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://everything:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["s3://b/m.json"]).endpoint_url == "http://s3-only:2"


def test_a_bad_uri_gets_one_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "results-bucket/x.json"]) == 1
    error = capsys.readouterr().err
    assert "Invalid manifest URI 'results-bucket/x.json'" in error
    assert error.count("To fix this") == 1


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}", f"s3://{BUCKET}/", f"s3://{BUCKET}/run/"])
def test_a_bucket_or_folder_without_a_manifest_is_told_to_name_the_manifest(
    capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        assert main(["results", uri]) == 1
    error = capsys.readouterr().err
    assert "No manifest.json under s3://results-bucket/" in error
    assert "pass the full URI of the manifest" in error
    assert "Parameter validation" not in error


def test_a_folder_holding_one_manifest_names_it(
    manifest_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = manifest_uri.rsplit("/", 1)[0]  # s3://results-bucket/p/run, no trailing slash
    assert main(["results", folder]) == 0
    assert f"Manifest:  {manifest_uri}" in capsys.readouterr().out


def test_a_prefix_holding_several_runs_lists_their_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for run in ("a", "b"):
            put_failed_run(s3, f"task/{run}", [])
        assert main(["results", f"s3://{BUCKET}/task"]) == 1
    error = capsys.readouterr().err
    assert "holds the manifests of several Map Runs (s3://results-bucket/task/a/manifest.json, " in error
    assert "To fix this, pass one of them." in error


def test_a_negative_sample_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["results", f"s3://{BUCKET}/run/manifest.json", "--samples", "-1"])
    assert exited.value.code == 2
    assert "at least 0" in capsys.readouterr().err


def test_a_failed_row_of_a_batch_of_plain_items_shows_its_input(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        output = {"rows": [{"index": 0, "output": "A"}, {"index": 1, "error": {"type": "E", "message": "m"}}]}
        batch = entry("SUCCEEDED", [{"text": "a"}, {"text": "b"}], output)  # plain CSV rows, no envelope
        s3.put_object(Bucket=BUCKET, Key="p/SUCCEEDED_0.json", Body=json.dumps([batch]).encode())
        manifest = {
            "DestinationBucket": BUCKET,
            "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:sm/Map:run",
            "ResultFiles": {
                "SUCCEEDED": [{"Key": "p/SUCCEEDED_0.json", "Size": 9}],
                "FAILED": [],
                "PENDING": [],
            },
        }
        s3.put_object(Bucket=BUCKET, Key="p/manifest.json", Body=json.dumps(manifest).encode())
        summary = summarise(s3, f"s3://{BUCKET}/p/manifest.json")
    assert summary["failed_samples"] == [{"index": 1, "error": "E", "message": "m", "input": {"text": "b"}}]


def test_json_output_is_the_only_thing_on_stdout_in_a_fresh_process(tmp_path: Any) -> None:
    """Run as users run it, so Airflow's logging set-up is in play: ``--json | jq`` must work."""
    from airflow_distmap.local import LocalEndpoint

    with LocalEndpoint(functions_dir=tmp_path) as endpoint:
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        manifest = {"DestinationBucket": BUCKET, "MapRunArn": "arn:x", "ResultFiles": {}}
        s3.put_object(Bucket=BUCKET, Key="r/manifest.json", Body=json.dumps(manifest).encode())
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint.url, "AIRFLOW_HOME": str(tmp_path / "airflow")}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "airflow_distmap.cli",
                "results",
                f"s3://{BUCKET}/r/manifest.json",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert json.loads(done.stdout)["counts"]["total"] == 0


def test_a_child_without_an_error_is_named_by_its_status_as_in_the_ledger() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        aborted = [entry("ABORTED", [{"index": 0, "row": {"text": "a"}}])]
        summary = summarise(s3, put_failed_run(s3, "r/run", aborted))
    assert summary["failures_by_error"] == {"ABORTED": 1}
    assert summary["failed_samples"][0]["message"] == "The child execution ended ABORTED."


def test_bare_outputs_of_a_compact_or_flatten_writer_are_counted() -> None:
    """WriterConfig Transformation COMPACT or FLATTEN writes succeeded children's bare outputs, of any JSON
    type; failed children keep the default shape."""
    rows = {
        "rows": [{"index": 0, "output": "A"}, {"index": 1, "error": {"type": "ValueError", "message": "no"}}]
    }
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        uri = put_failed_run(
            s3, "compact", [entry("FAILED", [{"index": 2, "row": {}}], Error="E", Cause="c")]
        )
        s3.put_object(Bucket=BUCKET, Key="compact/SUCCEEDED_0.json", Body=json.dumps([rows, "x", 7]).encode())
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="compact/manifest.json")["Body"].read())
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": "compact/SUCCEEDED_0.json", "Size": 1}]
        s3.put_object(Bucket=BUCKET, Key="compact/manifest.json", Body=json.dumps(manifest).encode())
        summary = summarise(s3, uri)
    # The output in row_handler's shape is one child and its rows; "x" and 7 say nothing of their rows.
    assert summary["children"] == {"SUCCEEDED": 1, "FAILED": 1}
    assert (summary["bare_outputs"], summary["counts"]) == (
        2,
        {"total": None, "succeeded": None, "failed": 2},
    )
    assert summary["failures_by_error"] == {"ValueError": 1, "E": 1}


def test_json_lines_results_whose_lines_are_arrays_are_read_line_by_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """COMPACT with OutputType JSONL: one child's output per line, each an array."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        uri = put_failed_run(s3, "lines", [])
        s3.put_object(Bucket=BUCKET, Key="lines/SUCCEEDED_0.json", Body=b'["a","b"]\n["c"]\n')
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="lines/manifest.json")["Body"].read())
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": "lines/SUCCEEDED_0.json", "Size": 16}]
        s3.put_object(Bucket=BUCKET, Key="lines/manifest.json", Body=json.dumps(manifest).encode())
        assert main(["results", uri]) == 0
    out = capsys.readouterr().out
    assert "2 outputs written with WriterConfig's COMPACT or FLATTEN" in out
    assert "Rows:      0 failed; the succeeded ones are not in the results" in out
