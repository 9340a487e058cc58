from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from moto import mock_aws

from airflow_distmap.exceptions import (
    BadHeaderError,
    FunctionNotFoundError,
    InvalidTaskArgumentsError,
    MissingColumnError,
    OutputLocationError,
    ResultsLocationError,
    ResultsPrefixInUseError,
    RowThresholdExceededError,
    RowTooLargeError,
)
from airflow_distmap.local.asl import validate_definition
from airflow_distmap.operators.csv_row_processing import (
    CRASH_RETRY,
    CSV_BATCH_INPUT_BYTES,
    CsvRowProcessingOperator,
)

ROLE = "arn:aws:iam::123456789012:role/sfn"
BUCKET = "csv-bucket"


def context(run_id: str = "manual__2025-01-01", try_number: int = 1) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number = "etl", "rows", run_id, -1, try_number
    return {"ti": ti}


def operator(**kwargs: Any) -> CsvRowProcessingOperator:
    params: dict[str, Any] = {
        "task_id": "rows",
        "input_uri": f"s3://{BUCKET}/in/data.csv",
        "function_name": "post_processing",
        "columns": ["text"],
        "output_uri": f"s3://{BUCKET}/out/data.csv",
        "output_column": "processed",
        "role_arn": ROLE,
        "aws_conn_id": None,
        "region_name": "us-east-1",
        "deferrable": False,
        "waiter_delay": 1,
        "batch_size": 2,
    }
    params.update(kwargs)
    return CsvRowProcessingOperator(**params)


def local_operator(name: str, **kwargs: Any) -> CsvRowProcessingOperator:
    """:func:`operator` on the local endpoint's connection, over ``in/<name>.csv`` into ``out/<name>.csv``."""
    params: dict[str, Any] = {
        "input_uri": f"s3://{BUCKET}/in/{name}.csv",
        "output_uri": f"s3://{BUCKET}/out/{name}.csv",
        "aws_conn_id": "aws_local",
        "region_name": None,
    }
    params.update(kwargs)
    return operator(**params)


# -- unit: definition and pre-flight (moto S3) ------------------------------------------------------------


def test_waits_on_the_triggerer_unless_told_otherwise(s3: Any) -> None:
    assert CsvRowProcessingOperator(
        task_id="rows", input_uri=f"s3://{BUCKET}/in/data.csv", function_name="post_processing"
    ).deferrable
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,hello\n")
    with pytest.raises(TaskDeferred):
        operator(deferrable=True).execute(context())


@pytest.fixture
def s3(deploy_function: Callable[..., str]) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        deploy_function("post_processing")
        yield client


