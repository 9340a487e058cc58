"""Distributed Map runs through the service: readers, batching, tolerance, results, stop, redrive."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_distmap.local.errors import ServiceError
from airflow_distmap.local.runtime import map_run as map_run_module
from airflow_distmap.local.runtime import readers as readers_module
from airflow_distmap.local.runtime import spool as spool_module
from tests.local.runtime.helpers import BUCKET, Harness, distributed_map, lambda_task, sleep_forever

CSV_READER = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
    "Parameters": {"Bucket": BUCKET, "Key.$": "$.key"},
}
WRITER = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": BUCKET, "Prefix": "results"}}
#: A zero fraction is left out (AWS trims it), any other has exactly three digits.
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def fail_negative(event: Any) -> Any:
    values = [item["n"] for item in event["Items"]] if "Items" in event else [event["n"]]
    if any(int(v) < 0 for v in values):
        raise ValueError("negative")
    return {"ok": values}


def result_files(harness: Harness, output: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    manifest = harness.get_json(output["ResultWriterDetails"]["Key"])
    return {
        status: [entry for f in files for entry in harness.get_json(f["Key"])]
        for status, files in manifest["ResultFiles"].items()
    }


def test_csv_reader_selector_batcher_and_result_writer(harness: Harness) -> None:
    harness.put("rows.csv", "id,name\n" + "".join(f"{i},n{i}\n" for i in range(7)))
    definition = distributed_map(
        ItemReader=CSV_READER,
        ItemSelector={
            "row.$": "$$.Map.Item.Value",
            "index.$": "$$.Map.Item.Index",
            "src.$": "$$.Map.Item.Source",
        },
        ItemBatcher={"MaxItemsPerBatch": 3, "BatchInput": {"job.$": "$.job"}},
        ResultWriter=WRITER,
    )
    arn, done = harness.run(definition, {"key": "rows.csv", "job": "j1"})
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    map_run = harness.map_run(arn)
    run_id = map_run["mapRunArn"].rsplit(":", 1)[1]
    assert output == {
        "MapRunArn": map_run["mapRunArn"],
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": f"results/{run_id}/manifest.json"},
    }
    assert map_run["itemCounts"]["total"] == 7
    assert map_run["itemCounts"]["succeeded"] == 7
    assert map_run["executionCounts"]["total"] == 3
    assert map_run["executionCounts"]["resultsWritten"] == 3
    files = result_files(harness, output)
    assert files["FAILED"] == []
    assert files["PENDING"] == []
    entries = files["SUCCEEDED"]
    first_input = json.loads(entries[0]["Input"])
    assert first_input["BatchInput"] == {"job": "j1"}
    assert first_input["Items"][1] == {
        "row": {"id": "1", "name": "n1"},
        "index": 1,
        "src": f"S3://{BUCKET}/rows.csv",
    }
    assert [len(json.loads(e["Input"])["Items"]) for e in entries] == [3, 3, 1]
    entry = entries[0]
    assert set(entry) == {
        "ExecutionArn",
        "Input",
        "InputDetails",
        "Name",
        "Output",
        "OutputDetails",
        "RedriveCount",
        "RedriveStatus",
        "RedriveStatusReason",
        "StartDate",
        "StateMachineArn",
        "Status",
        "StopDate",
    }
    assert entry["Output"] == entry["Input"]
    assert entry["ExecutionArn"].endswith(f":{entry['Name']}")
    assert ISO_MS.match(entry["StartDate"])
    assert ISO_MS.match(entry["StopDate"])
    assert (entry["Status"], entry["RedriveStatus"]) == ("SUCCEEDED", "NOT_REDRIVABLE")
    assert harness.event_types(arn) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]


def test_a_flattened_listing_and_a_parquet_file_feed_children_their_records(harness: Harness) -> None:
    harness.put("parts/part-0.csv", "id,name\n0,a\n1,b\n")
    harness.put("parts/part-1.csv", "id,name\n2,c\n3,d\n")
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [0, 1], "name": ["a", None]}), sink)
    harness.put("rows.parquet", sink.getvalue())
    flattened = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "ReaderConfig": {"InputType": "CSV", "Transformation": "LOAD_AND_FLATTEN", "MaxItems": 3},
        "Parameters": {"Bucket": BUCKET, "Prefix": "parts/"},
    }
    parquet = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "PARQUET"},
        "Parameters": {"Bucket": BUCKET, "Key": "rows.parquet"},
    }
    selector = {"row.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "src.$": "$$.Map.Item.Source"}
    part = f"S3://{BUCKET}/parts/part-"
    for reader, expected in (
        (
            flattened,
            [
                ({"id": "0", "name": "a"}, f"{part}0.csv"),
                ({"id": "1", "name": "b"}, f"{part}0.csv"),
                ({"id": "2", "name": "c"}, f"{part}1.csv"),
            ],
        ),
        (
            parquet,
            [
                ({"id": 0, "name": "a"}, f"S3://{BUCKET}/rows.parquet"),
                ({"id": 1, "name": None}, f"S3://{BUCKET}/rows.parquet"),
            ],
        ),
    ):
        definition = distributed_map(ItemReader=reader, ItemSelector=selector, ResultWriter=WRITER)
        arn, done = harness.run(definition)
        assert done["status"] == "SUCCEEDED", done
        inputs = [
            json.loads(e["Input"]) for e in result_files(harness, json.loads(done["output"]))["SUCCEEDED"]
        ]
        assert sorted(inputs, key=lambda item: item["index"]) == [
            {"row": row, "index": index, "src": source} for index, (row, source) in enumerate(expected)
        ]
        assert harness.map_run(arn)["itemCounts"]["total"] == len(expected)


def test_tolerated_failures_keep_the_run_and_show_in_the_output(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    items = [{"n": 1}, {"n": -1}, {"n": 2}]
    arn, done = harness.run(distributed_map(lambda_task(), ToleratedFailureCount=1), items)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output[0] == {"ok": [1]}
    assert output[2] == {"ok": [2]}
    assert (output[1]["Status"], output[1]["Error"]) == ("FAILED", "ValueError")
    counts = harness.map_run(arn)["itemCounts"]
    assert (counts["succeeded"], counts["failed"]) == (2, 1)


def test_threshold_breach_fails_the_map_and_leaves_pending_children(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    items = [{"n": -1}, {"n": -2}] + [{"n": i} for i in range(5)]
    definition = distributed_map(
        lambda_task(), MaxConcurrency=1, ToleratedFailureCount=1, ResultWriter=WRITER
    )
    arn, done = harness.run(definition, items)
    assert (done["status"], done["error"], done["cause"]) == (
        "FAILED",
        "States.ExceedToleratedFailureThreshold",
        "The specified tolerated failure threshold was exceeded",
    )
    assert harness.event_types(arn)[-4:] == [
        "MapRunStarted",
        "MapRunFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]
    map_run = harness.map_run(arn)
    assert map_run["status"] == "FAILED"
    assert map_run["itemCounts"]["failed"] == 2
    assert map_run["itemCounts"]["succeeded"] == 0
    files = result_files(
        harness,
        {"ResultWriterDetails": {"Key": f"results/{map_run['mapRunArn'].rsplit(':', 1)[1]}/manifest.json"}},
    )
    assert [json.loads(e["Input"]) for e in files["FAILED"]] == [{"n": -1}, {"n": -2}]
    failed = files["FAILED"][0]
    assert (failed["Error"], failed["RedriveStatus"]) == ("ValueError", "REDRIVABLE_BY_MAP_RUN")
    assert "Output" not in failed
    assert json.loads(failed["Cause"])["errorMessage"] == "negative"
    # The state input's items that never started, read or not, are pending and counted (spec 3.2).
    assert [json.loads(e["Input"]) for e in files["PENDING"]] == [{"n": i} for i in range(5)]
    assert (map_run["itemCounts"]["total"], map_run["itemCounts"]["pending"]) == (7, 5)
    # A child that never started is no execution: AWS's ExecutionStatus has no PENDING.
    listed = harness.call("ListExecutions", mapRunArn=map_run["mapRunArn"])["executions"]
    assert sorted(e["status"] for e in listed) == ["FAILED", "FAILED"]
    for action in ("DescribeExecution", "GetExecutionHistory"):
        with pytest.raises(ServiceError) as caught:
            harness.call(action, executionArn=files["PENDING"][0]["ExecutionArn"])
        assert caught.value.code == "ExecutionDoesNotExist"


def test_a_percentage_threshold_over_the_state_input_fails_once_it_is_passed(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    items = [{"n": -i} for i in range(1, 101)]  # every item fails; 10 % of 100 is passed by the 11th
    definition = distributed_map(lambda_task(), MaxConcurrency=2, ToleratedFailurePercentage=10)
    arn, done = harness.run(definition, items)
    assert (done["status"], done["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    counts = harness.map_run(arn)["itemCounts"]
    assert counts["total"] == 100
    assert 11 <= counts["failed"] <= 13  # the children already running when it is passed may end too
    assert counts["pending"] >= 85


def test_a_zero_percent_threshold_over_an_item_reader_fails_at_the_first_failure(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    harness.put("all-fail.csv", "n\n" + "".join(f"-{i}\n" for i in range(1, 301)))
    definition = distributed_map(
        lambda_task(), ItemReader=CSV_READER, MaxConcurrency=2, ToleratedFailurePercentage=0
    )
    arn, done = harness.run(definition, {"key": "all-fail.csv"})
    assert (done["status"], done["error"]) == ("FAILED", "States.ExceedToleratedFailureThreshold")
    assert harness.map_run(arn)["itemCounts"]["failed"] <= 3  # as ToleratedFailureCount 0 would, not all 300


def test_a_failed_batch_counts_all_its_items(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    items = [{"n": 1}, {"n": -1}, {"n": 2}, {"n": 3}]
    definition = distributed_map(
        lambda_task(), ItemBatcher={"MaxItemsPerBatch": 3}, ToleratedFailurePercentage=80
    )
    arn, done = harness.run(definition, items)
    assert done["status"] == "SUCCEEDED"
    map_run = harness.map_run(arn)
    assert (map_run["itemCounts"]["failed"], map_run["executionCounts"]["failed"]) == (3, 1)
    assert map_run["toleratedFailurePercentage"] == 80.0
    failed = harness.call("ListExecutions", mapRunArn=map_run["mapRunArn"], statusFilter="FAILED")[
        "executions"
    ]
    assert len(failed) == 1
    assert failed[0]["itemCount"] == 3
    child = harness.call("DescribeExecution", executionArn=failed[0]["executionArn"])
    assert (child["status"], child["error"], child["mapRunArn"]) == (
        "FAILED",
        "ValueError",
        map_run["mapRunArn"],
    )
    assert child["redriveStatus"] == "REDRIVABLE_BY_MAP_RUN"
    assert json.loads(child["input"]) == {"Items": [{"n": 1}, {"n": -1}, {"n": 2}]}


def test_counts_move_while_running_and_update_map_run_raises_concurrency(harness: Harness) -> None:
    gate = hold_invocations(harness)
    arn = harness.start(harness.create(distributed_map(lambda_task(), MaxConcurrency=2)), [1, 2, 3, 4, 5])
    map_run_arn = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = harness.call("ListMapRuns", executionArn=arn)["mapRuns"]
        if runs:
            map_run_arn = runs[0]["mapRunArn"]
            if harness.call("DescribeMapRun", mapRunArn=map_run_arn)["executionCounts"]["running"] == 2:
                break
        time.sleep(0.01)
    running = harness.call("DescribeMapRun", mapRunArn=map_run_arn)
    assert running["status"] == "RUNNING"
    assert (running["executionCounts"]["running"], running["executionCounts"]["succeeded"]) == (2, 0)
    # The state input's items are all known: those not started yet are pending, the total is all five.
    for counted in (running["itemCounts"], running["executionCounts"]):
        assert (counted["total"], counted["pending"], counted["running"]) == (5, 3, 2)
    harness.call("UpdateMapRun", mapRunArn=map_run_arn, maxConcurrency=5)
    while harness.call("DescribeMapRun", mapRunArn=map_run_arn)["executionCounts"]["running"] < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gate.set()
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    finished = harness.call("DescribeMapRun", mapRunArn=map_run_arn)
    assert (finished["status"], finished["maxConcurrency"], finished["itemCounts"]["succeeded"]) == (
        "SUCCEEDED",
        5,
        5,
    )
    assert "stopDate" in finished


def test_stop_execution_aborts_running_children(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = sleep_forever
    arn = harness.start(harness.create(distributed_map(lambda_task(), MaxConcurrency=2)), [1, 2, 3])
    deadline = time.monotonic() + 10
    while harness.lambdas.calls < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopped = harness.call("StopExecution", executionArn=arn, error="User", cause="enough")
    assert "stopDate" in stopped
    described = harness.call("DescribeExecution", executionArn=arn)
    assert (described["status"], described["error"], described["cause"]) == ("ABORTED", "User", "enough")
    assert described["redriveStatus"] == "REDRIVABLE"
    while harness.map_run(arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    map_run = harness.map_run(arn)
    assert map_run["status"] == "ABORTED"
    assert (map_run["executionCounts"]["aborted"], map_run["executionCounts"]["running"]) == (2, 0)
    aborted = harness.call("ListExecutions", mapRunArn=map_run["mapRunArn"], statusFilter="ABORTED")
    child = harness.call("DescribeExecution", executionArn=aborted["executions"][0]["executionArn"])
    assert child["status"] == "ABORTED"
    assert ("error" in child, "cause" in child) == (False, False)  # left out, as for the parent, not ""
    assert harness.event_types(arn)[-1] == "ExecutionAborted"
    with pytest.raises(ServiceError) as too_long:
        harness.call("StopExecution", executionArn=arn, error="e" * 257)
    assert too_long.value.code == "ValidationException"


def test_redrive_reruns_only_failed_children_and_counts_redrives(harness: Harness) -> None:
    broken = {"on": True}
    seen: list[Any] = []

    def flaky(event: Any) -> Any:
        seen.append(event)
        if broken["on"] and event["n"] < 0:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers["work"] = flaky
    items = [{"n": 1}, {"n": -1}, {"n": 2}, {"n": -2}]
    definition = distributed_map(lambda_task(), ToleratedFailureCount=1, ResultWriter=WRITER)
    arn, first = harness.run(definition, items)
    assert first["status"] == "FAILED"
    assert len(seen) == 4
    broken["on"] = False
    map_run_arn = harness.call("ListMapRuns", executionArn=arn)["mapRuns"][0]["mapRunArn"]
    child = harness.call("ListExecutions", mapRunArn=map_run_arn, statusFilter="FAILED")["executions"][0]
    with pytest.raises(ServiceError) as child_redrive:  # children are redriven with their parent only
        harness.call("RedriveExecution", executionArn=child["executionArn"])
    assert child_redrive.value.code == "ExecutionNotRedrivable"
    redriven = harness.call("RedriveExecution", executionArn=arn, clientToken="redrive-1")
    assert "redriveDate" in redriven
    # An SDK retry of the same request (same client token) gets the same answer, not ExecutionNotRedrivable.
    assert harness.call("RedriveExecution", executionArn=arn, clientToken="redrive-1") == redriven
    with pytest.raises(ServiceError) as bad_token:
        harness.call("RedriveExecution", executionArn=arn, clientToken="a b")
    assert bad_token.value.code == "ValidationException"
    with pytest.raises(ServiceError, match="Member must have length less than or equal to 64"):
        harness.call("RedriveExecution", executionArn=arn, clientToken="c" * 65)
    done = harness.wait(arn)
    assert done["status"] == "SUCCEEDED", done
    assert done["redriveCount"] == 1
    assert sorted(e["n"] for e in seen[4:]) == [-2, -1]
    map_run = harness.map_run(arn)
    assert (map_run["redriveCount"], map_run["status"], map_run["itemCounts"]["succeeded"]) == (
        1,
        "SUCCEEDED",
        4,
    )
    assert map_run["itemCounts"]["failed"] == 0
    assert "MapRunRedriven" in harness.event_types(arn)
    assert harness.event_types(arn)[-2:] == ["MapStateExited", "ExecutionSucceeded"]
    files = result_files(harness, json.loads(done["output"]))
    assert sorted(json.loads(e["Input"])["n"] for e in files["SUCCEEDED"]) == [-2, -1, 1, 2]
    assert files["FAILED"] == []
    assert sorted(e["RedriveCount"] for e in files["SUCCEEDED"]) == [0, 0, 1, 1]
    # One result per child, however often it ran.
    assert (map_run["itemCounts"]["resultsWritten"], map_run["executionCounts"]["resultsWritten"]) == (4, 4)
    with pytest.raises(ServiceError) as refused:
        harness.call("RedriveExecution", executionArn=arn)
    assert refused.value.code == "ExecutionNotRedrivable"


def test_a_child_stopped_before_it_began_is_aborted_and_redriven(harness: Harness) -> None:
    broken = {"on": True}
    seen: list[int] = []

    def flaky(event: Any) -> Any:
        seen.append(event["n"])
        if broken["on"] and event["n"] < 0:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers["work"] = flaky
    definition = distributed_map(lambda_task(), ToleratedFailureCount=0, ResultWriter=WRITER)
    # All three children start at once; the second one's failure stops the third before its first step.
    arn, first = harness.run(definition, [{"n": 1}, {"n": -1}, {"n": 2}])
    assert first["status"] == "FAILED"
    counts = harness.map_run(arn)["itemCounts"]
    assert (counts["running"], counts["succeeded"], counts["failed"], counts["aborted"]) == (0, 1, 1, 1)

    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    done = harness.wait(arn)
    assert done["status"] == "SUCCEEDED"
    assert sorted(seen) == [-1, -1, 1, 2]
    files = result_files(harness, json.loads(done["output"]))
    assert sorted(json.loads(e["Input"])["n"] for e in files["SUCCEEDED"]) == [-1, 1, 2]


def map_run_record(harness: Harness, arn: str) -> Any:
    """The runtime's own record of the execution's Map Run."""
    return harness.service.store.map_runs[harness.map_run(arn)["mapRunArn"]]


def three_step_processor() -> dict[str, Any]:
    """A (counted) -> B (fails while broken, assigning on the way) -> C (its output: the child's context)."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:"
    return {
        "A": {"Type": "Task", "Resource": arn + "count", "Next": "B", "Assign": {"fromA.$": "$.n"}},
        "B": {"Type": "Task", "Resource": arn + "flaky", "Next": "C"},
        "C": {
            "Type": "Pass",
            "Parameters": {"execution.$": "$$.Execution", "fromA.$": "$fromA"},
            "End": True,
        },
    }


def test_a_redriven_standard_child_goes_on_from_the_state_that_failed(harness: Harness) -> None:
    broken = {"on": True}
    counted: list[Any] = []

    def count(event: Any) -> Any:
        counted.append(event["n"])
        return {**event, "counted": True}

    def flaky(event: Any) -> Any:
        assert event["counted"], event  # B's input is A's output, on a redrive too
        if broken["on"] and event["n"] < 0:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers.update(count=count, flaky=flaky)
    definition = distributed_map(
        three_step_processor(), start_at="A", ToleratedFailureCount=0, ResultWriter=WRITER
    )
    arn, first = harness.run(definition, [{"n": 1}, {"n": -1}, {"n": -2}])
    assert first["error"] == "States.ExceedToleratedFailureThreshold"
    map_run_arn = harness.map_run(arn)["mapRunArn"]
    failed = harness.call("ListExecutions", mapRunArn=map_run_arn, statusFilter="FAILED")["executions"]
    first_starts = {child["executionArn"]: child["startDate"] for child in failed}

    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    done = harness.wait(arn)

    assert done["status"] == "SUCCEEDED"
    assert sorted(counted) == [-2, -1, 1]  # A ran once per child: the failed children went on from B
    outputs = {
        json.loads(e["Input"])["n"]: json.loads(e["Output"])
        for e in result_files(harness, json.loads(done["output"]))["SUCCEEDED"]
    }
    assert {n: output["fromA"] for n, output in outputs.items()} == {1: 1, -1: -1, -2: -2}  # variables kept
    redriven = outputs[-1]["execution"]
    assert redriven["RedriveCount"] == 1
    assert "RedriveTime" in redriven
    assert "RedriveTime" not in outputs[1]["execution"]
    for child_arn, started in first_starts.items():
        described = harness.call("DescribeExecution", executionArn=child_arn)
        assert described["startDate"] == started  # the same execution, going on
        assert described["redriveDate"] >= started
    assert all(child.resume is None for child in map_run_record(harness, arn).children)  # nothing kept


def test_a_child_failing_in_its_first_state_keeps_no_resume_point(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = fail_negative
    definition = distributed_map(lambda_task(), ToleratedFailureCount=0)
    arn, done = harness.run(definition, [{"n": -1}, {"n": -2}])
    assert done["status"] == "FAILED"
    # A redrive restarts such a child with its input, which the spool keeps: no copy of it stays in memory.
    assert all(child.resume is None for child in map_run_record(harness, arn).children)


def test_a_redriven_express_child_starts_again_without_a_redrive_date(harness: Harness) -> None:
    broken = {"on": True}
    counted: list[Any] = []

    def count(event: Any) -> Any:
        counted.append(event["n"])
        return event

    def flaky(event: Any) -> Any:
        if broken["on"] and event["n"] < 0:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers.update(count=count, flaky=flaky)
    definition = distributed_map(
        three_step_processor(),
        start_at="A",
        ToleratedFailureCount=0,
        ResultWriter=WRITER,
        ExecutionType="EXPRESS",
    )
    arn, first = harness.run(definition, [{"n": 1}, {"n": -1}])
    assert first["status"] == "FAILED"
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    assert sorted(counted) == [-1, -1, 1]  # an EXPRESS child is started again from its first state
    map_run_arn = harness.map_run(arn)["mapRunArn"]
    children = harness.call("ListExecutions", mapRunArn=map_run_arn)["executions"]
    assert all("redriveDate" not in child for child in children)
    for child in children:
        assert "redriveDate" not in harness.call("DescribeExecution", executionArn=child["executionArn"])


def stop_after_invocations(harness: Harness, arn: str, calls: int) -> dict[str, Any]:
    """Stop ``arn`` once the Lambda invoker had ``calls`` calls; return its Map Run once that has ended."""
    deadline = time.monotonic() + 10
    while harness.lambdas.calls < calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    harness.call("StopExecution", executionArn=arn)
    while harness.map_run(arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return harness.map_run(arn)


def test_children_a_stopped_redrive_did_not_reach_are_pending_again(harness: Harness) -> None:
    def fail(event: Any) -> Any:
        raise ValueError("no")

    harness.lambdas.handlers["work"] = fail
    definition = distributed_map(lambda_task(), MaxConcurrency=1, ToleratedFailureCount=2)
    arn, first = harness.run(definition, [1, 2, 3])
    assert first["status"] == "FAILED"
    harness.lambdas.handlers["work"] = sleep_forever
    calls = harness.lambdas.calls
    harness.call("RedriveExecution", executionArn=arn)
    # The first redriven child runs; the two others wait for its slot.
    map_run = stop_after_invocations(harness, arn, calls + 1)
    counts = map_run["executionCounts"]
    assert (counts["aborted"], counts["pending"], counts["pendingRedrive"]) == (1, 2, 0)
    map_run_arn = map_run["mapRunArn"]
    waiting = harness.call("ListExecutions", mapRunArn=map_run_arn, statusFilter="PENDING_REDRIVE")
    assert waiting["executions"] == []
    # The two a redrive never reached are still the failed executions they were.
    failed = harness.call("ListExecutions", mapRunArn=map_run_arn, statusFilter="FAILED")["executions"]
    assert len(failed) == 2
    described = harness.call("DescribeExecution", executionArn=failed[0]["executionArn"])
    assert (described["status"], described["error"]) == ("FAILED", "ValueError")
    assert (described["redriveCount"], "redriveDate" in described) == (0, False)  # it never ran again


def test_a_stop_leaves_the_unread_state_input_pending_in_its_batches(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = sleep_forever
    definition = distributed_map(lambda_task(), MaxConcurrency=1, ItemBatcher={"MaxItemsPerBatch": 3})
    arn = harness.start(harness.create(definition), list(range(10)))
    map_run = stop_after_invocations(harness, arn, 1)
    items, executions = map_run["itemCounts"], map_run["executionCounts"]
    assert (items["total"], items["aborted"], items["pending"]) == (10, 3, 7)
    assert (executions["total"], executions["aborted"], executions["pending"]) == (4, 1, 3)


def test_no_child_execution_is_named_like_its_map_run(harness: Harness) -> None:
    arn, _ = harness.run(distributed_map(ItemsPath="$"), [1, 2, 3])
    map_run_arn = harness.map_run(arn)["mapRunArn"]
    names = [e["name"] for e in harness.call("ListExecutions", mapRunArn=map_run_arn)["executions"]]
    assert len(set(names)) == 3
    assert map_run_arn.rsplit(":", 1)[1] not in names


@pytest.mark.parametrize("invoke", [False, True])
def test_redrive_does_not_invoke_a_task_that_succeeded_before_the_failed_map(
    harness: Harness, invoke: bool
) -> None:
    counted: list[Any] = []
    broken = {"on": True}

    def count(event: Any) -> Any:
        counted.append(event)
        return {"items": [{"n": 1}, {"n": -1}]}

    def flaky(event: Any) -> Any:
        if broken["on"] and event["n"] < 0:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers["count"] = count
    harness.lambdas.handlers["work"] = flaky
    if invoke:
        task = {
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "count", "Payload.$": "$"},
            "OutputPath": "$.Payload",
        }
    else:
        task = {"Resource": "arn:aws:lambda:us-east-1:123456789012:function:count"}
    definition = distributed_map(lambda_task(), ItemsPath="$.items")
    definition["StartAt"] = "Count"
    definition["States"]["Count"] = {"Type": "Task", **task, "Next": "Map"}
    arn, first = harness.run(definition, {})
    assert first["status"] == "FAILED"
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    done = harness.wait(arn)
    assert done["status"] == "SUCCEEDED", done
    assert len(counted) == 1  # AWS resumes at the failed state: the Task before it is not run again
    assert sorted(item["n"] for item in json.loads(done["output"])) == [-1, 1]


def test_redrive_after_an_item_selector_failure_starts_a_new_map_run(harness: Harness) -> None:
    definition = distributed_map(ItemsPath="$", ItemSelector={"v.$": "$$.Map.Item.Value.a"})
    arn, first = harness.run(definition, [{"a": 1}, {"b": 2}])
    assert (first["status"], first["error"]) == ("FAILED", "States.Runtime")
    harness.call("RedriveExecution", executionArn=arn)
    again = harness.wait(arn)
    assert (again["status"], again["error"]) == ("FAILED", "States.Runtime")
    runs = harness.call("ListMapRuns", executionArn=arn)["mapRuns"]
    assert len(runs) == 2  # "a new Map Run is started instead" (spec, Redrive)
    assert all(harness.call("DescribeMapRun", mapRunArn=r["mapRunArn"])["redriveCount"] == 0 for r in runs)


def test_a_stop_waits_for_running_express_children(harness: Harness) -> None:
    async def slow(event: Any) -> Any:
        await asyncio.sleep(0.5)
        return event

    harness.lambdas.handlers["work"] = slow
    definition = distributed_map(lambda_task(), MaxConcurrency=2, ExecutionType="EXPRESS")
    arn = harness.start(harness.create(definition), [1, 2, 3, 4])
    counts = stop_after_invocations(harness, arn, 2)["executionCounts"]  # it waited for its EXPRESS children
    assert (counts["succeeded"], counts["aborted"], counts["pending"]) == (2, 0, 2)


def hold_invocations(harness: Harness) -> threading.Event:
    """Make the ``work`` function hold every invocation until the returned event is set."""
    release = threading.Event()

    async def held(event: Any) -> Any:
        while not release.is_set():
            await asyncio.sleep(0.01)
        return event

    harness.lambdas.handlers["work"] = held
    return release


def test_a_timed_out_parent_waits_for_its_running_express_children_and_a_redrive_waits_too(
    harness: Harness,
) -> None:
    release = hold_invocations(harness)
    definition = distributed_map(lambda_task(), MaxConcurrency=2, ExecutionType="EXPRESS")
    definition["TimeoutSeconds"] = 1
    arn = harness.start(harness.create(definition), [1, 2, 3, 4])
    done = harness.wait(arn)  # TIMED_OUT at once, while both children still run
    assert (done["status"], done["error"]) == ("TIMED_OUT", "States.Timeout")
    assert harness.map_run(arn)["status"] == "RUNNING"  # waiting for the EXPRESS children it can't stop
    harness.call("RedriveExecution", executionArn=arn)  # accepted; it starts once the Map Run has ended
    release.set()
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    counts = harness.map_run(arn)["executionCounts"]
    assert (counts["succeeded"], counts["aborted"]) == (4, 0)
    assert harness.lambdas.calls == 4  # the two that were running finished: they did not run again


def test_stops_and_redrives_while_express_children_run_never_overlap_two_runs(harness: Harness) -> None:
    release = hold_invocations(harness)
    definition = distributed_map(lambda_task(), MaxConcurrency=2, ExecutionType="EXPRESS")
    arn = harness.start(harness.create(definition), [1, 2, 3, 4])
    deadline = time.monotonic() + 10
    while harness.lambdas.calls < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for _ in range(2):  # each redrive waits for the first run's EXPRESS children; a stop ends the wait
        harness.call("StopExecution", executionArn=arn)
        harness.call("RedriveExecution", executionArn=arn)
    time.sleep(0.2)
    assert harness.lambdas.calls == 2  # nothing else started while the first run's children still run
    release.set()
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    map_run = harness.map_run(arn)
    assert map_run["status"] == "SUCCEEDED"
    assert (map_run["executionCounts"]["succeeded"], harness.lambdas.calls) == (4, 4)


def test_a_threshold_breach_lets_running_express_children_finish(harness: Harness) -> None:
    async def slow_or_failing(event: Any) -> Any:
        if event < 0:
            raise ValueError("negative")
        await asyncio.sleep(0.3)
        return event

    harness.lambdas.handlers["work"] = slow_or_failing
    definition = distributed_map(lambda_task(), MaxConcurrency=3, ExecutionType="EXPRESS")
    arn, done = harness.run(definition, [1, -1, 2, 3])
    assert done["error"] == "States.ExceedToleratedFailureThreshold"
    counts = harness.map_run(arn)["executionCounts"]
    assert counts["aborted"] == 0
    assert counts["succeeded"] >= 1  # the item running beside the failed one finished
    assert counts["failed"] == 1


def test_express_children_time_out(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(map_run_module, "EXPRESS_TIMEOUT_SECONDS", 0.2)
    harness.lambdas.handlers["work"] = sleep_forever
    arn, done = harness.run(distributed_map(lambda_task(), ExecutionType="EXPRESS"), [1])
    assert done["error"] == "States.ExceedToleratedFailureThreshold"
    assert harness.map_run(arn)["itemCounts"]["timedOut"] == 1


def test_a_task_timeout_fails_the_child_like_an_execution(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = sleep_forever
    states = lambda_task()
    states["P"]["TimeoutSeconds"] = 1
    arn, done = harness.run(distributed_map(states, ToleratedFailureCount=1), [1])
    assert done["status"] == "SUCCEEDED", done
    counts = harness.map_run(arn)["itemCounts"]
    assert (counts["failed"], counts["timedOut"]) == (1, 0)
    (child,) = harness.call("ListExecutions", mapRunArn=harness.map_run(arn)["mapRunArn"])["executions"]
    described = harness.call("DescribeExecution", executionArn=child["executionArn"])
    assert (described["status"], described["error"]) == ("FAILED", "States.Timeout")


def test_an_output_with_a_lone_surrogate_is_written_escaped(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = lambda event: "a\ud800b" if event == 2 else event
    arn, done = harness.run(distributed_map(lambda_task()), [1, 2, 3])
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == [1, "a\ud800b", 3]
    counts = harness.map_run(arn)["executionCounts"]
    assert (counts["succeeded"], counts["running"]) == (3, 0)


def test_oversized_child_input_fails_the_map_run(harness: Harness) -> None:
    harness.put("big.json", json.dumps(["x" * 300_000]))
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": BUCKET, "Key": "big.json"},
    }
    arn, done = harness.run(distributed_map(ItemReader=reader))
    assert done["error"] == "States.DataLimitExceeded"
    assert harness.event_types(arn)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]


def test_a_child_output_over_the_payload_quota_fails_that_child(harness: Harness) -> None:
    async def echo_or_big(event: Any) -> Any:
        return "x" * 300_000 if event == "big" else event

    harness.lambdas.handlers["work"] = echo_or_big
    definition = distributed_map(lambda_task(), ItemsPath="$", ToleratedFailureCount=1)
    arn, done = harness.run(definition, ["small", "big"])
    assert done["status"] == "SUCCEEDED"
    map_run_arn = harness.map_run(arn)["mapRunArn"]
    (child,) = harness.call("ListExecutions", mapRunArn=map_run_arn, statusFilter="FAILED")["executions"]
    described = harness.call("DescribeExecution", executionArn=child["executionArn"])
    assert described["error"] == "States.DataLimitExceeded"
    assert "262144 bytes" in described["cause"]


def test_a_redrive_after_the_map_output_was_over_the_quota_starts_a_new_map_run(harness: Harness) -> None:
    calls: list[Any] = []

    async def pad(event: Any) -> Any:
        calls.append(event)
        return "x" * 1000

    harness.lambdas.handlers["work"] = pad
    arn, done = harness.run(distributed_map(lambda_task()), list(range(300)))  # 300 KB of output
    assert done["error"] == "States.DataLimitExceeded"
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["error"] == "States.DataLimitExceeded"
    # "a new Map Run is started instead, and successful children are re-run too" (spec, Redrive)
    map_runs = harness.call("ListMapRuns", executionArn=arn)["mapRuns"]
    assert len(map_runs) == 2
    assert len(calls) == 600


def test_a_redrive_after_a_later_state_failed_replays_the_succeeded_map_run(harness: Harness) -> None:
    children: list[Any] = []
    broken = {"on": True}

    def work(event: Any) -> Any:
        children.append(event)
        return event

    def after(event: Any) -> Any:
        if broken["on"]:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers["work"] = work
    harness.lambdas.handlers["after"] = after
    definition = distributed_map(lambda_task())
    definition["States"]["Map"] = {**definition["States"]["Map"], "Next": "After"}
    del definition["States"]["Map"]["End"]
    definition["States"]["After"] = {**lambda_task("after")["P"]}
    arn, first = harness.run(definition, [1, 2, 3])
    assert first["error"] == "ValueError"
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    assert len(children) == 3  # resumed at After: the Map's children did not run again
    assert len(harness.call("ListMapRuns", executionArn=arn)["mapRuns"]) == 1


def test_a_redrive_replays_a_map_run_that_succeeded_beside_the_branch_that_failed(harness: Harness) -> None:
    children: list[Any] = []
    broken = {"on": True}

    def work(event: Any) -> Any:
        children.append(event)
        return event

    async def slow(event: Any) -> Any:
        await asyncio.sleep(0.5)  # fails after the other branch's Map Run succeeded
        if broken["on"]:
            raise ValueError("not yet")
        return event

    harness.lambdas.handlers["work"] = work
    harness.lambdas.handlers["slow"] = slow
    branches = [
        {"StartAt": "Map", "States": distributed_map(lambda_task())["States"]},
        {"StartAt": "P", "States": lambda_task("slow")},
    ]
    both = {"Type": "Parallel", "Branches": branches, "End": True}
    definition = {"StartAt": "Both", "States": {"Both": both}}
    arn, first = harness.run(definition, [1, 2, 3])
    assert first["error"] == "ValueError"
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    assert len(children) == 3  # the Map's children did not run again
    assert len(harness.call("ListMapRuns", executionArn=arn)["mapRuns"]) == 1


def test_missing_object_fails_the_reader(harness: Harness) -> None:
    arn, done = harness.run(distributed_map(ItemReader=CSV_READER), {"key": "missing.csv"})
    assert (done["status"], done["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert "NoSuchKey" in done["cause"]
    map_run = harness.map_run(arn)
    assert map_run["status"] == "FAILED"
    assert map_run["stopDate"] >= map_run["startDate"]
    assert harness.event_types(arn)[-4:] == [
        "MapRunStarted",
        "MapRunFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]


@pytest.mark.parametrize(("owner", "status"), [("123456789012", "SUCCEEDED"), ("999999999999", "FAILED")])
def test_expected_bucket_owner_is_checked_as_s3_checks_it(harness: Harness, owner: str, status: str) -> None:
    harness.put("owned.csv", "id\n1\n")
    reader = {**CSV_READER, "Parameters": {**CSV_READER["Parameters"], "ExpectedBucketOwner": owner}}
    _, done = harness.run(distributed_map(ItemReader=reader), {"key": "owned.csv"})
    assert done["status"] == status
    if status == "FAILED":
        assert done["error"] == "States.ItemReaderFailed"
        assert "AccessDenied" in done["cause"]
        assert f"s3://{BUCKET}/owned.csv" in done["cause"]


def test_an_item_over_8_mb_fails_the_reader_and_the_map_run_ends(harness: Harness) -> None:
    harness.put("huge.csv", "id,text\n1," + "z" * (8 * 1024 * 1024 + 1) + "\n2,b\n")
    arn, done = harness.run(distributed_map(ItemReader=CSV_READER), {"key": "huge.csv"})
    assert (done["status"], done["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert done["cause"].startswith("An item is larger than the 8 MB that Step Functions reads from a file")
    map_run = harness.map_run(arn)
    assert map_run["status"] == "FAILED"
    assert map_run["stopDate"] >= map_run["startDate"]
    assert harness.event_types(arn)[-3:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]


def test_a_result_that_cannot_be_kept_does_not_hang_the_map_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def slow(event: Any) -> Any:
        await asyncio.sleep(0.05)
        return event

    def disk_full(self: Any, data: bytes) -> Any:
        raise OSError(28, "No space left on device")

    harness.lambdas.handlers["work"] = slow
    monkeypatch.setattr(spool_module.ResultSpool, "append", disk_full)
    arn = harness.start(harness.create(distributed_map(lambda_task())), [{"n": 1}])
    assert harness.wait(arn, timeout=10)["status"] in ("FAILED", "SUCCEEDED")  # it ends, whatever it reports


def test_a_fault_of_the_runtime_fails_the_map_run_instead_of_leaving_it_running(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.put("rows.csv", "id\n1\n")

    async def broken(self: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(map_run_module.MapRun, "_read_and_dispatch", broken)
    arn, done = harness.run(distributed_map(ItemReader=CSV_READER), {"key": "rows.csv"})
    assert (done["status"], done["error"], done["cause"]) == ("FAILED", "States.Runtime", "KeyError: 'a bug'")
    assert harness.map_run(arn)["status"] == "FAILED"
    assert harness.event_types(arn)[-2:] == ["MapRunFailed", "ExecutionFailed"]  # as any States.Runtime

    monkeypatch.undo()  # mended: a redrive goes on with the same Map Run, not a new one rerunning everything
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    assert len(harness.call("ListMapRuns", executionArn=arn)["mapRuns"]) == 1


def test_a_missing_results_bucket_fails_the_writer_and_counts_nothing_written(harness: Harness) -> None:
    harness.put("rows.csv", "id\n1\n2\n3\n")
    writer = {"Resource": WRITER["Resource"], "Parameters": {"Bucket": "no-such-results-bucket"}}
    arn, done = harness.run(distributed_map(ItemReader=CSV_READER, ResultWriter=writer), {"key": "rows.csv"})
    assert (done["status"], done["error"]) == ("FAILED", "States.ResultWriterFailed")
    assert "NoSuchBucket" in done["cause"]
    map_run = harness.map_run(arn)
    assert map_run["itemCounts"]["succeeded"] == 3
    assert (map_run["itemCounts"]["resultsWritten"], map_run["executionCounts"]["resultsWritten"]) == (0, 0)

    harness.s3.create_bucket(Bucket="no-such-results-bucket")  # fixed: a redrive writes every result
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "SUCCEEDED"
    map_run = harness.map_run(arn)
    assert (map_run["itemCounts"]["resultsWritten"], map_run["executionCounts"]["resultsWritten"]) == (3, 3)


def test_max_items_and_jsonl_reader(harness: Harness) -> None:
    harness.put("rows.jsonl", "".join(json.dumps({"i": i}) + "\n" for i in range(10)))
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSONL", "MaxItems": 4},
        "Parameters": {"Bucket": BUCKET, "Key": "rows.jsonl"},
    }
    _, done = harness.run(distributed_map(ItemReader=reader))
    assert json.loads(done["output"]) == [{"i": i} for i in range(4)]


def test_label_names_the_map_run_and_children(harness: Harness) -> None:
    arn, _done = harness.run(distributed_map(Label="rows"), [1])
    map_run = harness.map_run(arn)
    assert ":mapRun:sm-1/rows:" in map_run["mapRunArn"]
    child = harness.call("ListExecutions", mapRunArn=map_run["mapRunArn"])["executions"][0]
    assert ":execution:sm-1/rows:" in child["executionArn"]
    assert child["stateMachineArn"].endswith(":stateMachine:sm-1/rows")
    machine = harness.call("DescribeStateMachineForExecution", executionArn=child["executionArn"])
    assert (machine["mapRunArn"], machine["label"]) == (map_run["mapRunArn"], "rows")
    assert machine["stateMachineArn"] == child["stateMachineArn"]
    assert json.loads(machine["definition"])["StartAt"]  # the ItemProcessor the children run


def test_a_map_without_label_gets_one_label_for_all_its_map_runs(harness: Harness) -> None:
    machine = harness.create(distributed_map())
    other = harness.create(distributed_map())
    labelled = []
    for machine_arn in (machine, machine, other):
        arn = harness.start(machine_arn, [1])
        harness.wait(arn)
        labelled.append(harness.map_run(arn)["mapRunArn"].rsplit(":", 1)[0])
    # "an auto-generated string that identifies a Map state": the same for each run, another for another state
    assert labelled[0] == labelled[1] != labelled[2]
    assert uuid.UUID(labelled[0].rsplit("/", 1)[1]).version == 3


def test_redrive_after_a_reader_failure_reads_the_source_again(harness: Harness) -> None:
    arn, first = harness.run(distributed_map(ItemReader=CSV_READER), {"key": "late.csv"})
    assert first["error"] == "States.ItemReaderFailed"
    harness.put("late.csv", "a\n1\n2\n")
    harness.call("RedriveExecution", executionArn=arn)
    done = harness.wait(arn)
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == [{"a": "1"}, {"a": "2"}]
    assert harness.map_run(arn)["redriveCount"] == 1


def test_item_selector_sees_variables_and_object_keys(harness: Harness) -> None:
    definition = distributed_map(
        ItemsPath="$.byName",
        ItemSelector={"key.$": "$$.Map.Item.Key", "value.$": "$$.Map.Item.Value", "tag.$": "$tag"},
    )
    definition["StartAt"] = "Set"
    definition["States"]["Set"] = {"Type": "Pass", "Assign": {"tag": "t1"}, "Next": "Map"}
    _, done = harness.run(definition, {"byName": {"a": 1, "b": 2}})
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == [
        {"key": "a", "value": 1, "tag": "t1"},
        {"key": "b", "value": 2, "tag": "t1"},
    ]


def test_a_jsonata_item_selector_is_evaluated_per_item(harness: Harness) -> None:
    definition = distributed_map(
        Items="{% $states.input.letters %}",
        ItemSelector={
            "letter": "{% $states.context.Map.Item.Value %}",
            "index": "{% $states.context.Map.Item.Index %}",
            "tag": "{% $states.input.tag %}",
        },
    )
    definition["QueryLanguage"] = "JSONata"
    _, done = harness.run(definition, {"letters": ["p", "q"], "tag": 9})
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == [
        {"letter": "p", "index": 0, "tag": 9},
        {"letter": "q", "index": 1, "tag": 9},
    ]


def test_pass_children_read_their_own_context_object(harness: Harness) -> None:
    states = {
        "P": {
            "Type": "Pass",
            "Parameters": {"v.$": "$", "name.$": "$$.Execution.Name", "state.$": "$$.State.Name"},
            "End": True,
        }
    }
    arn, done = harness.run(distributed_map(states, Label="rows"), ["a", "b"])
    assert done["status"] == "SUCCEEDED", done
    children = harness.call("ListExecutions", mapRunArn=harness.map_run(arn)["mapRunArn"])["executions"]
    names = {child["name"] for child in children}
    outputs = json.loads(done["output"])
    assert [output["v"] for output in outputs] == ["a", "b"]
    assert {output["name"] for output in outputs} == names
    assert {output["state"] for output in outputs} == {"P"}


def batches_of_four(max_concurrency: int) -> dict[str, Any]:
    """A Map over ``rows.csv`` (key in the input) in batches of four items, results written to S3."""
    return distributed_map(
        lambda_task(),
        ItemReader=CSV_READER,
        ItemBatcher={"MaxItemsPerBatch": 4},
        MaxConcurrency=max_concurrency,
        ResultWriter=WRITER,
    )


def processed_once(harness: Harness, arn: str) -> list[int]:
    """Wait for the execution to succeed; return the item numbers its children returned, sorted."""
    done = harness.wait(arn)
    assert done["status"] == "SUCCEEDED", done
    files = result_files(harness, json.loads(done["output"]))
    return sorted(n for entry in files["SUCCEEDED"] for n in json.loads(entry["Output"]))


def failed_on_the_first_batch(harness: Harness) -> tuple[str, dict[str, bool]]:
    """Run 50 rows of ``rows.csv`` in batches of four, one batch at a time, the first batch failing while
    ``broken["on"]``; return the FAILED execution and that switch."""
    harness.put("rows.csv", "n\n" + "".join(f"{i}\n" for i in range(50)))
    broken = {"on": True}

    def fails_first_batch_once(event: Any) -> Any:
        numbers = [int(item["n"]) for item in event["Items"]]
        if broken["on"] and 0 in numbers:
            raise ValueError("not yet")
        return numbers

    harness.lambdas.handlers["work"] = fails_first_batch_once
    arn, first = harness.run(batches_of_four(max_concurrency=1), {"key": "rows.csv"})
    assert first["error"] == "States.ExceedToleratedFailureThreshold", first
    return arn, broken


def test_redrive_after_a_mid_read_failure_runs_every_item_once(harness: Harness) -> None:
    arn, broken = failed_on_the_first_batch(harness)
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    assert processed_once(harness, arn) == list(range(50))


@pytest.mark.parametrize("in_process", [True, False], ids=["moto-in-process", "get-object"])
def test_a_redrive_refuses_to_go_on_over_a_source_that_changed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    if not in_process:
        monkeypatch.setattr(readers_module, "_open_in_process", lambda bucket, key: None)
    arn, broken = failed_on_the_first_batch(harness)
    harness.put("rows.csv", "n\n" + "".join(f"{i}\n" for i in range(100, 170)))  # replaced meanwhile
    broken["on"] = False
    harness.call("RedriveExecution", executionArn=arn)
    done = harness.wait(arn)

    # Never a mix of both files:
    assert (done["status"], done["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert "rows.csv changed since this Map Run began reading it" in done["cause"]
    harness.call("RedriveExecution", executionArn=arn)  # again, nothing restored: still refused
    assert harness.wait(arn)["cause"] == done["cause"]

    harness.put("rows.csv", "n\n" + "".join(f"{i}\n" for i in range(50)))  # the same bytes, the same ETag
    harness.call("RedriveExecution", executionArn=arn)
    assert processed_once(harness, arn) == list(range(50))


def test_redrive_after_a_stop_runs_every_item_once(harness: Harness) -> None:
    harness.put("rows.csv", "n\n" + "".join(f"{i}\n" for i in range(30)))
    stopping = {"on": True}
    seen: list[int] = []

    async def slow_until_stopped(event: Any) -> Any:
        numbers = [int(item["n"]) for item in event["Items"]]
        seen.extend(numbers)
        while stopping["on"]:
            await asyncio.sleep(0.01)
        return numbers

    harness.lambdas.handlers["work"] = slow_until_stopped
    arn = harness.start(harness.create(batches_of_four(max_concurrency=2)), {"key": "rows.csv"})
    deadline = time.monotonic() + 10
    while len(seen) < 8:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    harness.call("StopExecution", executionArn=arn)
    assert harness.wait(arn)["status"] == "ABORTED"
    # Accepted while the Map Run is still stopping: "the redrive doesn't happen immediately" (AWS).
    harness.call("RedriveExecution", executionArn=arn)
    assert harness.call("DescribeExecution", executionArn=arn)["status"] == "RUNNING"
    stopping["on"] = False
    assert processed_once(harness, arn) == list(range(30))


def test_iso_ms_leaves_out_a_zero_fraction_like_java_instant() -> None:
    # Result files and $$.Execution.StartTime: "...06Z" for a whole second, else three digits ("...06.250Z").
    iso_ms = map_run_module.iso_ms
    assert iso_ms(1738555506.25) == "2025-02-03T04:05:06.250Z"
    assert iso_ms(1738555506.0) == "2025-02-03T04:05:06Z"  # same second, new millisecond: not the cached text
    assert iso_ms(1738555506.0) == "2025-02-03T04:05:06Z"
    assert iso_ms(1738555507.5) == "2025-02-03T04:05:07.500Z"
    assert ISO_MS.match(iso_ms(1738555506.0))
    assert ISO_MS.match(iso_ms(1738555506.25))
