from __future__ import annotations

import io
import json

import boto3
import pytest
from moto import mock_aws

from airflow_distmap.results import (
    CompletedRun,
    Manifest,
    count_entries,
    counts_from_map_run,
    iter_records,
    iter_result_entries,
    manifest_uri_for_map_run,
    manifest_uri_from_output,
    parse_s3_uri,
    read_manifest,
    sample_failed_items,
)

BUCKET = "results-bucket"
RUN_ID = "fd5d5e09-8644-4804-b61a-9860092818fd"
MAP_RUN_ARN = f"arn:aws:states:us-east-1:123456789012:mapRun:csv-sm/Rows:{RUN_ID}"
PREFIX = f"jobs/{RUN_ID}"


def _succeeded(index: int) -> dict:
    """An entry shaped like AWS's Transformation NONE export (spec section 3.5)."""
    name = f"0000000{index}-abab-3b27-9a77-a277e463b709"
    return {
        "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:csv-sm/Rows:{name}",
        "Input": json.dumps({"index": index, "row": {"id": str(index)}}),
        "InputDetails": {"Included": True},
        "Name": name,
        "Output": json.dumps({"index": index, "value": index * 10}),
        "OutputDetails": {"Included": True},
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        "StartDate": "2025-02-04T01:49:50.099Z",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:csv-sm/Rows",
        "Status": "SUCCEEDED",
        "StopDate": "2025-02-04T01:49:50.163Z",
    }


def _failed(index: int) -> dict:
    entry = _succeeded(index)
    del entry["Output"]
    del entry["RedriveStatusReason"]
    entry.update(
        Status="FAILED",
        Error="ValueError",
        Cause=json.dumps({"errorMessage": f"bad row {index}", "errorType": "ValueError"}),
        RedriveStatus="REDRIVABLE_BY_MAP_RUN",
        StopDate="2025-02-04T01:49:51Z",
    )
    return entry