def test_the_definition_draws_no_diagnostic_not_even_a_warning(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,a\n")
    op = operator(function_config={"k": "$.not-a-path-here"})
    ctx = context()
    op.preflight(ctx)
    assert validate_definition(json.dumps(op.build_definition(ctx))) == []


def test_definition_reads_given_headers_and_sends_index_and_requested_columns(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body="\ufeffid;the 'text'.x;n\n1;a;b\n".encode())
    op = operator(
        columns=["the 'text'.x"], delimiter="SEMICOLON", max_concurrency=50, function_config={"k": 1}
    )
    ctx = context()
    op.preflight(ctx)
    definition = op.build_definition(ctx)
    state = definition["States"]["ProcessRows"]
    assert state["ItemReader"]["ReaderConfig"] == {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["c0", "c1", "c2"],
        "CSVDelimiter": "SEMICOLON",
    }
    assert state["ItemReader"]["Parameters"] == {"Bucket.$": "$.input.bucket", "Key.$": "$.input.key"}
    assert state["ItemSelector"] == {
        "index.$": "$$.Map.Item.Index",
        "row": {"the 'text'.x.$": "$$.Map.Item.Value.c1"},
    }
    assert state["ItemBatcher"] == {
        "MaxItemsPerBatch": 2,
        "MaxInputBytesPerBatch": CSV_BATCH_INPUT_BYTES,
        "BatchInput": {"config.$": "$.function_config", "skip": [0]},
    }
    assert CSV_BATCH_INPUT_BYTES < 256 * 1024
    assert state["ToleratedFailurePercentage"] == 100
    assert state["MaxConcurrency"] == 50
    task = state["ItemProcessor"]["States"]["ProcessBatch"]
    assert CRASH_RETRY in task["Retry"]
    assert any("Lambda.ServiceException" in r["ErrorEquals"] for r in task["Retry"])
    assert state["ResultWriter"]["Parameters"] == {
        "Bucket.$": "$.results.bucket",
        "Prefix.$": "$.results.prefix",
    }
    execution_input = op.build_execution_input(ctx)
    assert execution_input["input"]["key"] == "in/data.csv"
    assert execution_input["results"] == {
        "bucket": BUCKET,
        "prefix": "distmap-results/etl/rows/manual__2025-01-01",
    }
    assert execution_input["function_config"] == {"k": 1}


@pytest.mark.parametrize(
    ("rendered", "config"),
    [('{"column": "text"}', {"column": "text"}), ("{'column': 'text'}", {"column": "text"}), ("null", {})],
)
def test_a_templated_function_config_reaches_the_function_as_a_dict(
    s3: Any, rendered: str, config: dict[str, Any]
) -> None:
    # "{{ params.cfg }}" renders as text: JSON with "| tojson" (None: "null"), else a Python dict's repr.
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,a\n")
    op = operator(function_config=rendered)
    ctx = context()
    op.preflight(ctx)
    assert op.build_execution_input(ctx)["function_config"] == config


def test_plain_header_uses_first_row(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,a\n")
    op = operator()
    op.preflight(context())
    state = op.build_definition(context())["States"]["ProcessRows"]
    assert state["ItemReader"]["ReaderConfig"] == {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
    assert state["ItemSelector"] == {
        "index.$": "$$.Map.Item.Index",
        "row": {"text.$": "$$.Map.Item.Value.text"},
    }
    assert state["ItemBatcher"]["BatchInput"]["skip"] == []


def test_same_layout_shares_a_state_machine_and_other_layouts_do_not(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=b"id,text\n1,a\n")
    s3.put_object(Bucket=BUCKET, Key="in/b.csv", Body=b"id,text\n2,b\n")
    s3.put_object(Bucket=BUCKET, Key="in/c.csv", Body="\ufeffid,x,text\n2,b,c\n".encode())  # GIVEN
    names = []
    for key, run in (("a", "r1"), ("b", "r2"), ("c", "r3")):
        op = operator(input_uri=f"s3://{BUCKET}/in/{key}.csv", output_uri=f"s3://{BUCKET}/out/{key}.csv")
        op.preflight(context(run))
        names.append(op.state_machine_name)
    assert names[0] == names[1] != names[2]


def test_default_results_prefix_is_per_task_run(s3: Any) -> None:
    op = operator()
    assert op.default_results_uri(context("scheduled__2025-01-01T00:00:00+00:00")) == (
        f"s3://{BUCKET}/distmap-results/etl/rows/scheduled__2025-01-01T00_00_00_00_00/"
    )


@pytest.mark.parametrize(
    ("body", "kwargs", "error", "message"),
    [
        (b"id,text,id\n1,2,3\n", {}, BadHeaderError, "duplicate"),
        (b'id,"text\n1,a\n2,b\n', {}, BadHeaderError, "a quote in it is probably not closed"),
        (b"id,body\n1,2\n", {}, MissingColumnError, "'text'"),
        (
            b"id,text\n1,2\n",
            {"output_uri": f"s3://{BUCKET}/taken.csv"},
            OutputLocationError,
            "already exists",
        ),
        (b"id,text\n1,2\n", {"results_uri": f"s3://{BUCKET}/used"}, ResultsPrefixInUseError, "another run"),
        (b"id,text\n1,2\n", {"results_uri": "s3://no-such-bucket/r"}, ResultsLocationError, "does not exist"),
        # output_uri then defaults to a place under results_uri: the error names results_uri.
        (
            b"id,text\n1,2\n",
            {"results_uri": "s3://no-such-bucket/r", "output_uri": None},
            ResultsLocationError,
            "results_uri .*does not exist",
        ),
        (b"id,text\n1,a\n2," + b"x" * 300_000 + b"\n", {}, RowTooLargeError, "Row 1 "),
        # Under the limit as bytes, over it as JSON: each quote and control character is escaped.
        (b'id,text\n1,a\n2,"' + b'""' * 140_000 + b'"\n', {}, RowTooLargeError, "Row 1 "),
        (b"id,text\n1,a\n2," + b"\x01" * 60_000 + b"\n", {}, RowTooLargeError, "Row 1 "),
        (b"id,text\n1,2\n", {"function_config": {"table": "x" * 20_000}}, InvalidTaskArgumentsError, "in S3"),
        (b"id,text\n1,2\n", {"function_config": "column=text"}, InvalidTaskArgumentsError, "not str 'column"),
        (b"id,text\n1,2\n", {"function_config": "[1, 2]"}, InvalidTaskArgumentsError, "a JSON object"),
        (b"id,text\n1,2\n", {"function_name": "post_procesing"}, FunctionNotFoundError, "'post_procesing'"),
    ],
)
def test_bad_input_fails_before_anything_is_created(
    s3: Any, body: bytes, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=body)
    s3.put_object(Bucket=BUCKET, Key="taken.csv", Body=b"someone else's")
    s3.put_object(Bucket=BUCKET, Key="used/abc/manifest.json", Body=b"{}")
    op = operator(**kwargs)
    hook = mock.MagicMock(conn_partition="aws", conn_region_name="us-east-1")
    with mock.patch.object(CsvRowProcessingOperator, "hook", hook), pytest.raises(error, match=message):
        op.execute(context())
    hook.create_or_update_state_machine.assert_not_called()
    hook.start_execution.assert_not_called()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_uri": "my-bucket/data.csv"}, "Invalid input_uri"),
        ({"input_uri": f"s3://{BUCKET}/in/"}, "names no object"),
        ({"input_uri": f"s3://{BUCKET}/in/data.csv.gz"}, "is compressed"),
        ({"output_uri": f"s3://{BUCKET}/out/data.json"}, "must end in .csv or .parquet"),
        ({"output_uri": " "}, "Invalid output_uri"),
    ],
)
def test_literal_bad_uris_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        operator(**kwargs)
    operator(**dict.fromkeys(kwargs, "{{ params.uri }}"))  # checked once rendered


@pytest.mark.parametrize(
    ("output_uri", "message"),
    [(f"s3://{BUCKET}/out/data.json", "must end in .csv or .parquet"), (" ", "rendered to an empty string")],
)
def test_a_bad_rendered_output_uri_fails_before_anything_is_created(
    s3: Any, output_uri: str, message: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,2\n")
    op = operator()
    op.output_uri = output_uri  # as rendering sets it
    hook = mock.MagicMock(conn_partition="aws", conn_region_name="us-east-1")
    with (
        mock.patch.object(CsvRowProcessingOperator, "hook", hook),
        pytest.raises(OutputLocationError, match=message),
    ):
        op.execute(context())
    hook.create_or_update_state_machine.assert_not_called()


@pytest.mark.parametrize(
    ("count", "percentage", "named"),
    [
        (4, 10, "more than tolerated_failure_percentage=10 allows"),
        (3, 50, "more than tolerated_failure_count=3 allows"),
        (3, 10, "more than tolerated_failure_count=3 and tolerated_failure_percentage=10 allow"),
    ],
)
def test_the_row_threshold_error_names_only_the_limits_exceeded(
    count: int, percentage: int, named: str
) -> None:
    op = operator(tolerated_failure_count=count, tolerated_failure_percentage=percentage)
    collected = mock.MagicMock(rows_failed=4, rows_total=20, errors_by_type={"ValueError": 4})
    with pytest.raises(
        RowThresholdExceededError, match=f"4 of 20 rows failed \\(ValueError: 4\\), {named}\\."
    ):
        op._enforce_threshold(context(), {}, collected)


def test_a_batch_size_template_rendering_to_nothing_takes_the_default() -> None:
    op = operator(batch_size="{{ params.batch_size }}")
    op.batch_size = ""  # as rendering an unset param sets it
    assert op._batch_size() == 100


def test_the_distributed_map_operators_size_switch_is_refused_with_the_right_name() -> None:
    with pytest.raises(TypeError, match="takes check_row_sizes, not check_item_sizes"):
        operator(check_item_sizes=False)


@pytest.mark.parametrize("argument", ["item_batcher", "execution_input", "definition", "item_selector"])
def test_the_distributed_map_operators_building_blocks_are_refused_not_ignored(argument: str) -> None:
    with pytest.raises(TypeError, match=f"does not take {argument}. To fix this, use batch_size"):
        operator(**{argument: {"MaxItemsPerBatch": 1}})


def test_a_missing_role_fails_before_anything_is_written(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,hello\n")
    op = operator(role_arn=None)
    with pytest.raises(InvalidTaskArgumentsError, match="role_arn"):
        op.execute(context())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["in/data.csv"]  # no ownership mark, nothing else


@pytest.mark.parametrize("use", ["input", "results"])
def test_a_bucket_step_functions_cannot_reach_from_its_region_is_refused_before_anything_is_written(
    s3: Any, use: str
) -> None:
    west = boto3.client("s3", region_name="us-west-2")
    west.create_bucket(Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for client, bucket in ((s3, BUCKET), (west, "west-bucket")):
        client.put_object(Bucket=bucket, Key="in/data.csv", Body=b"id,text\n1,hello\n")
    where = "input_uri" if use == "input" else "results_uri"
    op = operator(**{where: "s3://west-bucket/in/data.csv" if use == "input" else "s3://west-bucket/results"})
    with pytest.raises(
        InvalidTaskArgumentsError, match="is in us-west-2, but the state machine runs in us-east-1"
    ):
        op.execute(context())
    for client, bucket in ((s3, BUCKET), (west, "west-bucket")):
        assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["in/data.csv"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_concurrency": 10_001}, "max_concurrency"),
        ({"tolerated_failure_percentage": 101}, "tolerated_failure_percentage"),
        ({"output_column": ""}, "output_column"),
        ({"map_label": "bad label"}, "label"),
        ({"function_config": {"tags": {"a", "b"}}}, "function_config is not JSON: Object of type set"),
        ({"function_config": {"limit": float("nan")}}, "function_config is not JSON: Out of range float"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    # Not retried by Airflow: a mapped task's arguments are checked only when it runs.
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        operator(**kwargs)


# -- local endpoint: real runs -------------------------------------------------------------------------

FUNCTIONS = {
    "shout": """
from airflow_distmap.lambda_runtime import row_handler


@row_handler
def handler(row):
    if row["text"] == "boom":
        raise ValueError("boom is not allowed")
    return row["text"].upper()
""",
    # Crashes the worker the first time it sees a batch holding "crash-once" (a marker file remembers),
    # so only a retried invocation can succeed.
    "crashy": """
import os

from airflow_distmap.lambda_runtime import row_handler

MARKER = os.environ["CRASHY_MARKER"]


@row_handler
def process(row):
    return row["text"][::-1]


def handler(event, context):
    texts = [item["row"]["text"] for item in event["Items"]]
    if "crash-always" in texts:
        os._exit(3)
    if "crash-once" in texts and not os.path.exists(MARKER):
        open(MARKER, "w").close()
        os._exit(3)
    return process(event, context)
""",
    # Fails the row "boom" until the file named by its config's "fixed" exists: a fix of the function's code
    # that changes neither its name nor its settings.
    "fixable": """
import os

from airflow_distmap.lambda_runtime import row_handler


@row_handler
def handler(row, config):
    if row["text"] == "boom" and not os.path.exists(config["fixed"]):
        raise ValueError("not fixed yet")
    return row["text"].upper()
""",
    # Fails rows holding "bad" until the FLAKY_ROWS_FIXED marker exists; logs every row it processes.
    "flaky_rows": """
import os

from airflow_distmap.lambda_runtime import row_handler


@row_handler
def handler(row):
    with open(os.environ["FLAKY_ROWS_LOG"], "a") as log:
        log.write(row["text"] + "\\n")
    if "bad" in row["text"] and not os.path.exists(os.environ["FLAKY_ROWS_FIXED"]):
        raise ValueError("not yet")
    return row["text"].upper()
""",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from airflow_distmap.local import LocalEndpoint

    root = tmp_path_factory.mktemp("functions")
    for name, source in FUNCTIONS.items():
        (root / name).mkdir()
        (root / name / "handler.py").write_text(source)
    post_processing = Path(__file__).resolve().parents[2] / "lambda_functions" / "post_processing"
    (root / "post_processing").symlink_to(post_processing)
    os.environ["CRASHY_MARKER"] = str(root / "crashed-once")
    os.environ["FLAKY_ROWS_LOG"] = str(root / "flaky-rows.log")
    os.environ["FLAKY_ROWS_FIXED"] = str(root / "flaky-rows-fixed")
    with LocalEndpoint(functions_dir=root, processes=2) as running:
        yield running


@pytest.fixture
def local(endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LOCAL", endpoint.airflow_connection_uri())
    s3 = endpoint.client("s3")
    # The endpoint serves moto in this process, and leaving a mock_aws() block (the unit tests above)
    # resets moto's stores: make sure the bucket exists for every test.
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return s3


def read_csv(s3: Any, uri: str, delimiter: str = ",") -> list[dict[str, str]]:
    key = uri.split("/", 3)[3]
    text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


MESSY = (
    "\ufeffid;text;note\n"
    '1;"Hello; World 1!";x\n'
    '2;"say ""hi""\nand bye";y\n'
    "3;Crème brûlée 日本語 🚚 42\n"
    "4;long;a;b;c\n"
    "5;  lots   of    space  ;z\n"
)


def test_a_function_the_endpoint_does_not_serve_fails_before_anything_is_created(
    local: Any, endpoint: Any
) -> None:
    sfn = endpoint.client("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    local.put_object(Bucket=BUCKET, Key="in/typo.csv", Body=b"id,text\n1,a\n")
    op = local_operator(
        "typo",
        function_name="shuot",
    )
    with pytest.raises(FunctionNotFoundError, match="Lambda function 'shuot', invoked by state"):
        op.execute(context("typo"))
    assert sfn.list_state_machines()["stateMachines"] == machines
    assert "Contents" not in local.list_objects_v2(Bucket=BUCKET, Prefix="out/typo")


def test_messy_semicolon_csv_end_to_end(local: Any) -> None:
    local.put_object(Bucket=BUCKET, Key="in/messy.csv", Body=MESSY.encode())
    op = local_operator(
        "messy",
        delimiter="SEMICOLON",
        function_config={"column": "text"},
        columns=None,
    )
    summary = op.execute(context("messy"))
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"] == {"total": 5, "succeeded": 5, "failed": 0}
    assert summary["manifest_uri"].endswith("/manifest.json")
    output = read_csv(local, summary["output_uri"], delimiter=";")
    assert [r["id"] for r in output] == ["1", "2", "3", "4", "5"]
    assert [r["processed"] for r in output] == [
        "Processed data: Hello World",
        "Processed data: say hi and bye",
        "Processed data: Crème brûlée 日本語",
        "Processed data: long",
        "Processed data: lots of space",
    ]
    assert output[2]["note"] == ""  # short row padded
    assert output[3]["note"] == "a"  # long row cut
    assert read_csv(local, summary["failed_rows_uri"], delimiter=";") == []
    json.dumps(summary)  # what goes to XCom is JSON


def test_row_errors_go_to_the_ledger_and_the_threshold_fails_the_task(local: Any) -> None:
    rows = ["a", "boom", "c", "boom", "e"]
    local.put_object(Bucket=BUCKET, Key="in/rows.csv", Body=("text\n" + "\n".join(rows) + "\n").encode())
    common = {
        "input_uri": f"s3://{BUCKET}/in/rows.csv",
        "function_name": "shout",
        "aws_conn_id": "aws_local",
        "region_name": None,
    }
    tolerant = operator(output_uri=f"s3://{BUCKET}/out/tolerant.parquet", tolerated_failure_count=2, **common)
    summary = tolerant.execute(context("tolerant"))
    assert (summary["rows_succeeded"], summary["rows_failed"]) == (3, 2)
    assert summary["errors_by_type"] == {"ValueError": 2}
    assert summary["failed_rows_uri"] == f"s3://{BUCKET}/out/tolerant.failed.parquet"
    # `airflow-distmap results` reads the same run from its manifest
    from airflow_distmap.cli.results import summarise

    report = summarise(local, summary["manifest_uri"])
    assert report["counts"] == {"total": 5, "succeeded": 3, "failed": 2}
    assert report["failures_by_error"] == {"ValueError": 2}

    strict = operator(output_uri=f"s3://{BUCKET}/out/strict.csv", tolerated_failure_percentage=20, **common)
    ctx = context("strict")
    with pytest.raises(RowThresholdExceededError, match=r"2 of 5 rows failed \(ValueError: 2\)"):
        strict.execute(ctx)
    ledger = read_csv(local, f"s3://{BUCKET}/out/strict.failed.csv")
    assert [(r["row_index"], r["text"], r["error_message"]) for r in ledger] == [
        ("1", "boom", "boom is not allowed"),
        ("3", "boom", "boom is not allowed"),
    ]
    assert [r["processed"] for r in read_csv(local, f"s3://{BUCKET}/out/strict.csv")] == [
        "A",
        "",
        "C",
        "",
        "E",
    ]
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
    assert pushed["summary"]["rows_failed"] == 2


def test_crashed_invocation_is_retried_and_a_batch_that_keeps_crashing_fails_only_its_rows(
    local: Any,
) -> None:
    rows = ["ab", "crash-once", "cd", "ef", "crash-always", "gh", "ij"]
    local.put_object(Bucket=BUCKET, Key="in/crash.csv", Body=("text\n" + "\n".join(rows) + "\n").encode())
    op = local_operator(
        "crash",
        function_name="crashy",
        tolerated_failure_count=2,
    )
    summary = op.execute(context("crash"))
    output = read_csv(local, summary["output_uri"])
    # batches of 2 rows: [ab, crash-once] (crashes once, retried) [cd, ef] [crash-always, gh] (fails) [ij]
    assert [r["processed"] for r in output] == ["ba", "ecno-hsarc", "dc", "fe", "", "", "ji"]
    ledger = read_csv(local, summary["failed_rows_uri"])
    assert [r["row_index"] for r in ledger] == ["4", "5"]
    assert len({r["error_type"] for r in ledger}) == 1
    assert summary["rows_failed"] == 2


def test_retry_after_the_row_threshold_reruns_only_the_failed_rows(local: Any) -> None:
    rows = [f"row{i}" if i % 4 else f"bad{i}" for i in range(10)]
    local.put_object(Bucket=BUCKET, Key="in/flaky.csv", Body=("text\n" + "\n".join(rows) + "\n").encode())
    log_file = Path(os.environ["FLAKY_ROWS_LOG"])

    def attempt(try_number: int) -> dict[str, Any]:
        op = local_operator(
            "flaky",
            function_name="flaky_rows",
            batch_size=3,
        )
        return op.execute(context("flaky", try_number=try_number))

    with pytest.raises(RowThresholdExceededError, match="3 of 10 rows failed"):
        attempt(1)
    assert [r["row_index"] for r in read_csv(local, f"s3://{BUCKET}/out/flaky.failed.csv")] == ["0", "4", "8"]
    first_try = log_file.read_text().split()
    assert sorted(first_try) == sorted(rows)

    Path(os.environ["FLAKY_ROWS_FIXED"]).touch()  # the "fix"
    summary = attempt(2)
    assert summary["rerun"] == 1
    assert summary["rows_rerun"] == 3
    assert summary["counts"] == {"total": 10, "succeeded": 10, "failed": 0}
    second_try = log_file.read_text().split()[len(first_try) :]
    assert sorted(second_try) == ["bad0", "bad4", "bad8"]  # rows that succeeded never ran twice
    output = read_csv(local, summary["output_uri"])
    assert [r["text"] for r in output] == rows  # complete and in input order
    assert [r["processed"] for r in output] == [t.upper() for t in rows]
    assert read_csv(local, summary["failed_rows_uri"]) == []

    again = attempt(3)  # clearing the task again reuses everything: nothing runs
    assert again["counts"] == summary["counts"]
    # ...and describes the same Map Run as the try that completed the rows: the re-run's, not the first one's
    # (whose results still hold the rows' first errors).
    assert (again["rerun"], again["manifest_uri"]) == (1, summary["manifest_uri"])
    assert log_file.read_text().split()[len(first_try) + len(second_try) :] == []


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ('["a", "b"]', ["a", "b"]),
        ("['a', 'b']", ["a", "b"]),
        ("a, b", ["a", "b"]),
        ("a", ["a"]),
        (None, None),
    ],
)
def test_templated_columns_render_to_a_list(rendered: str | None, expected: list[str] | None) -> None:
    op = operator(columns=rendered)
    assert op._columns() == expected


def test_row_size_scan_counts_only_the_selected_columns(s3: Any) -> None:
    body = b"id,text,blob\n1,a," + b"x" * 300_000 + b"\n"
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=body)
    operator(columns=["text"]).preflight(context("small"))  # the 300 KB column is not sent
    with pytest.raises(RowTooLargeError, match="send fewer columns"):
        operator(columns=None, output_uri=f"s3://{BUCKET}/out/all.csv").preflight(context("all"))
    operator(columns=None, output_uri=f"s3://{BUCKET}/out/skip.csv", check_row_sizes=False).preflight(
        context("skip")
    )


def test_headerless_tab_file_with_given_headers(local: Any) -> None:
    local.put_object(Bucket=BUCKET, Key="in/noheader.tsv", Body=b"1\talpha\n2\tbeta gamma\n3\tboom\n")
    op = local_operator(
        "noheader",
        input_uri=f"s3://{BUCKET}/in/noheader.tsv",
        function_name="shout",
        csv_headers=["id", "text"],
        delimiter="\t",
        tolerated_failure_count=1,
    )
    summary = op.execute(context("noheader"))
    output = read_csv(local, summary["output_uri"], delimiter="\t")
    assert [(r["id"], r["processed"]) for r in output] == [("1", "ALPHA"), ("2", "BETA GAMMA"), ("3", "")]
    assert [r["row_index"] for r in read_csv(local, summary["failed_rows_uri"], delimiter="\t")] == ["2"]


def run_try(name: str, function_name: str, try_number: int) -> dict[str, Any]:
    """One try of task run ``name`` over ``in/<name>.csv`` on the local endpoint."""
    return local_operator(name, function_name=function_name).execute(context(name, try_number=try_number))


def test_a_rerun_reads_a_ledger_whose_header_name_holds_a_newline(local: Any) -> None:
    local.put_object(Bucket=BUCKET, Key="in/newline.csv", Body=b'id,"new\nline",text\n1,a,ok\n2,b,boom\n')
    with pytest.raises(RowThresholdExceededError, match="1 of 2 rows failed"):
        run_try("newline", "shout", 1)
    # The retry re-runs the ledger's row (it fails again: the function still refuses it).
    with pytest.raises(RowThresholdExceededError, match="1 of 2 rows failed"):
        run_try("newline", "shout", 2)
    ledger = read_csv(local, f"s3://{BUCKET}/out/newline.failed.csv")
    assert [(r["row_index"], r["new\nline"], r["error_type"]) for r in ledger] == [("1", "b", "ValueError")]


def test_clearing_the_task_after_the_input_was_replaced_processes_the_new_input(local: Any) -> None:
    def run(try_number: int) -> dict[str, Any]:
        return run_try("replaced", "post_processing", try_number)

    local.put_object(Bucket=BUCKET, Key="in/replaced.csv", Body=b"text\nold one\nold two\n")
    first = run(1)
    local.put_object(Bucket=BUCKET, Key="in/replaced.csv", Body=b"text\nnew 1\nnew 2\nnew 3\n")
    second = run(2)
    assert second["execution_arn"] != first["execution_arn"]
    assert second["counts"] == {"total": 3, "succeeded": 3, "failed": 0}
    output = read_csv(local, second["output_uri"])
    assert [r["processed"] for r in output] == [
        "Processed data: new",
        "Processed data: new",
        "Processed data: new",
    ]
    assert run(3)["execution_arn"] == second["execution_arn"]  # and clearing again reuses that run


def test_fixing_the_input_after_a_row_threshold_failure_processes_the_whole_new_input(local: Any) -> None:
    def run(try_number: int) -> dict[str, Any]:
        return run_try("fixed", "shout", try_number)

    local.put_object(Bucket=BUCKET, Key="in/fixed.csv", Body=b"text\na\nboom\nc\n")
    with pytest.raises(RowThresholdExceededError):
        run(1)
    local.put_object(Bucket=BUCKET, Key="in/fixed.csv", Body=b"text\nx\nb\ny\nz\n")  # the bad row fixed
    summary = run(2)
    assert "rerun" not in summary  # not a re-run of the old failed row: the new file from the start
    assert summary["counts"] == {"total": 4, "succeeded": 4, "failed": 0}
    assert [r["processed"] for r in read_csv(local, summary["output_uri"])] == ["X", "B", "Y", "Z"]
    assert read_csv(local, summary["failed_rows_uri"]) == []


def test_a_new_whole_file_run_after_a_rerun_keeps_its_own_results(local: Any, tmp_path: Path) -> None:
    local.put_object(Bucket=BUCKET, Key="in/changed.csv", Body=b"text\nab\nboom\ncd\n")
    config = {"fixed": str(tmp_path / "fixed")}

    def run(function_name: str, try_number: int) -> dict[str, Any]:
        op = local_operator("changed", function_name=function_name, function_config=config)
        return op.execute(context("changed", try_number=try_number))

    with pytest.raises(RowThresholdExceededError):
        run("fixable", 1)
    (tmp_path / "fixed").touch()  # the function's code is fixed; its name and settings stay
    repaired = run("fixable", 2)  # re-runs only the failed row
    assert repaired["rerun"] == 1
    assert [r["processed"] for r in read_csv(local, repaired["output_uri"])] == ["AB", "BOOM", "CD"]

    # The function changes and the task is cleared: a new state machine runs the whole file, and every row's
    # output is the new function's, none left over from the re-run.
    summary = run("crashy", 3)
    assert "rerun" not in summary
    assert summary["execution_arn"] != repaired["execution_arn"]
    assert [r["processed"] for r in read_csv(local, summary["output_uri"])] == ["ba", "moob", "dc"]


def test_a_failed_rows_file_deleted_between_tries_is_written_again_then_its_rows_rerun(
    local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local.put_object(Bucket=BUCKET, Key="in/lost-ledger.csv", Body=b"text\nab\nboom\ncd\n")

    def run(try_number: int) -> dict[str, Any]:
        op = local_operator(
            "lost-ledger", function_name="fixable", function_config={"fixed": str(tmp_path / "fixed")}
        )
        return op.execute(context("lost-ledger", try_number=try_number))

    with pytest.raises(RowThresholdExceededError):
        run(1)
    local.delete_object(Bucket=BUCKET, Key="out/lost-ledger.failed.csv")
    (tmp_path / "fixed").touch()
    with pytest.raises(RowThresholdExceededError, match="1 of 3 rows failed"):
        run(2)  # collects the recorded results again: the ledger is back
    gone = "The failed-rows file s3://csv-bucket/out/lost-ledger.failed.csv of an earlier try is gone"
    assert gone in capsys.readouterr().out
    assert [r["text"] for r in read_csv(local, f"s3://{BUCKET}/out/lost-ledger.failed.csv")] == ["boom"]
    summary = run(3)
    assert summary["rerun"] == 1
    assert [r["processed"] for r in read_csv(local, summary["output_uri"])] == ["AB", "BOOM", "CD"]


def test_a_retry_with_fewer_rows_at_once_still_reruns_only_the_failed_rows(
    local: Any, tmp_path: Path
) -> None:
    local.put_object(Bucket=BUCKET, Key="in/gentler.csv", Body=b"text\nab\nboom\ncd\n")

    def run(try_number: int, **settings: Any) -> dict[str, Any]:
        op = local_operator(
            "gentler", function_name="fixable", function_config={"fixed": str(tmp_path / "fixed")}, **settings
        )
        return op.execute(context("gentler", try_number=try_number))

    with pytest.raises(RowThresholdExceededError):
        run(1)
    (tmp_path / "fixed").touch()
    # How rows are run (batch size, concurrency, timeout) decides no row's result: only the failed row runs.
    summary = run(2, batch_size=1, max_concurrency=1, lambda_timeout_seconds=120)
    assert (summary["rerun"], summary["rows_rerun"]) == (1, 1)
    assert [r["processed"] for r in read_csv(local, summary["output_uri"])] == ["AB", "BOOM", "CD"]


def test_a_function_config_holding_an_upstream_tasks_output_is_checked_when_the_task_runs() -> None:
    from airflow.sdk import DAG, task

    with DAG("late_config", schedule=None):

        @task
        def threshold() -> int:
            return 3

        op = operator(function_config={"threshold": threshold(), "tags": ["a"]})  # parses
    assert not isinstance(op.function_config, str)
    op.function_config = {"threshold": {3}}  # what a bad upstream value would render to
    with pytest.raises(InvalidTaskArgumentsError, match="function_config is not JSON"):
        op.execute(context())


def test_a_retry_under_another_function_runs_the_whole_file_not_only_the_failed_rows(local: Any) -> None:
    local.put_object(Bucket=BUCKET, Key="in/settled.csv", Body=b"text\nab\nboom\ncd\n")
    with pytest.raises(RowThresholdExceededError):
        run_try("settled", "shout", 1)
    # The DAG changed: another function. Re-running only the failed row would mix two functions' results.
    changed = run_try("settled", "post_processing", 2)
    assert "rerun" not in changed
    assert changed["counts"] == {"total": 3, "succeeded": 3, "failed": 0}
    assert [r["processed"] for r in read_csv(local, changed["output_uri"])] == [
        "Processed data: ab",
        "Processed data: boom",
        "Processed data: cd",
    ]
    # Cleared again with the DAG as in try 2: nothing runs again.
    assert run_try("settled", "post_processing", 3)["execution_arn"] == changed["execution_arn"]


@pytest.mark.parametrize("state_machine_name", [None, "users-csv"])
def test_clearing_after_the_function_config_changed_runs_the_whole_file_again(
    local: Any, state_machine_name: str | None
) -> None:
    """function_config travels in the execution input, not the definition; a name of yours hides the change
    of definition: either way the cleared try computes every row with the new settings."""
    name = f"reconfigured-{state_machine_name}"
    local.put_object(Bucket=BUCKET, Key=f"in/{name}.csv", Body=b"text,other\nab,cd\n")

    def run(config: dict[str, str], try_number: int) -> dict[str, Any]:
        op = local_operator(name, columns=None, function_config=config, state_machine_name=state_machine_name)
        return op.execute(context(name, try_number=try_number))

    first = run({"column": "text"}, 1)
    assert [r["processed"] for r in read_csv(local, first["output_uri"])] == ["Processed data: ab"]
    second = run({"column": "other"}, 2)
    assert second["execution_arn"] != first["execution_arn"]
    assert [r["processed"] for r in read_csv(local, second["output_uri"])] == ["Processed data: cd"]
    assert run({"column": "other"}, 3)["execution_arn"] == second["execution_arn"]  # and then it is reused


def test_a_rerun_reads_the_ledger_where_the_failed_try_wrote_it(local: Any, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    local.put_object(Bucket=BUCKET, Key="in/moved.csv", Body=b"text\nab\nboom\ncd\n")

    def attempt(output_uri: str, try_number: int) -> dict[str, Any]:
        op = local_operator(
            "moved",
            output_uri=output_uri,
            function_name="fixable",
            function_config={"fixed": str(tmp_path / "fixed")},
            execution_name="moved-run",
        )
        return op.execute(context("moved", try_number=try_number))

    with pytest.raises(RowThresholdExceededError):
        attempt(f"s3://{BUCKET}/out/moved.csv", 1)
    (tmp_path / "fixed").touch()
    # The retry writes elsewhere, as Parquet: it still re-runs only the row in the first try's ledger.
    summary = attempt(f"s3://{BUCKET}/out/moved.parquet", 2)
    assert summary["rerun"] == 1
    assert summary["rows_rerun"] == 1
    assert summary["execution_arn"].endswith(":moved-run-r1")  # the user's execution name, suffixed
    body = local.get_object(Bucket=BUCKET, Key="out/moved.parquet")["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.column("processed").to_pylist() == ["AB", "BOOM", "CD"]


@pytest.mark.parametrize("state_machine_name", [None, "shared-csv-machine"])
def test_layouts_that_differ_under_a_name_of_yours_each_run_their_own_definition(
    local: Any, state_machine_name: str | None
) -> None:
    """A header line, then the same file with a byte-order mark (the GIVEN layout): under a name of yours the
    machine is updated in turn and each start's definition is checked; under the default names each layout
    has a state machine of its own and nothing is checked."""
    from airflow_distmap.hooks.distributed_map import DistributedMapHook

    suffix = state_machine_name or "default"
    bodies = {f"plain-{suffix}": "id,text\n1,a b\n2,c\n", f"bom-{suffix}": "\ufeffid,text\n1,a b\n2,c\n"}
    check = DistributedMapHook.started_with_other_definition
    with mock.patch.object(
        DistributedMapHook, "started_with_other_definition", autospec=True, side_effect=check
    ) as checked:
        for name, body in bodies.items():
            local.put_object(Bucket=BUCKET, Key=f"in/{name}.csv", Body=body.encode())
            summary = local_operator(name, state_machine_name=state_machine_name).execute(context(name))
            assert summary["counts"] == {"total": 2, "succeeded": 2, "failed": 0}
            assert [r["processed"] for r in read_csv(local, summary["output_uri"])] == [
                "Processed data: a b",
                "Processed data: c",
            ]
    assert checked.call_count == (0 if state_machine_name is None else 2)


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("None", None),  # "{{ params.columns }}" with the param unset
        ("null", None),
        ("", None),
        ("2024", ["2024"]),  # JSON reads a number: still one column name, as written
        ("1.50", ["1.50"]),
        ('"text"', ["text"]),
        (2024, ["2024"]),  # a template rendered as a native object
        ("1.50,2", ["1.50", "2"]),  # numbers as written, in a list too
        ("[1.50, 2]", ["1.50", "2"]),
        ("['a', 'b']", ["a", "b"]),  # a Python list's repr
    ],
)
def test_columns_rendered_unset_mean_all_and_one_value_is_one_column(rendered: Any, expected: Any) -> None:
    assert operator(columns=rendered)._columns() == expected


@pytest.mark.parametrize(("param", "selected"), [("2024", ["2024"]), (None, ["id", "2024", "text"])])
def test_a_templated_column_can_be_a_numeric_header_or_unset(
    s3: Any, param: Any, selected: list[str]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,2024,text\n1,a,b\n")
    op = operator(columns="{{ params.column }}")
    op.render_template_fields({"params": {"column": param}})
    op.preflight(context())
    row = op.build_definition(context())["States"]["ProcessRows"]["ItemSelector"]["row"]
    assert list(row) == [f"{name}.$" for name in selected]


SETTING_TEMPLATES = {
    "max_concurrency": "{{ params.c }}",
    "tolerated_failure_count": "{{ params.n }}",
    "tolerated_failure_percentage": "{{ params.p }}",
    "output_column": "{{ params.out }}",
    "delimiter": "{{ params.d }}",
    "csv_headers": "{{ params.h }}",
    "lambda_timeout_seconds": "{{ params.t }}",
}
SETTING_PARAMS = {"c": 7, "n": 1, "p": 5, "out": "result", "d": "SEMICOLON", "h": None, "t": 60}


def test_settings_are_templated(s3: Any) -> None:
    assert set(SETTING_TEMPLATES) <= set(CsvRowProcessingOperator.template_fields)
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"1;hello\n2;world\n")
    op = operator(**SETTING_TEMPLATES)  # accepted when the DAG is parsed
    op.render_template_fields({"params": {**SETTING_PARAMS, "h": ["id", "text"]}})
    op.preflight(context())
    state = op.build_definition(context())["States"]["ProcessRows"]
    assert state["MaxConcurrency"] == 7
    assert state["ItemReader"]["ReaderConfig"]["CSVDelimiter"] == "SEMICOLON"
    assert state["ItemReader"]["ReaderConfig"]["CSVHeaderLocation"] == "GIVEN"
    assert state["ItemSelector"]["row"] == {"text.$": "$$.Map.Item.Value.c1"}
    assert state["ItemProcessor"]["States"]["ProcessBatch"]["TimeoutSeconds"] == 60
    assert (op.tolerated_failure_count, op.tolerated_failure_percentage, op.output_column) == (1, 5, "result")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"c": 20000}, "max_concurrency=20000 is invalid"),
        ({"n": "some"}, "tolerated_failure_count='some' is invalid"),
        ({"p": 150}, "tolerated_failure_percentage=150 is invalid"),
        ({"out": ""}, "output_column='' is not a column name"),
        ({"d": "xx"}, "Unsupported delimiter 'xx'"),
        ({"t": 0}, "lambda_timeout_seconds=0 is invalid"),
    ],
)
def test_a_setting_rendered_to_a_bad_value_fails_before_the_input_is_read(
    s3: Any, params: dict[str, Any], message: str
) -> None:
    op = operator(**SETTING_TEMPLATES)
    op.render_template_fields({"params": {**SETTING_PARAMS, **params}})
    with (
        mock.patch.object(CsvRowProcessingOperator, "_check_input") as read,
        pytest.raises(InvalidTaskArgumentsError, match=message),
    ):
        op.execute(context())
    read.assert_not_called()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delimiter": "xx"}, "Unsupported delimiter 'xx'"),
        ({"lambda_timeout_seconds": 0}, "lambda_timeout_seconds=0 is invalid"),
        ({"lambda_timeout_seconds": 600, "execution_type": "EXPRESS"}, "EXPRESS children stop at 300 s"),
        ({"batch_size": "0"}, "batch_size=0 is invalid"),
        ({"max_concurrency": "many"}, "max_concurrency='many' is invalid"),
        ({"function_name": "post processing"}, "function_name"),
        ({"columns": []}, "columns is empty"),
        ({"columns": ["text", "text"]}, "columns lists a column twice"),
        ({"csv_headers": ["id", "id"]}, "csv_headers has duplicate column names: 'id'"),
        ({"output_uri": f"s3://{BUCKET}/in/data.csv"}, "output_uri is the input"),
    ],
)
def test_literal_bad_settings_are_refused_when_the_dag_is_parsed(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        operator(**kwargs)


def test_a_missing_role_fails_before_the_input_is_read_whole(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/data.csv", Body=b"id,text\n1,hello\n")
    with (
        mock.patch("airflow_distmap.csv_processing.row_sizes.check_row_sizes") as scan,
        pytest.raises(InvalidTaskArgumentsError, match="no role_arn was given"),
    ):
        operator(role_arn=None).execute(context())
    scan.assert_not_called()


def test_the_summary_log_has_no_note_on_items_as_counts_are_rows(capsys: pytest.CaptureFixture[str]) -> None:
    operator().explain_counts("s3://b/results/manifest.json")
    assert "counts are Map Run items" not in capsys.readouterr().out