def _aborted(index: int) -> dict:
    entry = _failed(index)
    del entry["Error"]
    del entry["Cause"]
    entry["Status"] = "ABORTED"
    return entry


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def exported(s3):
    """Two SUCCEEDED files, two FAILED files (one of them JSON Lines) and the manifest listing them."""
    files = {
        "SUCCEEDED": [[_succeeded(i) for i in range(0, 3)], [_succeeded(i) for i in range(3, 5)]],
        "FAILED": [[_failed(5), _aborted(8), _failed(6)], [_failed(7)]],
    }
    listing: dict[str, list] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, chunks in files.items():
        for n, entries in enumerate(chunks):
            key = f"{PREFIX}/{status}_{n}.json"
            if status == "FAILED" and n == 1:
                body = "\n".join(json.dumps(e) for e in entries) + "\n"  # OutputType JSONL
            else:
                body = json.dumps(entries)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
            listing[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": BUCKET, "MapRunArn": MAP_RUN_ARN, "ResultFiles": listing}
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{BUCKET}/{PREFIX}/manifest.json"


def test_read_manifest(s3, exported):
    manifest = read_manifest(s3, exported)
    assert manifest.destination_bucket == BUCKET
    assert manifest.map_run_arn == MAP_RUN_ARN
    assert [f.key for f in manifest.files("SUCCEEDED")] == [
        f"{PREFIX}/SUCCEEDED_0.json",
        f"{PREFIX}/SUCCEEDED_1.json",
    ]
    assert manifest.files("PENDING") == []
    assert len(manifest.files()) == 4
    assert manifest.uri(manifest.files("FAILED")[0]) == f"s3://{BUCKET}/{PREFIX}/FAILED_0.json"


def test_entries_are_streamed_with_input_and_output_decoded(s3, exported):
    manifest = read_manifest(s3, exported)
    entries = list(iter_result_entries(s3, manifest))
    assert [e.status for e in entries] == ["SUCCEEDED"] * 5 + ["FAILED", "ABORTED", "FAILED", "FAILED"]
    first = entries[0]
    assert first.input == {"index": 0, "row": {"id": "0"}}
    assert first.output == {"index": 0, "value": 0}
    assert first.start_date == "2025-02-04T01:49:50.099Z"
    assert first.name == "00000000-abab-3b27-9a77-a277e463b709"
    failed = entries[5]
    assert failed.output is None
    assert failed.error == "ValueError"
    assert json.loads(failed.cause)["errorMessage"] == "bad row 5"
    assert failed.input["index"] == 5
    assert [e.input["index"] for e in entries] == [0, 1, 2, 3, 4, 5, 8, 6, 7]


def test_counts_and_failed_samples(s3, exported):
    manifest = read_manifest(s3, exported)
    assert count_entries(s3, manifest) == {"SUCCEEDED": 5, "FAILED": 4, "PENDING": 0}
    samples = sample_failed_items(s3, manifest, limit=2)
    assert [s["input"]["index"] for s in samples] == [5, 6]  # the ABORTED child (8) did not fail itself
    assert all(s["error"] == "ValueError" for s in samples)
    assert sample_failed_items(s3, manifest, limit=0) == []


def test_entries_not_included_decode_to_none():
    body = io.BytesIO(
        json.dumps(
            [
                {
                    "ExecutionArn": "a",
                    "Status": "SUCCEEDED",
                    "Input": "",
                    "InputDetails": {"Included": False},
                    "Output": "",
                    "OutputDetails": {"Included": False},
                }
            ]
        ).encode()
    )
    from airflow_distmap.results import entry_from_record

    entry = entry_from_record(next(iter_records(body)), "SUCCEEDED")
    assert entry.input is None
    assert entry.output is None


def test_compact_elements_become_outputs():
    from airflow_distmap.results import entry_from_record

    records = list(iter_records(io.BytesIO(b'  [[1, 2], {"a": 1.5}]')))
    assert records == [[1, 2], {"a": 1.5}]
    entry = entry_from_record(records[1], "SUCCEEDED")
    assert entry.output == {"a": 1.5}
    assert entry.status == "SUCCEEDED"
    assert list(iter_records(io.BytesIO(b""))) == []


def test_completed_run_streams_through_its_manifest(s3, exported):
    manifest = read_manifest(s3, exported)
    run = CompletedRun(
        execution={"executionArn": "arn:exec", "status": "SUCCEEDED"},
        state_machine_arn="arn:sm",
        map_run=None,
        manifest=manifest,
        manifest_uri=exported,
        counts={},
        s3=s3,
    )
    assert run.map_run_arn == MAP_RUN_ARN
    assert sum(1 for _ in run.iter_results(("SUCCEEDED",))) == 5
    assert len(run.sample_failed_items(10)) == 3
    assert Manifest.from_dict({"DestinationBucket": "b", "ResultFiles": {}}).files() == []


def test_manifest_uri_from_execution_output():
    output = {
        "before": [1, 2],
        "map": {
            "MapRunArn": MAP_RUN_ARN,
            "ResultWriterDetails": {"Bucket": BUCKET, "Key": f"{PREFIX}/manifest.json"},
        },
    }
    assert manifest_uri_from_output(output) == (f"s3://{BUCKET}/{PREFIX}/manifest.json", MAP_RUN_ARN)
    assert manifest_uri_from_output({"x": 1}) == (None, None)


def test_manifest_uri_for_map_run_inserts_the_run_folder():
    assert (
        manifest_uri_for_map_run(f"s3://{BUCKET}/jobs", MAP_RUN_ARN)
        == f"s3://{BUCKET}/{PREFIX}/manifest.json"
    )
    assert (
        manifest_uri_for_map_run(f"s3://{BUCKET}/jobs/", MAP_RUN_ARN)
        == f"s3://{BUCKET}/{PREFIX}/manifest.json"
    )
    assert manifest_uri_for_map_run(f"s3://{BUCKET}", MAP_RUN_ARN) == f"s3://{BUCKET}/{RUN_ID}/manifest.json"


def test_counts_from_map_run():
    described = {"itemCounts": {"total": 8, "succeeded": 5, "failed": 3, "timedOut": 0, "pending": 0}}
    counts = counts_from_map_run(described)
    assert counts["total"] == 8
    assert counts["succeeded"] == 5
    assert counts["failed"] == 3
    assert counts["timed_out"] == 0
    assert counts_from_map_run(None)["total"] == 0


@pytest.mark.parametrize("uri", ["bucket/key", "s3://", "s3://Bad_Bucket/key", "https://b/k", "s3:/b/k"])
def test_parse_s3_uri_rejects_bad_uris(uri):
    with pytest.raises(ValueError, match="To fix this"):
        parse_s3_uri(uri, what="results_uri")


def test_parse_s3_uri():
    assert parse_s3_uri("s3://my-bucket/a/b.csv") == ("my-bucket", "a/b.csv")
    assert parse_s3_uri("s3://my-bucket") == ("my-bucket", "")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize(
    "document",
    [
        [],
        [1, 22, 333, -4.5e10, True, None, "ünïcode 🚚", [], {}],
        [
            {"Input": json.dumps({"Items": [{"text": 'a,b\n"c"'}]}), "Output": "{}"},
            {"n": 12345678901234567890},
        ],
    ],
)
def test_iter_json_array_streams_any_array_in_any_chunking(document: list[object], chunk: int) -> None:
    from airflow_distmap.results import iter_json_array

    for text in (json.dumps(document), json.dumps(document, indent=2, ensure_ascii=False)):
        stream = io.BytesIO(("  \n" + text + "\n").encode())
        assert list(iter_json_array(stream.read, chunk)) == document


@pytest.mark.parametrize("text", ["[1,", "[1 2]", "{}", "[1,]", '["open'])
def test_iter_json_array_rejects_broken_arrays(text: str) -> None:
    from airflow_distmap.results import iter_json_array

    with pytest.raises(ValueError, match=r"(?i)expect|unterminated|not terminated|must hold"):
        list(iter_json_array(io.BytesIO(text.encode()).read, 2))


_BATCH_DOCUMENTS = [
    [],
    [{}],
    [{"a": 1}, {"b": [1, {"c": "}"}]}],
    # strings that look like an element boundary: the cut inside them must be refused
    [{"Output": 'x},{"', "n": 1}, {"Output": '},{"k":1', "m": {"x": '},{"y"'}}, {"z": 'q" }, {"'}],
    [{"Input": json.dumps({"Items": [{"text": 'a,b\n"c"'}]}), "Output": "{}"}, {"n": 12345678901234567890}],
    [{"i": i, "s": "ünïcode 🚚" * (i % 7)} for i in range(300)],
]


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize("document", _BATCH_DOCUMENTS)
def test_iter_array_batches_gives_every_object_once_in_order(document: list[object], chunk: int) -> None:
    from airflow_distmap.results import iter_array_batches

    for text in (json.dumps(document), json.dumps(document, indent=2, ensure_ascii=False)):
        stream = io.BytesIO((" \n" + text + "\n").encode())
        batches = list(iter_array_batches(stream.read, chunk=chunk))
        assert [element for batch in batches for element in batch] == document
        if chunk == 64 and len(document) == 300:
            assert len(batches) > 1  # several elements per decode, but not the whole file at once


@pytest.mark.parametrize(
    "document", [[1, 22, 333, -4.5e10, True, None, "ünïcode 🚚", [], {}], ["x" * 50] * 40]
)
def test_iter_array_batches_streams_arrays_without_object_boundaries(monkeypatch, document) -> None:
    from airflow_distmap import results

    monkeypatch.setattr(results, "BATCH_GIVE_UP_BYTES", 100)
    batches = list(results.iter_array_batches(io.BytesIO(json.dumps(document).encode()).read, chunk=16))
    assert [element for batch in batches for element in batch] == document


@pytest.mark.parametrize(
    "text", ["", "  ", "[1,", "[1 2]", "{}", "[1,]", '["open', '[{"a":1},{"b":2}', '[{"a":1}] x']
)
def test_iter_array_batches_rejects_broken_arrays(text: str) -> None:
    from airflow_distmap.results import iter_array_batches

    with pytest.raises(ValueError, match=r"(?i)expect|extra data|unterminated|must hold"):
        list(iter_array_batches(io.BytesIO(text.encode()).read, chunk=4))


@pytest.mark.parametrize("chunk", [100_000, 1 << 20])
def test_iter_array_batches_finds_boundaries_far_from_the_end(chunk: int) -> None:
    from airflow_distmap.results import iter_array_batches

    document = [{"i": i, "s": 'x},{"' * 30_000} for i in range(12)]  # elements of 180 KB: past the tail
    batches = list(iter_array_batches(io.BytesIO(json.dumps(document).encode()).read, chunk=chunk))
    assert [element for batch in batches for element in batch] == document
    assert len(batches) > 1


def test_a_progress_line_counts_items_read_so_far_while_running_and_names_every_outcome():
    from airflow_distmap.results import progress_message

    counts = {
        "total": 13,
        "succeeded": 9,
        "failed": 1,
        "timed_out": 0,
        "aborted": 1,
        "running": 1,
        "pending": 1,
    }
    assert progress_message("RUNNING", counts) == (
        "Map Run RUNNING: 11 of the 13 items read so far are done: "
        "9 succeeded, 1 failed, 1 aborted, 1 running, 1 pending"
    )
    closed = {**counts, "running": 0, "pending": 0, "aborted": 3}
    assert (
        progress_message("FAILED", closed)
        == "Map Run FAILED: 13 of 13 items done: 9 succeeded, 1 failed, 3 aborted"
    )
