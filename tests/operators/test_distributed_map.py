from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.sdk.exceptions import AirflowTaskTimeout
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from airflow_distmap.definitions import INDEXED_ROW_SELECTOR, CsvItemReader, ItemBatcher, S3PrefixItemReader
from airflow_distmap.exceptions import (
    DefinitionRaceError,
    DistributedMapError,
    DistributedMapExecutionFailed,
    DistributedMapTimeout,
    ExecutionNameConflict,
    FunctionNotFoundError,
    InvalidTaskArgumentsError,
    ItemSourceContentError,
    ItemSourceNotFoundError,
)
from airflow_distmap.hooks.distributed_map import DistributedMapHook, ExecutionStart
from airflow_distmap.local.asl import validate_definition
from airflow_distmap.naming import execution_name
from airflow_distmap.operators import distributed_map as distributed_map_module
from airflow_distmap.operators.distributed_map import DistributedMapOperator
from airflow_distmap.triggers.distributed_map import DistributedMapTrigger

ROLE = "arn:aws:iam::123456789012:role/sfn-role"
BUCKET = "dm-bucket"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
RUN_ID = "scheduled__2025-01-01T00:00:00+00:00"
MAP_RUN_UUID = "0b4d7c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:dm-rows"


def _context(run_id: str = RUN_ID, map_index: int = -1, try_number: int = 1) -> dict:
    ti = mock.MagicMock()
    ti.dag_id = "etl"
    ti.task_id = "rows"
    ti.run_id = run_id
    ti.map_index = map_index
    ti.try_number = try_number
    return {"ti": ti}


def _operator(**kwargs) -> DistributedMapOperator:
    params = {
        "task_id": "rows",
        "state_machine_name": "dm-rows",
        "role_arn": ROLE,
        "results_uri": f"s3://{BUCKET}/results",
        "item_reader": CsvItemReader(uri=f"s3://{BUCKET}/in/rows.csv"),
        "function_name": "process-row",
        "item_batcher": ItemBatcher(max_items_per_batch=10),
        "max_concurrency": 5,
        "aws_conn_id": None,
        "region_name": "us-east-1",
        "deferrable": True,
        "waiter_delay": 1,
    }
    if "definition" in kwargs:  # a full definition comes without building blocks
        for block in ("item_reader", "function_name", "item_batcher", "max_concurrency"):
            del params[block]
    params.update(kwargs)
    return DistributedMapOperator(**params)


def _locations_input(key: str, results_prefix: str = "results") -> dict:
    """The execution input that carries the S3 locations of the operator's default Map."""
    return {
        "airflow_distmap": {
            "ItemReader": {"Bucket": BUCKET, "Key": key},
            "ResultWriter": {"Bucket": BUCKET, "Prefix": results_prefix},
        }
    }


@pytest.fixture
def aws(deploy_function):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("in/rows.csv", "in/2025-01-01.csv", "in/2025-01-02.csv"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"id,text\n1,a\n")
        deploy_function("process-row")
        yield boto3.client("stepfunctions", region_name="us-east-1")


def _defer(op: DistributedMapOperator, context: dict) -> DistributedMapTrigger:
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, DistributedMapTrigger)
    return trigger


def _map_state(processor_states: dict, item_reader: dict | None = None) -> dict:
    """A Distributed Map state (``End``) whose STANDARD children run ``processor_states`` from the first."""
    state = {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": next(iter(processor_states)),
            "States": processor_states,
        },
        "End": True,
    }
    if item_reader is not None:
        state["ItemReader"] = item_reader
    return state


PASS_ONLY = {"P": {"Type": "Pass", "End": True}}


def test_first_run_creates_machine_and_starts_named_execution(aws):
    op = _operator()
    trigger = _defer(op, _context())
    machines = aws.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["dm-rows"]
    definition = json.loads(
        aws.describe_state_machine(stateMachineArn=machines[0]["stateMachineArn"])["definition"]
    )
    state = definition["States"]["DistributedMap"]
    assert state["ResultWriter"]["Parameters"] == {  # the locations come with the execution's input
        "Bucket.$": "$$.Execution.Input.airflow_distmap.ResultWriter.Bucket",
        "Prefix.$": "$$.Execution.Input.airflow_distmap.ResultWriter.Prefix",
    }
    assert state["MaxConcurrency"] == 5
    assert state["ItemBatcher"] == {"MaxItemsPerBatch": 10}
    executions = aws.list_executions(stateMachineArn=machines[0]["stateMachineArn"])["executions"]
    assert [e["name"] for e in executions] == [execution_name("etl", "rows", RUN_ID, -1)]
    started = aws.describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(started["input"]) == _locations_input("in/rows.csv")
    assert trigger.execution_arn == executions[0]["executionArn"]
    assert trigger.waiter_delay == 1


@pytest.mark.parametrize(
    "run_id",
    [RUN_ID, "manual__2025-01-01T00:00:00+00:00", "backfill__2025-01-01T00:00:00+00:00"],
)
def test_execution_name_per_run_kind(aws, run_id):
    trigger = _defer(_operator(), _context(run_id=run_id, map_index=2))
    name = trigger.execution_arn.rsplit(":", 1)[-1]
    assert name == execution_name("etl", "rows", run_id, 2)
    assert name.startswith("rows-" + run_id.split("__")[0])


def test_retry_attaches_to_the_running_execution_without_redeploying(aws):
    first = _defer(_operator(), _context(try_number=1))
    op = _operator()
    with (
        mock.patch.object(op.hook.conn, "update_state_machine") as update,
        mock.patch.object(op.hook.conn, "create_state_machine") as create,
    ):
        second = _defer(op, _context(try_number=2))
    update.assert_not_called()
    create.assert_not_called()
    assert second.execution_arn == first.execution_arn
    machine = aws.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    assert len(aws.list_executions(stateMachineArn=machine)["executions"]) == 1


def test_changed_arguments_update_the_machine(aws):
    _defer(_operator(), _context())
    op = _operator(max_concurrency=50, results_uri=f"s3://{BUCKET}/results-2")
    with mock.patch.object(
        op.hook.conn, "update_state_machine", wraps=op.hook.conn.update_state_machine
    ) as update:
        _defer(op, _context(run_id="manual__2025-01-02T00:00:00+00:00"))
    update.assert_called_once()
    machine = aws.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    definition = json.loads(aws.describe_state_machine(stateMachineArn=machine)["definition"])
    assert definition["States"]["DistributedMap"]["MaxConcurrency"] == 50


@pytest.mark.parametrize("state_machine_name", [None, "dm-rows"])
def test_runs_of_templated_uris_share_one_state_machine_and_each_reads_its_own_object(
    aws, state_machine_name
):
    def run(day: str) -> str:
        op = _operator(
            state_machine_name=state_machine_name,
            item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/{{{{ ds }}}}.csv"),
            results_uri=f"s3://{BUCKET}/results/{{{{ ds }}}}",
        )
        op.render_template_fields({"ds": day})
        return _defer(op, _context(run_id=f"backfill__{day}T00:00:00+00:00")).execution_arn

    first = run("2025-01-01")
    second = run("2025-01-02")
    assert run("2025-01-02") == second  # a retry attaches to its run's execution
    (machine,) = aws.list_state_machines()["stateMachines"]  # not one machine per day, never deleted
    assert machine["name"].startswith("etl-rows-" if state_machine_name is None else "dm-rows")
    executions = aws.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert sorted(e["executionArn"] for e in executions) == sorted([first, second])
    for arn, day in ((first, "2025-01-01"), (second, "2025-01-02")):
        started = json.loads(aws.describe_execution(executionArn=arn)["input"])
        assert started == _locations_input(f"in/{day}.csv", results_prefix=f"results/{day}")


def test_a_retry_after_the_definition_changed_attaches_to_the_execution_still_running(aws):
    # Try 1 started its execution, then its worker died (no on_kill) and the DAG changed (max_concurrency):
    # the retry's definition has another default state machine, but it must not start a second execution.
    _defer(_operator(state_machine_name=None), _context())
    trigger = _defer(_operator(state_machine_name=None, max_concurrency=7), _context(try_number=2))
    machines = aws.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == [machines[0]["name"]]  # nothing deployed for the new definition
    executions = aws.list_executions(stateMachineArn=machines[0]["stateMachineArn"])["executions"]
    assert trigger.execution_arn == executions[0]["executionArn"]

    # Once that execution is closed, a retry of the changed definition deploys and runs it.
    aws.stop_execution(executionArn=executions[0]["executionArn"])
    retried = _defer(_operator(state_machine_name=None, max_concurrency=7), _context(try_number=3))
    assert retried.execution_arn != executions[0]["executionArn"]
    assert len(aws.list_state_machines()["stateMachines"]) == 2


def test_a_retry_without_permission_to_list_state_machines_starts_as_before(aws):
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListStateMachines")
    first = _defer(_operator(state_machine_name=None), _context())
    with mock.patch.object(DistributedMapHook, "executions_elsewhere", side_effect=denied):
        trigger = _defer(_operator(state_machine_name=None), _context(try_number=2))
    assert trigger.execution_arn == first.execution_arn  # attached to its own execution by name, as before


def test_extra_links_are_pushed_empty_first_so_a_failing_task_logs_no_missing_xcom(aws):
    context = _context()
    with pytest.raises(ItemSourceNotFoundError):
        _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/absent.csv")).execute(context)
    pushed = {call.kwargs["key"]: call.kwargs["value"] for call in context["ti"].xcom_push.call_args_list}
    assert pushed == {"_distmap_state_machine": {}, "_distmap_execution": {}, "_distmap_map_run": {}}


def test_throttling_while_deploying_or_starting_is_retried_with_backoff(aws):
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "StartExecution")
    op = _operator()
    real_start = op.hook.start_execution
    errors = iter([throttled, throttled])

    def start_while_throttled(*args, **kwargs):
        error = next(errors, None)
        if error is not None:
            raise error
        return real_start(*args, **kwargs)

    with (
        mock.patch.object(DistributedMapHook, "start_execution", side_effect=start_while_throttled),
        mock.patch("airflow_distmap.operators.distributed_map.time.sleep") as sleep,
    ):
        trigger = _defer(op, _context())
    assert [c.args[0] for c in sleep.call_args_list] == [2.0, 4.0]
    assert trigger.execution_arn.endswith(execution_name("etl", "rows", RUN_ID, -1))

    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "StartExecution")
    with (
        mock.patch.object(DistributedMapHook, "start_execution", side_effect=denied),
        pytest.raises(ClientError, match="AccessDenied"),
    ):
        _operator().execute(_context())


def test_missing_item_source_fails_before_anything_is_created(aws):
    with pytest.raises(ItemSourceNotFoundError, match=r"s3://.*/in/absent.csv, which does not exist"):
        _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/absent.csv")).execute(_context())
    with pytest.raises(ItemSourceNotFoundError, match="lists bucket 'no-such-bucket'"):
        _operator(item_reader=S3PrefixItemReader(uri="s3://no-such-bucket/in/")).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


def test_an_item_source_without_items_fails_before_anything_is_created(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="in/header-only.csv", Body=b"id,text\n")
    with pytest.raises(ItemSourceContentError, match="holds only a header line"):
        _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/header-only.csv")).execute(_context())
    with pytest.raises(ItemSourceContentError, match="which holds no objects"):
        _operator(item_reader=S3PrefixItemReader(uri=f"s3://{BUCKET}/none-yet/")).execute(_context())
    s3.put_object(Bucket=BUCKET, Key="spark-out/_SUCCESS", Body=b"")
    parts = S3PrefixItemReader(uri=f"s3://{BUCKET}/spark-out/", input_type="PARQUET")
    with pytest.raises(ItemSourceContentError, match="which holds no objects with any bytes"):
        _operator(item_reader=parts).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results")


def test_an_item_too_large_for_a_child_fails_before_anything_is_created_unless_selected_down(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="in/wide.csv", Body=b"id,text\n1,a\n2," + b"x" * 300_000 + b"\n")
    reader = CsvItemReader(uri=f"s3://{BUCKET}/in/wide.csv")
    with pytest.raises(ItemSourceContentError, match=r"whose item 1 \(0-based.*is 300,020 bytes as JSON"):
        _operator(item_reader=reader).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results")
    # An ItemSelector may shrink the item (AWS reads up to 8 MB then), and the scan can be turned off.
    _defer(_operator(item_reader=reader, item_selector={"id.$": "$$.Map.Item.Value.id"}), _context())
    _defer(
        _operator(item_reader=reader, check_item_sizes=False, results_uri=f"s3://{BUCKET}/results-2"),
        _context(run_id="manual__2"),
    )


def test_a_retry_attached_to_another_definition_under_a_name_of_yours_says_so_and_waits(aws):
    from airflow_distmap.hooks import distributed_map as hook_module

    first = _defer(_operator(), _context(try_number=1))
    op = _operator()
    with (
        # The earlier try's start counts as an earlier one at once (not only after 5 s).
        mock.patch.object(hook_module, "_IDEMPOTENT_ANSWER_AGE", timedelta(0)),
        mock.patch.object(DistributedMapHook, "started_with_other_definition", return_value=True),
        mock.patch.object(op.log, "warning") as warning,
    ):
        second = _defer(op, _context(try_number=2))
    assert second.execution_arn == first.execution_arn  # waited for as it is: the DAG may have changed
    assert "other than this try's" in warning.call_args.args[0]
    assert "stop that execution and clear the task" in warning.call_args.args[0]


def test_a_retry_attaches_even_when_the_children_consumed_the_source(aws):
    first = _defer(_operator(), _context(try_number=1))
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket=BUCKET, Key="in/rows.csv")
    second = _defer(_operator(), _context(try_number=2))
    assert second.execution_arn == first.execution_arn


CONSUMED_INPUT = json.dumps(_locations_input("in/consumed.csv"))


@pytest.mark.parametrize(
    ("earlier", "other_definition", "goes_on"),
    [
        (
            {"status": "FAILED", "redriveStatus": "REDRIVABLE", "input": CONSUMED_INPUT},
            False,
            True,
        ),  # redriven
        ({"status": "SUCCEEDED", "input": CONSUMED_INPUT}, False, True),  # its results are reused
        ({"status": "FAILED", "redriveStatus": "NOT_REDRIVABLE", "input": CONSUMED_INPUT}, False, False),
        ({"status": "SUCCEEDED", "input": '{"day": "yesterday"}'}, False, False),  # another input: a new one
        # It ran another definition, which a redrive would run again: the retry starts a new execution.
        ({"status": "FAILED", "redriveStatus": "REDRIVABLE", "input": CONSUMED_INPUT}, True, False),
    ],
)
def test_a_missing_source_is_refused_unless_the_try_reuses_an_execution(
    aws, earlier, other_definition, goes_on
):
    op = _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/consumed.csv"))
    with (
        mock.patch.object(DistributedMapHook, "find_state_machine", return_value=MACHINE_ARN),
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=earlier),
        mock.patch.object(DistributedMapHook, "started_with_other_definition", return_value=other_definition),
    ):
        if goes_on:
            op.preflight(_context(try_number=2))
        else:
            with pytest.raises(ItemSourceNotFoundError):
                op.preflight(_context(try_number=2))


def test_a_source_problem_stands_when_the_execution_cannot_be_looked_up(aws):
    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "DescribeStateMachine")
    op = _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/consumed.csv"))
    with (
        mock.patch.object(DistributedMapHook, "find_state_machine", side_effect=denied),
        pytest.raises(ItemSourceNotFoundError, match="does not exist"),
    ):
        op.preflight(_context(try_number=2))


def test_a_source_an_earlier_state_writes_is_not_checked_before_the_start(aws):
    definition = {
        "StartAt": "Export",
        "States": {
            "Export": {"Type": "Task", "Resource": LAMBDA_ARN.format("process-row"), "Next": "Rows"},
            "Rows": _map_state(PASS_ONLY, CsvItemReader(uri=f"s3://{BUCKET}/exported/rows.csv").to_asl()),
        },
    }
    _defer(_operator(definition=definition), _context())
    assert len(aws.list_state_machines()["stateMachines"]) == 1


def test_a_definition_step_functions_refuses_fails_before_anything_is_created(aws):
    op = _operator()
    error = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": "bad", "location": "/x"}
    with (
        mock.patch.object(DistributedMapHook, "definition_diagnostics", return_value=[error]) as validate,
        pytest.raises(InvalidTaskArgumentsError, match=r"SCHEMA_VALIDATION_FAILED at /x: bad\. To fix this"),
    ):
        op.execute(_context())
    assert validate.call_args.args[0]["States"]["DistributedMap"]["ItemReader"]
    assert aws.list_state_machines()["stateMachines"] == []
    s3 = boto3.client("s3", region_name="us-east-1")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results")  # not claimed


def test_step_functions_warnings_are_logged_and_the_definition_deployed(aws):
    warning = {"severity": "WARNING", "code": "NO_DOLLAR", "message": "use a.$", "location": "/States/X"}
    log = mock.MagicMock()
    with (
        mock.patch.object(DistributedMapHook, "definition_diagnostics", return_value=[warning]),
        mock.patch.object(DistributedMapOperator, "log", new_callable=mock.PropertyMock, return_value=log),
    ):
        _defer(_operator(), _context())
    warnings = [call.args[0] % call.args[1:] for call in log.warning.call_args_list]
    assert "Step Functions warns about the definition: NO_DOLLAR at /States/X: use a.$" in warnings
    assert len(aws.list_state_machines()["stateMachines"]) == 1


def test_many_definition_warnings_are_logged_ten_then_counted(aws):
    warning = {"severity": "WARNING", "code": "NO_DOLLAR", "message": "use a.$", "location": "/States/X"}
    log = mock.MagicMock()
    with (
        mock.patch.object(DistributedMapHook, "definition_diagnostics", return_value=[warning] * 13),
        mock.patch.object(DistributedMapOperator, "log", new_callable=mock.PropertyMock, return_value=log),
    ):
        _defer(_operator(), _context())
    warnings = [call.args[0] % call.args[1:] for call in log.warning.call_args_list]
    assert sum(w.startswith("Step Functions warns about the definition") for w in warnings) == 10
    assert "... and 3 more warnings" in warnings


def test_a_definition_that_cannot_be_validated_is_deployed_after_a_warning(aws):
    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "ValidateStateMachineDefinition")
    log = mock.MagicMock()
    with (
        mock.patch.object(DistributedMapHook, "definition_diagnostics", side_effect=denied),
        mock.patch.object(DistributedMapOperator, "log", new_callable=mock.PropertyMock, return_value=log),
    ):
        _defer(_operator(), _context())
    warnings = [call.args[0] % call.args[1:] for call in log.warning.call_args_list]
    assert any(w.startswith("Could not validate the state machine definition") for w in warnings)
    assert len(aws.list_state_machines()["stateMachines"]) == 1


def test_a_definition_create_state_machine_refuses_is_bad_input(aws):
    refused = ClientError(
        {"Error": {"Code": "InvalidDefinition", "Message": "Invalid State Machine Definition"}}, "Create"
    )
    with (
        mock.patch.object(DistributedMapHook, "create_or_update_state_machine", side_effect=refused),
        pytest.raises(InvalidTaskArgumentsError, match="Step Functions refused the state machine definition"),
    ):
        _operator().execute(_context())


def test_a_feature_the_local_endpoint_lacks_is_bad_input_before_the_results_prefix_is_claimed(monkeypatch):
    from airflow_distmap.local import LocalEndpoint

    call = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "post_processing", "Payload.$": "$"},
        "HeartbeatSeconds": 10,
        "End": True,
    }
    reader = CsvItemReader(uri=f"s3://{BUCKET}/in/rows.csv").to_asl()
    definition = {"StartAt": "Rows", "States": {"Rows": _map_state({"Call": call}, reader)}}
    with LocalEndpoint() as endpoint:  # the project's lambda_functions, post_processing among them
        monkeypatch.setenv("AIRFLOW_CONN_AWS_LOCAL", endpoint.airflow_connection_uri())
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="in/rows.csv", Body=b"id,text\n1,a\n")
        op = _operator(aws_conn_id="aws_local", region_name=None, definition=definition)
        with pytest.raises(InvalidTaskArgumentsError, match="HeartbeatSeconds is not supported"):
            op.execute(_context())
        assert endpoint.client("stepfunctions").list_state_machines()["stateMachines"] == []
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="results")


def test_a_misspelled_function_fails_before_anything_is_created(aws, deploy_function):
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Task", "Resource": LAMBDA_ARN.format("prepare"), "Next": "Rows"},
            "Rows": _map_state(
                {
                    "Row": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "process-rwo", "Payload.$": "$"},
                        "End": True,
                    }
                },
                CsvItemReader(uri=f"s3://{BUCKET}/in/rows.csv").to_asl(),
            ),
        },
    }
    deploy_function("prepare")
    with pytest.raises(FunctionNotFoundError) as raised:
        _operator(function_name=None, item_reader=None, definition=definition).execute(_context())
    assert "Lambda function 'process-rwo', invoked by state(s) ['Row'], does not exist in us-east-1" in str(
        raised.value
    )
    assert "nothing was created" in str(raised.value)
    assert aws.list_state_machines()["stateMachines"] == []
    keys = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET, Prefix="results/")
    assert keys["KeyCount"] == 0  # not even the results prefix's claim


@pytest.mark.parametrize("check_functions", [True, False])
def test_a_truncated_function_arn_is_refused_before_anything_is_created(aws, check_functions):
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    row = {"Row": {**task, "Parameters": {"FunctionName": "arn:aws:lambda", "Payload.$": "$"}}}
    definition = {
        "StartAt": "Rows",
        "States": {"Rows": _map_state(row, CsvItemReader(uri=f"s3://{BUCKET}/in/rows.csv").to_asl())},
    }
    op = _operator(
        function_name=None, item_reader=None, definition=definition, check_functions=check_functions
    )
    with pytest.raises(
        ValueError, match=r"invoke 'arn:aws:lambda', which is not a Lambda function name or ARN"
    ):
        op.execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


@pytest.mark.parametrize(
    "problem",
    [
        ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetFunction"),
        EndpointConnectionError(endpoint_url="https://lambda.us-east-1.amazonaws.com/"),
    ],
)
def test_a_function_airflow_cannot_look_up_is_not_called_missing(aws, problem):
    op = _operator(function_name="someone-elses")
    log = mock.MagicMock()
    with (
        mock.patch.object(op.lambda_client, "get_function", side_effect=problem),
        mock.patch.object(DistributedMapOperator, "log", new_callable=mock.PropertyMock, return_value=log),
        pytest.raises(TaskDeferred),  # the run goes on
    ):
        op.execute(_context())
    message, *values = log.warning.call_args_list[0].args
    shown = "AccessDeniedException" if isinstance(problem, ClientError) else problem
    assert (
        message % tuple(values)
        == f"Could not check that Lambda function someone-elses exists ({shown}); going on"
    )


def test_the_function_lookup_keeps_the_connections_settings_with_short_timeouts(monkeypatch):
    extra = {"region_name": "eu-west-1", "config_kwargs": {"proxies": {"https": "http://proxy:3128"}}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_PROXIED", json.dumps({"conn_type": "aws", "extra": extra}))
    client = _operator(aws_conn_id="aws_proxied", region_name=None).lambda_client
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.proxies == {"https": "http://proxy:3128"}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (5, 10)


@pytest.mark.parametrize(
    ("function_name", "outcome"),
    [
        (LAMBDA_ARN.format("process-row"), TaskDeferred),
        (LAMBDA_ARN.format("process-row") + ":live", FunctionNotFoundError),  # no such alias
        ("arn:aws:lambda:eu-west-1:123456789012:function:elsewhere", TaskDeferred),  # another region: skipped
    ],
)
def test_function_references_are_looked_up_as_lambda_resolves_them(aws, function_name, outcome):
    with pytest.raises(outcome):
        _operator(function_name=function_name).execute(_context())


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("role_arn", "arn:aws-cn:iam::123456789012:role/distmap"),
        ("function_name", "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:process-row"),
    ],
)
def test_an_arn_of_another_partition_is_refused_before_anything_is_created(aws, argument, value):
    with pytest.raises(
        InvalidTaskArgumentsError, match=r"is in partition 'aws-(cn|us-gov)', but .* in 'aws'"
    ):
        _operator(**{argument: value}).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []
    keys = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET, Prefix="results/")
    assert keys["KeyCount"] == 0


@pytest.mark.parametrize("use", ["reader", "results"])
def test_a_bucket_in_another_region_is_refused_before_anything_is_created(aws, use):
    west = boto3.client("s3", region_name="us-west-2")
    west.create_bucket(Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    west.put_object(Bucket="west-bucket", Key="rows.csv", Body=b"id,text\n1,a\n")
    arguments = (
        {"item_reader": CsvItemReader(uri="s3://west-bucket/rows.csv")}
        if use == "reader"
        else {"results_uri": "s3://west-bucket/results"}
    )
    with pytest.raises(InvalidTaskArgumentsError) as raised:
        _operator(**arguments).execute(_context())
    assert "Bucket 'west-bucket', which " in str(raised.value)
    assert "is in us-west-2, but the state machine runs in us-east-1" in str(raised.value)
    assert "To fix this, use a bucket in us-east-1, or a connection whose region is us-west-2" in str(
        raised.value
    )
    assert aws.list_state_machines()["stateMachines"] == []
    assert [o["Key"] for o in west.list_objects_v2(Bucket="west-bucket")["Contents"]] == ["rows.csv"]


def test_in_a_china_region_the_definition_and_every_arn_are_in_its_partition(monkeypatch):
    from airflow_distmap.local import LocalEndpoint

    with LocalEndpoint(region="cn-north-1") as endpoint:  # the project's post_processing function
        monkeypatch.setenv("AIRFLOW_CONN_AWS_LOCAL", endpoint.airflow_connection_uri())
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "cn-north-1"})
        s3.put_object(Bucket=BUCKET, Key="in/rows.csv", Body=b"id,text\n1,a\n2,b\n")
        summary = _operator(
            aws_conn_id="aws_local",
            region_name=None,
            function_name="post_processing",
            role_arn="arn:aws-cn:iam::123456789012:role/distmap",
            deferrable=False,
        ).execute(_context())
        sfn = endpoint.client("stepfunctions")
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    assert summary["status"] == "SUCCEEDED"
    assert summary["counts"]["total"] == 2
    for arn in (machine, summary["execution_arn"], summary["map_run_arn"]):
        assert arn.startswith("arn:aws-cn:states:cn-north-1:123456789012:")
    state = definition["States"]["DistributedMap"]
    resources = [
        state["ItemReader"]["Resource"],
        state["ItemProcessor"]["States"]["InvokeFunction"]["Resource"],
        state["ResultWriter"]["Resource"],
    ]
    assert resources == [
        f"arn:aws-cn:states:::{api}" for api in ("s3:getObject", "lambda:invoke", "s3:putObject")
    ]


def test_a_task_state_naming_no_function_is_bad_input_and_the_check_can_be_turned_off(aws):
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "not a function!"},
                "End": True,
            }
        },
    }
    with pytest.raises(InvalidTaskArgumentsError, match=r"State\(s\) \['T'\] invoke 'not a function!'"):
        _operator(function_name=None, item_reader=None, definition=definition).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []
    with pytest.raises(TaskDeferred):
        _operator(function_name="not-deployed", check_functions=False).execute(_context())


def test_missing_results_bucket_fails_before_anything_is_created_without_retries(aws):
    with pytest.raises(InvalidTaskArgumentsError, match="bucket 'no-such-bucket' does not exist"):
        _operator(results_uri="s3://no-such-bucket/results").execute(_context())
    # With the default results_uri, in the bucket the ItemReader reads, the missing input is named.
    reader = CsvItemReader(uri="s3://no-such-bucket/in.csv")
    with pytest.raises(ItemSourceNotFoundError, match=r"reads s3://no-such-bucket/in.csv, whose bucket"):
        _operator(results_uri=None, item_reader=reader).execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


def test_a_results_prefix_holding_another_runs_results_fails_before_anything_is_created(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="results/0b4d7c1e/manifest.json", Body=b"{}")
    with pytest.raises(AirflowFailException, match=r"results_uri s3://dm-bucket/results already holds"):
        _operator().execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")["Contents"]]
    assert keys == ["results/0b4d7c1e/manifest.json"]  # nothing written, nothing overwritten


def test_a_fixed_results_uri_serves_only_the_task_run_that_claimed_it(aws):
    first = _defer(_operator(), _context())
    assert _defer(_operator(), _context(try_number=2)).execution_arn == first.execution_arn  # its own retry
    with pytest.raises(AirflowFailException, match="another task run claimed it"):
        _operator().execute(_context(run_id="manual__2025-01-02T00:00:00+00:00"))
    machine = aws.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    assert len(aws.list_executions(stateMachineArn=machine)["executions"]) == 1


def test_a_results_prefix_airflow_may_not_list_is_not_checked(aws):
    forbidden = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2")
    op = _operator()
    with mock.patch.object(op.s3_hook.get_conn(), "list_objects_v2", side_effect=forbidden):
        _defer(op, _context())
    assert len(aws.list_state_machines()["stateMachines"]) == 1


def test_a_results_bucket_airflow_may_not_list_is_not_called_missing(aws):
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    op = _operator()
    with mock.patch.object(op.s3_hook.get_conn(), "head_bucket", side_effect=forbidden) as head:
        _defer(op, _context())  # Step Functions' role writes the results; Airflow's need not list the bucket
    head.assert_called_once_with(Bucket=BUCKET)  # the results' and the reader's bucket: asked once
    assert len(aws.list_state_machines()["stateMachines"]) == 1


def test_results_default_to_a_per_task_run_prefix_in_the_readers_bucket(aws):
    first = _defer(_operator(results_uri=None, state_machine_name=None), _context(map_index=3))
    (machine,) = aws.list_state_machines()["stateMachines"]
    definition = json.loads(
        aws.describe_state_machine(stateMachineArn=machine["stateMachineArn"])["definition"]
    )
    writer = definition["States"]["DistributedMap"]["ResultWriter"]
    assert writer["Parameters"] == {  # the execution name (one per task run) completes it at run time
        "Bucket.$": "$$.Execution.Input.airflow_distmap.ResultWriter.Bucket",
        "Prefix.$": "States.Format('distmap-results/etl/rows/{}', $$.Execution.Name)",
    }
    keys = [
        o["Key"]
        for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)["Contents"]
    ]
    assert not [key for key in keys if key.startswith("distmap-results/")]  # its own by construction: no mark

    # Another run of the task gets its own results prefix from the same definition: no new state machine.
    second = _defer(
        _operator(results_uri=None, state_machine_name=None), _context(run_id="manual__2", map_index=3)
    )
    assert second.execution_arn != first.execution_arn
    assert [m["name"] for m in aws.list_state_machines()["stateMachines"]] == [machine["name"]]


def test_a_given_execution_name_gets_a_literal_per_run_results_prefix(aws):
    # A given name may be the same in every run: the prefix then carries the run itself, in the definition,
    # so runs in flight together get state machines of their own instead of one name on one machine.
    first = _defer(
        _operator(results_uri=None, execution_name="fixed-name", state_machine_name=None), _context()
    )
    day_two = _context(run_id="scheduled__2025-01-02T00:00:00+00:00")
    second = _defer(
        _operator(results_uri=None, execution_name="fixed-name", state_machine_name=None), day_two
    )
    assert first.execution_arn != second.execution_arn
    machines = aws.list_state_machines()["stateMachines"]
    assert len(machines) == 2
    prefixes = set()
    for machine in machines:
        definition = json.loads(
            aws.describe_state_machine(stateMachineArn=machine["stateMachineArn"])["definition"]
        )
        writer = definition["States"]["DistributedMap"]["ResultWriter"]["Parameters"]
        assert writer["Bucket"] == BUCKET
        prefixes.add(writer["Prefix"])
    assert prefixes == {
        "distmap-results/etl/rows/scheduled__2025-01-01T00_00_00_00_00",
        "distmap-results/etl/rows/scheduled__2025-01-02T00_00_00_00_00",
    }


def test_a_retry_attaches_to_its_running_execution_after_the_dag_changed_its_location(aws):
    # Try 1 started, then its worker died (no on_kill) and the DAG's URI was corrected.
    first = _defer(_operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/2025-01-01.csv")), _context())
    fixed = _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/2025-01-02.csv"))
    retried = _defer(fixed, _context(try_number=2))
    assert retried.execution_arn == first.execution_arn  # no second execution for the task run
    (machine,) = aws.list_state_machines()["stateMachines"]
    assert len(aws.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]) == 1


def test_a_retry_whose_own_execution_input_changed_meanwhile_is_a_conflict_not_an_attach(aws):
    _defer(_operator(execution_input={"day": "a"}), _context())
    with pytest.raises(ExecutionNameConflict, match="different input"):
        _defer(_operator(execution_input={"day": "b"}), _context(try_number=2))


def test_a_map_over_its_input_gets_no_locations_in_that_input(aws):
    op = _operator(item_reader=None, execution_input={"a": 1, "b": 2})  # a Map over an object: one item a key
    trigger = _defer(op, _context())
    assert json.loads(aws.describe_execution(executionArn=trigger.execution_arn)["input"]) == {"a": 1, "b": 2}


def test_a_given_results_uri_that_cannot_be_marked_fails_before_anything_starts(aws):
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")
    op = _operator()
    with (
        mock.patch.object(op.s3_hook.get_conn(), "put_object", side_effect=denied),
        pytest.raises(AirflowFailException, match=r"s3:PutObject on that prefix, or leave results_uri unset"),
    ):
        op.execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


def test_results_uri_is_required_when_no_reader_names_a_bucket(aws):
    definition = {"StartAt": "Map", "States": {"Map": _map_state(PASS_ONLY)}}
    op = _operator(results_uri=None, function_name=None, item_reader=None, definition=definition)
    with pytest.raises(AirflowFailException, match="no ItemReader names a bucket"):
        op.execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state_machine_name": "bad name"}, "Invalid state_machine_name 'bad name'"),
        ({"execution_name": "run:1"}, "Invalid execution_name 'run:1'"),
        ({"results_uri": "bucket/x"}, "Invalid results_uri 'bucket/x'"),
        ({"role_arn": "arn:aws:iam::123:role/short"}, "is not an IAM role ARN"),
        ({"execution_type": "FAST"}, "execution_type"),
        ({"map_label": "x" * 41}, "40"),
    ],
)
def test_literal_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(InvalidTaskArgumentsError, match=re.escape(message)):
        _operator(**kwargs)
    templated = {name: "{{ params.x }}" for name in kwargs if name in DistributedMapOperator.template_fields}
    _operator(**templated)  # checked once rendered


def test_none_for_execution_type_or_map_label_means_the_default():
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    _operator(
        function_name=None, item_reader=None, definition=definition, execution_type=None, map_label=None
    )
    processor = {"StartAt": "P", "States": PASS_ONLY}
    op = _operator(function_name=None, item_processor=processor, execution_type=None)
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert state["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"


def test_bad_input_fails_before_any_aws_call(aws):
    op = _operator(state_machine_name="{{ 'bad name' }}")
    with mock.patch.object(DistributedMapHook, "create_or_update_state_machine") as deploy:
        with pytest.raises(ValueError, match="state_machine_name") as raised:
            op.execute(_context())
        assert isinstance(raised.value, AirflowFailException), "a bad argument must not spend the retries"
        with pytest.raises(ValueError, match="results_uri"):
            _operator(results_uri="{{ bucket/x }}").execute(_context())
        with pytest.raises(ValueError, match="is not an IAM role ARN"):
            _operator(role_arn="{{ arn:aws:iam::123:role/short-account }}").execute(_context())
        with pytest.raises(ValueError, match=r"execution_input is 300\d\d\d bytes"):
            _operator(execution_input={"blob": "x" * 300_000}).execute(_context())
        with pytest.raises(InvalidTaskArgumentsError, match="execution_input has the key 'airflow_distmap'"):
            _operator(execution_input={"airflow_distmap": {}}).execute(_context())
        with pytest.raises(InvalidTaskArgumentsError, match="execution_input is a JSON list, not an object"):
            _operator(execution_input="[1, 2]").execute(_context())
        with pytest.raises(InvalidTaskArgumentsError, match="execution_input is not valid JSON"):
            _operator(execution_input="{'single': 'quotes'}").execute(_context())
        with pytest.raises(InvalidTaskArgumentsError, match=r"execution_input is not JSON: .* set is not"):
            _operator(execution_input={"days": {"mon"}}).execute(_context())
        with pytest.raises(InvalidTaskArgumentsError, match=r"not valid JSON .*a file name is not read"):
            _operator(function_name=None, item_reader=None, definition="asl.json").execute(_context())
        with (
            mock.patch.object(DistributedMapOperator, "check_item_sources") as read_sources,
            pytest.raises(AirflowFailException, match="no role_arn was given"),
        ):
            _operator(role_arn=None).execute(_context())
        read_sources.assert_not_called()  # a size check may read the whole source: the role comes first
        with pytest.raises(ValueError, match="no Distributed Map"):
            _operator(
                function_name=None,
                item_reader=None,
                definition={"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            ).execute(_context())
    deploy.assert_not_called()
    assert aws.list_state_machines()["stateMachines"] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"definition": {"StartAt": "x", "States": {}}, "function_name": "f"}, "not both"),
        (
            {"definition": {"StartAt": "x", "States": {}}, "tolerated_failure_count": 3, "map_label": "Rows"},
            r"building blocks \(tolerated_failure_count, map_label\) were given; .* would be ignored",
        ),
        ({"function_name": None}, "Nothing to run"),
        ({"item_processor": {"StartAt": "P", "States": {}}}, "only one"),
        ({"max_concurrency": 20000}, "max_concurrency"),
        ({"tolerated_failure_percentage": 150}, "tolerated_failure_percentage"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, message):
    # Not retried by Airflow: a mapped task's arguments are checked only when it runs.
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        _operator(**kwargs)


def test_a_subclass_keeps_the_constructor_checks():
    class TeamOperator(DistributedMapOperator):
        """A thin company wrapper, as users write them."""

    with pytest.raises(InvalidTaskArgumentsError, match="max_concurrency"):
        TeamOperator(task_id="t", function_name="f", max_concurrency=20000)
    with pytest.raises(InvalidTaskArgumentsError, match="Nothing to run"):
        TeamOperator(task_id="t")


def test_execution_type_applies_to_an_asl_item_processor():
    processor = {"StartAt": "P", "States": PASS_ONLY}
    op = _operator(function_name=None, item_processor=processor, execution_type="EXPRESS")
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    standard = {**processor, "ProcessorConfig": {"ExecutionType": "STANDARD"}}
    op = _operator(function_name=None, item_processor=standard, execution_type="EXPRESS")
    with pytest.raises(ValueError, match="ExecutionType is 'STANDARD' but execution_type='EXPRESS'"):
        op.build_definition(_context())


def test_the_deployed_building_block_definition_draws_no_diagnostic_not_even_a_warning():
    op = _operator(item_selector=INDEXED_ROW_SELECTOR, item_batcher=ItemBatcher(max_items_per_batch=5))
    definition, _ = op._deployment(_context())
    assert validate_definition(json.dumps(definition)) == []


def test_item_reader_and_results_uri_are_templated():
    reader = CsvItemReader(uri="s3://" + BUCKET + "/in/{{ ds_nodash }}/rows.csv")
    op = _operator(item_reader=reader, results_uri="s3://" + BUCKET + "/results/{{ ds_nodash }}")
    op.render_template_fields({"ds_nodash": "20250101"})
    assert op.item_reader.uri == f"s3://{BUCKET}/in/20250101/rows.csv"
    assert op.results_uri == f"s3://{BUCKET}/results/20250101"
    assert reader.uri.endswith("{{ ds_nodash }}/rows.csv")  # the DAG's object is untouched
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert state["ItemReader"]["Parameters"] == {"Bucket": BUCKET, "Key": "in/20250101/rows.csv"}


JSONATA_DEFINITION = {
    "QueryLanguage": "JSONata",
    "StartAt": "Rows",
    "States": {
        "Rows": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "in/{{ ds }}.json"},
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Call",
                "States": {
                    "Call": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Arguments": {
                            "FunctionName": "{% if params.fast %}fast{% else %}process-row{% endif %}",
                            "Payload": '{% $merge([$states.input, {"tag": "a\\"b"}]) %}',
                        },
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


@pytest.mark.parametrize("form", ["dict", "JSON text"])
def test_jsonata_expressions_survive_rendering_while_jinja_around_them_renders(form):
    given = JSONATA_DEFINITION if form == "dict" else json.dumps(JSONATA_DEFINITION)
    op = _operator(definition=given)
    op.render_template_fields({"ds": "2025-01-01", "params": {"fast": False}})
    rendered = op.build_definition(_context())
    state = rendered["States"]["Rows"]
    assert state["ItemReader"]["Arguments"] == {
        "Bucket": "{% $states.input.bucket %}",
        "Key": "in/2025-01-01.json",
    }
    arguments = state["ItemProcessor"]["States"]["Call"]["Arguments"]
    assert arguments["FunctionName"] == "process-row"
    assert arguments["Payload"] == '{% $merge([$states.input, {"tag": "a\\"b"}]) %}'
    assert json.dumps(JSONATA_DEFINITION).count("{{ ds }}") == 1  # the DAG's object is untouched


def test_item_selector_is_templated():
    selector = {"day": "{{ ds }}", "row.$": "$$.Map.Item.Value", "tag": "{% $states.input.tag %}"}
    op = _operator(item_selector=selector)
    op.render_template_fields({"ds": "2025-01-01"})
    assert op.item_selector == {
        "day": "2025-01-01",
        "row.$": "$$.Map.Item.Value",
        "tag": "{% $states.input.tag %}",
    }
    assert selector["day"] == "{{ ds }}"


def test_a_definition_already_keeping_jsonata_in_a_raw_block_renders_as_before():
    text = json.dumps(JSONATA_DEFINITION).replace("in/{{ ds }}.json", "in/{% endraw %}{{ ds }}{% raw %}.json")
    op = _operator(definition="{% raw %}" + text + "{% endraw %}")
    op.render_template_fields({"ds": "2025-01-01", "params": {"fast": False}})
    state = op.build_definition(_context())["States"]["Rows"]
    assert state["ItemReader"]["Arguments"]["Key"] == "in/2025-01-01.json"
    assert state["ItemReader"]["Arguments"]["Bucket"] == "{% $states.input.bucket %}"


def test_an_asl_item_reader_with_jsonata_renders():
    reader = JSONATA_DEFINITION["States"]["Rows"]["ItemReader"]
    op = _operator(item_reader=reader)
    op.render_template_fields({"ds": "2025-01-01"})
    assert op.item_reader["Arguments"]["Bucket"] == "{% $states.input.bucket %}"
    assert op.item_reader["Arguments"]["Key"] == "in/2025-01-01.json"


def test_default_timeout_covers_long_runs():
    op = _operator(waiter_delay=30)
    assert op.waiter_delay * op.waiter_max_attempts >= 24 * 3600
    assert "definition" in op.template_fields
    assert "results_uri" in op.template_fields
    assert "execution_input" in op.template_fields


def _seed_results(s3, failed: bool = False, results_key: str = "results") -> str:
    prefix = f"{results_key}/{MAP_RUN_UUID}"
    succeeded = [
        {
            "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:dm-rows/DistributedMap:c{i}",
            "Input": json.dumps({"Items": [{"id": str(i)}]}),
            "InputDetails": {"Included": True},
            "Name": f"c{i}",
            "Output": json.dumps([{"ok": i}]),
            "OutputDetails": {"Included": True},
            "Status": "SUCCEEDED",
            "StartDate": "2025-02-04T01:49:50.099Z",
            "StopDate": "2025-02-04T01:49:50.163Z",
        }
        for i in range(3)
    ]
    listing = {"FAILED": [], "PENDING": [], "SUCCEEDED": [{"Key": f"{prefix}/SUCCEEDED_0.json", "Size": 10}]}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/SUCCEEDED_0.json", Body=json.dumps(succeeded).encode())
    if failed:
        entries = [
            {
                "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:dm-rows/DistributedMap:f1",
                "Input": json.dumps({"Items": [{"id": "bad"}]}),
                "InputDetails": {"Included": True},
                "OutputDetails": {"Included": True},
                "Status": "FAILED",
                "Error": "ValueError",
                "Cause": "bad row",
                "RedriveStatus": "REDRIVABLE_BY_MAP_RUN",
            }
        ]
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/FAILED_0.json", Body=json.dumps(entries).encode())
        listing["FAILED"] = [{"Key": f"{prefix}/FAILED_0.json", "Size": 10}]
    manifest = {
        "DestinationBucket": BUCKET,
        "MapRunArn": f"arn:aws:states:us-east-1:123456789012:mapRun:dm-rows/DistributedMap:{MAP_RUN_UUID}",
        "ResultFiles": listing,
    }
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
    return f"{prefix}/manifest.json"


MAP_RUN_ARN = f"arn:aws:states:us-east-1:123456789012:mapRun:dm-rows/DistributedMap:{MAP_RUN_UUID}"
EXEC_ARN = "arn:aws:states:us-east-1:123456789012:execution:dm-rows:x"


def _map_run(succeeded: int, failed: int) -> dict:
    counts = {
        "pending": 0,
        "running": 0,
        "succeeded": succeeded,
        "failed": failed,
        "timedOut": 0,
        "aborted": 0,
        "total": succeeded + failed,
        "resultsWritten": succeeded + failed,
    }
    return {"mapRunArn": MAP_RUN_ARN, "status": "SUCCEEDED", "itemCounts": counts, "executionCounts": counts}


def test_execute_complete_returns_the_summary(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    key = _seed_results(s3)
    op = _operator()
    start = datetime(2025, 2, 4, 1, 49, 0, tzinfo=timezone.utc)
    described = {
        "executionArn": EXEC_ARN,
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:dm-rows",
        "name": "x",
        "status": "SUCCEEDED",
        "startDate": start,
        "stopDate": datetime(2025, 2, 4, 1, 51, 30, tzinfo=timezone.utc),
        "output": json.dumps(
            {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": key}}
        ),
    }
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=described),
        mock.patch.object(DistributedMapHook, "describe_map_run", return_value=_map_run(3, 0)),
    ):
        summary = op.execute_complete(
            _context(), {"status": "success", "execution_arn": EXEC_ARN, "reason": "succeeded"}
        )
    assert summary["status"] == "SUCCEEDED"
    assert summary["execution_arn"] == EXEC_ARN
    assert summary["map_run_arn"] == MAP_RUN_ARN
    assert summary["manifest_uri"] == f"s3://{BUCKET}/{key}"
    assert summary["counts"] == {
        "total": 3,
        "succeeded": 3,
        "failed": 0,
        "pending": 0,
        "running": 0,
        "timed_out": 0,
        "aborted": 0,
    }
    assert summary["result_files"]["SUCCEEDED"] == [f"s3://{BUCKET}/results/{MAP_RUN_UUID}/SUCCEEDED_0.json"]
    assert summary["duration_seconds"] == 150.0
    assert summary["item_counts"]["resultsWritten"] == 3
    json.dumps(summary)  # XCom-serialisable, and small
    assert len(json.dumps(summary)) < 4000


def test_throttling_while_reading_the_results_is_retried_not_reported_as_missing_results(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    key = _seed_results(s3)
    op = _operator()
    described = {
        "executionArn": EXEC_ARN,
        "status": "SUCCEEDED",
        "output": json.dumps(
            {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": key}}
        ),
    }
    slow_down = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "DescribeExecution")
    real_read = distributed_map_module.read_manifest
    errors = [slow_down]

    def flaky_read(*args):
        if errors:
            raise errors.pop()
        return real_read(*args)

    with (
        mock.patch.object(DistributedMapHook, "describe_execution", side_effect=[throttled, described]),
        mock.patch.object(DistributedMapHook, "describe_map_run", return_value=_map_run(3, 0)),
        mock.patch.object(distributed_map_module, "read_manifest", side_effect=flaky_read),
        mock.patch.object(distributed_map_module.time, "sleep") as sleep,
    ):
        summary = op.execute_complete(_context(), {"status": "success", "execution_arn": EXEC_ARN})
    assert summary["manifest_uri"] == f"s3://{BUCKET}/{key}"
    assert sleep.call_count == 2  # one backoff for DescribeExecution, one for the manifest


def test_a_throttled_describe_map_run_at_completion_counts_from_the_result_files(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    key = _seed_results(s3)
    described = {
        "executionArn": EXEC_ARN,
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:dm-rows",
        "status": "SUCCEEDED",
        "output": json.dumps(
            {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": key}}
        ),
    }
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeMapRun"
    )
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=described),
        mock.patch.object(DistributedMapHook, "describe_map_run", side_effect=throttled),
    ):
        summary = _operator().execute_complete(
            _context(), {"status": "success", "execution_arn": EXEC_ARN, "reason": "succeeded"}
        )
    assert summary["status"] == "SUCCEEDED"
    assert (summary["counts"]["total"], summary["counts"]["succeeded"], summary["counts"]["failed"]) == (
        3,
        3,
        0,
    )


def _failed_run(
    op: DistributedMapOperator, execution_arn: str, context: dict | None = None
) -> DistributedMapExecutionFailed:
    """What execute_complete raises for a FAILED execution whose Map Run failed 1 of 4 items."""
    described = {
        "executionArn": execution_arn,
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:dm-rows",
        "status": "FAILED",
        "error": "States.ExceedToleratedFailureThreshold",
        "cause": "The specified tolerated failure threshold was exceeded",
    }
    event = {"status": "error", "execution_arn": execution_arn, "reason": "failed"}
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=described),
        mock.patch.object(DistributedMapHook, "latest_map_run_arn", return_value=MAP_RUN_ARN),
        mock.patch.object(DistributedMapHook, "describe_map_run", return_value=_map_run(3, 1)),
        pytest.raises(DistributedMapExecutionFailed) as info,
    ):
        op.execute_complete(context or _context(), event)
    return info.value


def test_failure_raises_with_error_counts_and_failed_items(aws):
    _seed_results(boto3.client("s3", region_name="us-east-1"), failed=True)
    error = _failed_run(_operator(), EXEC_ARN)
    assert error.error == "States.ExceedToleratedFailureThreshold"
    assert error.counts["failed"] == 1
    assert error.counts["total"] == 4
    assert error.failed_items == [
        {
            "status": "FAILED",
            "error": "ValueError",
            "cause": "bad row",
            "input": {"Items": [{"id": "bad"}]},
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:dm-rows/DistributedMap:f1",
        }
    ]
    assert "threshold was exceeded" in str(error)
    assert "bad row" in str(error)


def test_a_failed_run_pushes_its_summary_for_failure_callbacks(aws):
    _seed_results(boto3.client("s3", region_name="us-east-1"), failed=True)
    context = _context()
    error = _failed_run(_operator(), EXEC_ARN, context)
    context["ti"].xcom_push.assert_any_call(key="summary", value=error.summary())
    pushed = error.summary()
    assert (pushed["status"], pushed["counts"]["failed"], pushed["map_run_arn"]) == ("FAILED", 1, MAP_RUN_ARN)
    assert pushed["failed_items"][0]["cause"] == "bad row"
    json.dumps(pushed)  # an XCom value


def test_a_failed_successor_executions_items_are_read_under_its_own_default_prefix(aws):
    # No output names the manifest of a FAILED execution: it is found under the default results prefix of the
    # execution actually run, here the task run's second one ("-n2"), not under the first one's.
    _seed_results(
        boto3.client("s3", region_name="us-east-1"), failed=True, results_key="distmap-results/etl/rows/x-n2"
    )
    error = _failed_run(_operator(results_uri=None), EXEC_ARN + "-n2")
    assert [item["cause"] for item in error.failed_items] == ["bad row"]


def test_a_stop_by_an_earlier_trys_kill_is_redriven_not_reported(aws):
    # Clearing a deferred task: try 1's trigger is cancelled (its on_kill stops the execution) while try 2
    # starts; when try 2 attached first, the execution it waits for ends ABORTED by try 1's kill.
    stopped = {
        "executionArn": EXEC_ARN,
        "status": "ABORTED",
        "error": "Airflow.TaskKilled",
        "cause": "The Airflow task waiting for this execution was killed. (try 1)",
        "redriveCount": 0,
        "input": json.dumps(_locations_input("in/rows.csv")),
    }
    event = {"status": "error", "execution_arn": EXEC_ARN, "reason": "aborted"}
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=stopped),
        mock.patch.object(DistributedMapHook, "redrive_execution") as redrive,
        pytest.raises(TaskDeferred) as deferred,
    ):
        _operator().execute_complete(_context(try_number=2), event)
    redrive.assert_called_once()
    trigger = deferred.value.trigger
    assert (trigger.execution_arn, trigger.min_redrive_count, trigger.try_number) == (EXEC_ARN, 1, 2)

    # A stop by this try's own kill (or a user's StopExecution) is reported, not undone.
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=stopped),
        mock.patch.object(DistributedMapHook, "latest_map_run_arn", return_value=None),
        mock.patch.object(DistributedMapHook, "redrive_execution") as redrive,
        pytest.raises(DistributedMapExecutionFailed, match="ABORTED"),
    ):
        _operator().execute_complete(_context(try_number=1), event)
    redrive.assert_not_called()


def test_a_stop_by_an_earlier_trys_kill_of_another_input_starts_this_trys_own_execution(aws):
    # Try 1 ran on day 1's object; the DAG changed to day 2's and the task was cleared. Try 2 attached to the
    # running execution (only its locations changed), then try 1's kill stopped it: a redrive reads day 1.
    first = _defer(_operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/2025-01-01.csv")), _context())
    changed = _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/2025-01-02.csv"))
    assert _defer(changed, _context(try_number=2)).execution_arn == first.execution_arn
    aws.stop_execution(executionArn=first.execution_arn)
    real_describe = DistributedMapHook.describe_execution

    def killed_by_try_1(hook, arn):  # moto keeps no error or cause of a stop
        described = real_describe(hook, arn)
        if arn == first.execution_arn:
            described["error"] = "Airflow.TaskKilled"
            described["cause"] = "The Airflow task waiting for this execution was killed. (try 1)"
        return described

    event = {"status": "error", "execution_arn": first.execution_arn, "reason": "aborted"}
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", killed_by_try_1),
        mock.patch.object(DistributedMapHook, "redrive_execution") as redrive,
        pytest.raises(TaskDeferred) as deferred,
    ):
        _operator(item_reader=CsvItemReader(uri=f"s3://{BUCKET}/in/2025-01-02.csv")).execute_complete(
            _context(try_number=2), event
        )
    redrive.assert_not_called()
    own = deferred.value.trigger.execution_arn
    assert own != first.execution_arn
    started_with = json.loads(aws.describe_execution(executionArn=own)["input"])
    assert started_with == _locations_input("in/2025-01-02.csv")


def test_an_event_without_an_execution_raises_a_clear_error():
    with pytest.raises(DistributedMapError, match=r"names no execution.*To fix this, clear the task"):
        _operator().execute_complete(_context(), {"status": "success"})
    with pytest.raises(DistributedMapError, match=r"without its trigger's event.*To fix this, clear"):
        _operator().execute_complete(_context(), None)


@pytest.mark.parametrize(
    ("message", "advice"),
    [
        ("An error occurred (ExecutionDoesNotExist)", "clearing the task starts the execution again"),
        ("An error occurred (AccessDeniedException)", "states:DescribeExecution permission"),
    ],
)
def test_api_error_event_raises_a_clear_error(message, advice):
    op = _operator()
    event = {"status": "error", "execution_arn": EXEC_ARN, "reason": "api_error", "message": message}
    with pytest.raises(DistributedMapError) as info:
        op.execute_complete(_context(), event)
    assert message in str(info.value)
    assert advice in str(info.value)


def test_a_deferred_wait_ends_at_the_deadline_with_the_same_advice_as_a_synchronous_one(aws):
    op = _operator(waiter_delay=7, waiter_max_attempts=3)
    with pytest.raises(TaskDeferred) as info:
        op.execute(_context())
    trigger = info.value.trigger
    assert trigger.deadline == pytest.approx(time.time() + 21, abs=5)
    assert info.value.timeout.total_seconds() > 21  # the trigger's event comes first
    event = {"status": "error", "execution_arn": EXEC_ARN, "reason": "deadline", "message": "still running"}
    with pytest.raises(
        DistributedMapTimeout, match=f"{EXEC_ARN} is still running after 21 s.*attaches to it"
    ):
        op.execute_complete(_context(), event)


def test_a_deferred_wait_ends_when_execution_timeout_runs_out_and_stops_the_execution(aws):
    # Airflow 3 does not apply execution_timeout while a task is deferred: the trigger's deadline does.
    op = _operator(execution_timeout=timedelta(seconds=30))
    context = _context()
    context["ti"].start_date = datetime.now(timezone.utc) - timedelta(seconds=10)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    timeout_at = info.value.kwargs["execution_timeout_at"]
    assert timeout_at == pytest.approx(time.time() + 20, abs=5)
    assert info.value.trigger.deadline == timeout_at  # before the waiter's 48 hours
    event = {"status": "error", "execution_arn": EXEC_ARN, "reason": "deadline", "message": "still running"}
    with (
        mock.patch.object(DistributedMapHook, "stop_execution") as stop,
        pytest.raises(AirflowTaskTimeout, match=r"execution_timeout \(0:00:30\) ran out\. It was stopped"),
    ):
        op.execute_complete(_context(), event, execution_timeout_at=time.time() - 1)
    stop.assert_called_once()
    assert stop.call_args.kwargs["error"] == "Airflow.TaskKilled"  # the retry redrives it
    assert stop.call_args.kwargs["cause"].endswith("(try 1)")
    op.on_kill()  # what Airflow calls after a timeout: the execution is not stopped twice
    stop.assert_called_once()


def test_a_deadline_event_says_it_was_execution_timeout_where_the_resume_arguments_are_lost(aws):
    # dag.test() resumes a deferred task with the event alone, without the kwargs given to defer().
    op = _operator(execution_timeout=timedelta(seconds=30))
    with pytest.raises(TaskDeferred) as info:
        op.execute(_context())
    assert info.value.trigger.execution_timeout_at == info.value.kwargs["execution_timeout_at"]
    event = {
        "status": "error",
        "execution_arn": EXEC_ARN,
        "reason": "deadline",
        "message": "still running",
        "execution_timeout_at": time.time() - 1,
    }
    with (
        mock.patch.object(DistributedMapHook, "stop_execution") as stop,
        pytest.raises(AirflowTaskTimeout, match=r"It was stopped"),
    ):
        op.execute_complete(_context(), event)
    stop.assert_called_once()


def test_an_execution_running_again_when_the_wait_ended_is_waited_for(aws):
    """Redriven from the console after the trigger fired (or a redrive that showed late): wait, not fail."""
    op = _operator(deferrable=False)
    running = {"status": "RUNNING", "redriveCount": 1, "executionArn": EXEC_ARN}
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=running),
        mock.patch.object(DistributedMapOperator, "_wait_then_complete", return_value={"ok": 1}) as wait,
    ):
        assert op.execute_complete(_context(), {"status": "success", "execution_arn": EXEC_ARN}) == {"ok": 1}
    assert wait.call_args.args[1:] == (EXEC_ARN, 1)


def test_retry_after_success_reuses_the_result_without_waiting(aws):
    op = _operator()
    reused = ExecutionStart(execution_arn=EXEC_ARN, started=False, status="SUCCEEDED")
    with (
        mock.patch.object(DistributedMapHook, "start_execution", return_value=reused),
        mock.patch.object(
            DistributedMapOperator, "_complete", return_value={"status": "SUCCEEDED"}
        ) as complete,
        mock.patch.object(DistributedMapOperator, "defer") as defer,
    ):
        assert op.execute(_context(try_number=2)) == {"status": "SUCCEEDED"}
    complete.assert_called_once()
    defer.assert_not_called()


def test_retry_after_failure_redrives(aws):
    op = _operator()
    failed = ExecutionStart(execution_arn=EXEC_ARN, started=False, status="FAILED", redrivable=True)
    with (
        mock.patch.object(DistributedMapHook, "start_execution", return_value=failed),
        mock.patch.object(DistributedMapHook, "redrive_execution") as redrive,
    ):
        trigger = _defer(op, _context(try_number=2))
    redrive.assert_called_once()
    assert redrive.call_args.args == (EXEC_ARN,)
    assert trigger.execution_arn == EXEC_ARN
    assert trigger.min_redrive_count == 1  # no earlier redrive in the description: this one makes it 1


def test_retry_after_a_try_died_right_after_redriving_waits_for_that_redrive(aws):
    op = _operator()
    still_shown_failed = ExecutionStart(
        execution_arn=EXEC_ARN,
        started=False,
        status="FAILED",
        redrivable=True,
        description={"redriveCount": 0},
    )
    not_redrivable = ClientError(
        {"Error": {"Code": "ExecutionNotRedrivable", "Message": "Execution is RUNNING"}}, "RedriveExecution"
    )
    with (
        mock.patch.object(DistributedMapHook, "start_execution", return_value=still_shown_failed),
        mock.patch.object(DistributedMapHook, "redrive_execution", side_effect=not_redrivable),
        mock.patch.object(
            DistributedMapHook, "describe_execution", return_value={"status": "RUNNING", "redriveCount": 1}
        ),
    ):
        trigger = _defer(op, _context(try_number=3))
    assert trigger.execution_arn == EXEC_ARN
    assert trigger.min_redrive_count == 1


def test_a_closed_execution_aws_will_not_redrive_is_followed_by_the_task_runs_next_execution(aws):
    op = _operator()
    closed = ExecutionStart(
        execution_arn=EXEC_ARN,
        started=False,
        status="FAILED",
        redrivable=False,
        description={"redriveStatusReason": "Execution redrivable period exceeded"},
    )
    also_closed = ExecutionStart(execution_arn=EXEC_ARN + "-n2", started=False, status="TIMED_OUT")
    started = ExecutionStart(execution_arn=EXEC_ARN + "-n3", started=True, status="RUNNING")
    with (
        mock.patch.object(
            DistributedMapHook, "start_execution", side_effect=[closed, also_closed, started]
        ) as start,
        mock.patch.object(DistributedMapHook, "redrive_execution") as redrive,
    ):
        trigger = _defer(op, _context(try_number=2))
    first_name = start.call_args_list[0].args[1]
    assert [c.args[1] for c in start.call_args_list] == [first_name, f"{first_name}-n2", f"{first_name}-n3"]
    redrive.assert_not_called()
    assert trigger.execution_arn == EXEC_ARN + "-n3"


class _ScriptedStepFunctions:
    """An aiobotocore Step Functions client: DescribeExecution answers from a script (the last repeats)."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.described = 0

    async def __aenter__(self) -> _ScriptedStepFunctions:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.described += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return {"executionArn": executionArn, **answer}  # type: ignore[dict-item]

    async def list_map_runs(self, executionArn: str) -> dict[str, Any]:
        return {"mapRuns": [{"mapRunArn": MAP_RUN_ARN, "executionArn": executionArn, "startDate": 1}]}

    async def describe_map_run(self, mapRunArn: str) -> dict[str, Any]:
        return _map_run(3, 0)


def _wait_synchronously(op: DistributedMapOperator, client: _ScriptedStepFunctions) -> mock.MagicMock:
    async def connect(self: DistributedMapHook) -> _ScriptedStepFunctions:
        return client

    with (
        mock.patch.object(DistributedMapHook, "get_async_conn", connect),
        mock.patch.object(DistributedMapOperator, "_complete", return_value={"ok": 1}) as complete,
    ):
        assert op._wait_then_complete(_context(), EXEC_ARN, 0) == {"ok": 1}
    return complete


def test_a_synchronous_wait_follows_the_triggers_rules_then_summarises(aws, capsys):
    # Right after StartExecution, DescribeExecution may not see the execution yet; throttling is waited out.
    not_yet = ClientError({"Error": {"Code": "ExecutionDoesNotExist", "Message": "?"}}, "DescribeExecution")
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "DescribeExecution"
    )
    client = _ScriptedStepFunctions(not_yet, throttled, {"status": "RUNNING"}, {"status": "SUCCEEDED"})
    with mock.patch("airflow_distmap.triggers.distributed_map.asyncio.sleep", new=mock.AsyncMock()):
        complete = _wait_synchronously(_operator(deferrable=False, waiter_delay=7), client)
    assert client.described == 4
    assert complete.call_args.args[1] == EXEC_ARN
    out = capsys.readouterr().out  # the trigger's progress lines reach the task's log
    assert f"Map Run started: {MAP_RUN_ARN}" in out
    assert "Map Run SUCCEEDED: 3 of 3 items done: 3 succeeded" in out


def test_a_synchronous_wait_gives_up_at_its_deadline_naming_the_execution(aws):
    op = _operator(deferrable=False, waiter_delay=1, waiter_max_attempts=1)
    with pytest.raises(
        DistributedMapTimeout, match=r"still running after 1 s\. .*clearing the task attaches"
    ):
        _wait_synchronously(op, _ScriptedStepFunctions({"status": "RUNNING"}))


def test_on_kill_stops_the_execution(aws):
    op = _operator()
    trigger = _defer(op, _context())
    op.on_kill()
    assert aws.describe_execution(executionArn=trigger.execution_arn)["status"] == "ABORTED"


def test_csv_operator_is_importable_from_this_module_lazily():
    import airflow_distmap.operators.distributed_map as module
    from airflow_distmap.operators.distributed_map import CsvRowProcessingOperator

    assert issubclass(CsvRowProcessingOperator, DistributedMapOperator)
    with pytest.raises(AttributeError):
        module.NoSuchOperator  # noqa: B018


FLAKY_HANDLER = '''
import os


def handler(event, context):
    """Fail items whose value is "bad" until the marker file exists (the "fix")."""
    if event["value"] == "bad" and not os.path.exists(os.environ["FLAKY_FIXED_MARKER"]):
        raise ValueError("bad item " + str(event["index"]))
    return {"index": event["index"], "doubled": event["value"] * 2}
'''


@contextlib.contextmanager
def _flaky_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, items: list[str], functions: tuple[str, ...] = ("flaky",)
) -> Iterator[Any]:
    """The local endpoint serving :data:`FLAKY_HANDLER` as each of ``functions`` (fixed once
    ``tmp_path/fixed`` exists), with ``items`` in ``s3://<BUCKET>/in/items.json``; ``aws_local`` points at
    it."""
    from airflow_distmap.local import LocalEndpoint

    for function in functions:
        (tmp_path / "functions" / function).mkdir(parents=True)
        (tmp_path / "functions" / function / "handler.py").write_text(FLAKY_HANDLER)
    monkeypatch.setenv("FLAKY_FIXED_MARKER", str(tmp_path / "fixed"))
    with LocalEndpoint(functions_dir=tmp_path / "functions", processes=1) as endpoint:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_LOCAL", endpoint.airflow_connection_uri())
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="in/items.json", Body=json.dumps(items).encode())
        yield endpoint


def _local_json_operator(function_name: str, **kwargs: Any) -> DistributedMapOperator:
    """A synchronous operator on ``aws_local`` over ``in/items.json``, one indexed item per child."""
    from airflow_distmap.definitions import JsonItemReader

    return _operator(
        aws_conn_id="aws_local",
        region_name=None,
        deferrable=False,
        item_reader=JsonItemReader(uri=f"s3://{BUCKET}/in/items.json"),
        item_selector={"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value"},
        item_batcher=None,
        function_name=function_name,
        **kwargs,
    )


@pytest.mark.parametrize("results_uri", [f"s3://{BUCKET}/results", None])
def test_failure_then_retry_redrives_on_the_local_endpoint(tmp_path, monkeypatch, results_uri):
    """End to end on the local endpoint, waiting synchronously: a failed run raises with its failed items,
    and the retry redrives the same execution instead of starting a new one."""
    marker = tmp_path / "fixed"
    items = ["a", "bad", "c", "d"]
    with _flaky_endpoint(tmp_path, monkeypatch, items) as endpoint:

        def operator() -> DistributedMapOperator:
            return _local_json_operator("flaky", results_uri=results_uri)

        with pytest.raises(DistributedMapExecutionFailed) as info:
            operator().execute(_context(try_number=1))
        failure = info.value
        assert failure.status == "FAILED"
        assert failure.error == "States.ExceedToleratedFailureThreshold"
        assert failure.counts["failed"] == 1
        assert failure.counts["total"] == 4
        assert [item["input"] for item in failure.failed_items] == [{"index": 1, "value": "bad"}]
        assert failure.failed_items[0]["error"] == "ValueError"
        assert failure.manifest_uri is not None
        assert failure.manifest_uri.endswith("/manifest.json")
        assert f"airflow-distmap results {failure.manifest_uri}" in str(failure)

        marker.write_text("fixed")
        summary = operator().execute(_context(try_number=2))

        assert summary["status"] == "SUCCEEDED"
        assert summary["execution_arn"] == failure.execution_arn  # redriven, not restarted
        assert summary["counts"]["succeeded"] == 4
        assert summary["counts"]["failed"] == 0
        sfn = endpoint.client("stepfunctions")
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
        assert sfn.describe_execution(executionArn=failure.execution_arn)["redriveCount"] == 1


@pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
def test_runs_of_a_task_share_one_state_machine_and_export_under_their_own_prefix(
    tmp_path, monkeypatch, language
):
    from airflow_distmap.local import LocalEndpoint

    parameters = "Arguments" if language == "JSONata" else "Parameters"
    definition = {
        "QueryLanguage": language,
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    parameters: {"Bucket": BUCKET, "Key": "in/items.json"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }
    with LocalEndpoint(functions_dir=tmp_path, processes=1) as endpoint:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_LOCAL", endpoint.airflow_connection_uri())
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="in/items.json", Body=b"[1, 2, 3]")
        summaries = [
            _operator(
                aws_conn_id="aws_local",
                region_name=None,
                deferrable=False,
                definition=definition,
                state_machine_name=None,
                results_uri=None,
                function_name=None,
                item_reader=None,
                item_batcher=None,
            ).execute(_context(run_id=run_id))
            for run_id in ("scheduled__2025-01-01T00:00:00+00:00", "scheduled__2025-01-02T00:00:00+00:00")
        ]
        assert len(endpoint.client("stepfunctions").list_state_machines()["stateMachines"]) == 1
    for summary in summaries:
        name = summary["execution_arn"].rsplit(":", 1)[-1]
        map_run_id = summary["map_run_arn"].rsplit(":", 1)[-1]
        assert (
            summary["manifest_uri"]
            == f"s3://{BUCKET}/distmap-results/etl/rows/{name}/{map_run_id}/manifest.json"
        )
        assert summary["counts"]["succeeded"] == 3


def test_a_retry_after_the_definition_changed_starts_a_new_execution_as_a_redrive_would_run_the_old_one(
    tmp_path, monkeypatch
):
    """AWS redrives an execution with the definition it started with, so under a user's state machine name a
    retry with a changed definition (here, another function) runs the task run's next execution instead; a
    later retry with that same definition redrives that one."""

    marker = tmp_path / "fixed"
    with _flaky_endpoint(tmp_path, monkeypatch, ["a", "bad"], ("flaky", "flaky2")) as endpoint:

        def operator(function_name: str) -> DistributedMapOperator:
            return _local_json_operator(function_name, state_machine_name="users-machine")

        with pytest.raises(DistributedMapExecutionFailed) as first:
            operator("flaky").execute(_context(try_number=1))
        with pytest.raises(DistributedMapExecutionFailed) as second:
            operator("flaky2").execute(_context(try_number=2))
        assert second.value.execution_arn == f"{first.value.execution_arn}-n2"
        marker.write_text("fixed")
        summary = operator("flaky2").execute(_context(try_number=3))

        assert summary["status"] == "SUCCEEDED"
        assert summary["execution_arn"] == second.value.execution_arn  # redriven: same definition
        sfn = endpoint.client("stepfunctions")
        assert sfn.describe_execution(executionArn=first.value.execution_arn)["redriveCount"] == 0
        assert sfn.describe_execution(executionArn=second.value.execution_arn)["redriveCount"] == 1
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 2


def test_a_retry_after_the_definition_changed_under_a_default_name_logs_the_execution_it_leaves(
    tmp_path, monkeypatch, capsys
):
    """Under a default name the changed definition has a state machine of its own: the retry's execution runs
    there from the start, and the log names the failed one it leaves (a redrive would run the old one)."""

    with _flaky_endpoint(tmp_path, monkeypatch, ["a", "bad"], ("flaky", "flaky2")):

        def operator(function_name: str) -> DistributedMapOperator:
            return _local_json_operator(function_name, state_machine_name=None)

        with pytest.raises(DistributedMapExecutionFailed) as first:
            operator("flaky").execute(_context(try_number=1))
        (tmp_path / "fixed").write_text("fixed")
        capsys.readouterr()
        summary = operator("flaky2").execute(_context(try_number=2))
        out = capsys.readouterr().out

    assert summary["status"] == "SUCCEEDED"
    assert (summary["counts"]["total"], summary["counts"]["succeeded"]) == (2, 2)
    assert summary["execution_arn"] != first.value.execution_arn
    assert f"Execution {first.value.execution_arn} of this task run ended FAILED" in out
    assert "it starts an execution of its own on the new definition" in out


def test_an_execution_started_on_another_tasks_definition_is_stopped_and_started_again(tmp_path, monkeypatch):
    """Runs that share a state machine name but not a definition (a backfill's dates) update it in turn: when
    another run's update lands between this task's deploy and its start, that execution is not this task's
    work. It is stopped, the definition deployed again, and the task run's next execution runs this one."""
    from airflow_distmap.definitions import JsonItemReader

    with _flaky_endpoint(tmp_path, monkeypatch, ["a", "b"], ("flaky", "flaky2")) as endpoint:
        sfn = endpoint.client("stepfunctions")

        def operator(function_name: str, run_id: str) -> DistributedMapOperator:
            return _operator(
                aws_conn_id="aws_local",
                region_name=None,
                deferrable=False,
                state_machine_name="shared-machine",
                results_uri=f"s3://{BUCKET}/results/{run_id}",
                item_reader=JsonItemReader(uri=f"s3://{BUCKET}/in/items.json"),
                item_selector={"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value"},
                item_batcher=None,
                function_name=function_name,
            )

        other = operator("flaky2", "other")
        other_definition = json.dumps(other._deployable_definition(_context(run_id="other")))
        real_start = DistributedMapHook.start_execution
        starts: list[str] = []

        def start_after_another_deploy(hook, machine_arn, name, execution_input, **options):
            if not starts:  # the other run deploys its definition just before this task starts
                sfn.update_state_machine(stateMachineArn=machine_arn, definition=other_definition)
            started = real_start(hook, machine_arn, name, execution_input, **options)
            starts.append(started.execution_arn)
            return started

        with mock.patch.object(DistributedMapHook, "start_execution", start_after_another_deploy):
            summary = operator("flaky", RUN_ID).execute(_context())

        raced, ran = starts
        assert ran == f"{raced}-n2"
        assert summary["execution_arn"] == ran
        assert summary["status"] == "SUCCEEDED"
        stopped = sfn.describe_execution(executionArn=raced)
        assert (stopped["status"], stopped["error"]) == ("ABORTED", "airflow_distmap.DefinitionRace")
        ran_definition = sfn.describe_state_machine_for_execution(executionArn=ran)["definition"]
        assert "flaky2" not in ran_definition
        assert "flaky" in ran_definition
        assert (summary["counts"]["succeeded"], summary["counts"]["failed"]) == (2, 0)

        # A retry (the task cleared) walks past the stopped execution to the one that ran its definition.
        again = operator("flaky", RUN_ID).execute(_context(try_number=2))
        assert again["execution_arn"] == ran
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 2


def test_a_task_that_keeps_losing_the_deploy_race_waits_between_starts_then_fails_naming_the_fix(aws):
    with (
        mock.patch.object(DistributedMapHook, "started_with_other_definition", return_value=True),
        mock.patch.object(distributed_map_module.time, "sleep") as sleep,
        pytest.raises(DefinitionRaceError, match=r"5 times in a row\. To fix this, leave state_machine_name"),
    ):
        _operator().execute(_context())
    assert [c.args[0] for c in sleep.call_args_list] == list(distributed_map_module.RACED_START_WAITS)
    machine = aws.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    executions = aws.list_executions(stateMachineArn=machine)["executions"]
    assert sorted(e["status"] for e in executions) == ["ABORTED"] * 5


@pytest.mark.parametrize("state_machine_name", [None, "dm-rows"])
def test_an_execution_of_another_definition_is_refused_only_under_a_name_of_yours(aws, state_machine_name):
    """Under a default name the definition is part of the name, so nothing is read; under a name of yours, an
    execution (just started, or SUCCEEDED in an earlier try) of another definition is not this task's work."""
    op = _operator(state_machine_name=state_machine_name)
    arn = f"{MACHINE_ARN.replace('stateMachine', 'execution')}:run"
    started = ExecutionStart(arn, started=True, status="RUNNING")
    succeeded = ExecutionStart(arn, started=False, status="SUCCEEDED")
    with mock.patch.object(DistributedMapHook, "started_with_other_definition", return_value=True) as check:
        reasons = [op._start_refusal(start, {}) for start in (started, succeeded)]
    if state_machine_name is None:
        assert reasons == [None, None]
        check.assert_not_called()
    else:
        assert reasons == [
            "it started on another definition of the state machine",
            "it ran another definition of the state machine",
        ]


def test_a_failed_run_of_a_definition_with_its_own_result_writer_names_its_manifest(tmp_path, monkeypatch):
    from airflow_distmap.definitions import JsonItemReader

    with _flaky_endpoint(tmp_path, monkeypatch, ["bad", "a"]) as endpoint:
        s3 = endpoint.client("s3")
        call = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "flaky", "Payload.$": "$"},
            "End": True,
        }
        state = _map_state({"Call": call}, JsonItemReader(uri=f"s3://{BUCKET}/in/items.json").to_asl())
        state["ItemSelector"] = {"index.$": "$$.Map.Item.Index", "value.$": "$$.Map.Item.Value"}
        state["MaxConcurrency"] = 1
        state["ResultWriter"] = {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": BUCKET, "Prefix": "own-writer"},
        }
        op = _operator(
            definition={"StartAt": "DistributedMap", "States": {"DistributedMap": state}},
            aws_conn_id="aws_local",
            region_name=None,
            deferrable=False,
            results_uri=None,
        )
        with pytest.raises(DistributedMapExecutionFailed) as failed:
            op.execute(_context())
        uri = failed.value.manifest_uri
        assert uri is not None
        assert uri.startswith(f"s3://{BUCKET}/own-writer/")
        assert uri.endswith("/manifest.json")
        s3.head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
        assert uri in str(failed.value)


def test_item_batcher_and_item_processor_are_templated():
    from airflow_distmap.definitions import LambdaItemProcessor

    batcher = ItemBatcher(max_items_per_batch=10, batch_input={"day": "{{ ds }}", "tag.$": "$.tag"})
    processor = LambdaItemProcessor(
        function_name="{{ params.fn }}", payload={"day": "{{ ds }}", "item.$": "$"}
    )
    op = _operator(function_name=None, item_processor=processor, item_batcher=batcher)
    op.render_template_fields({"ds": "2025-01-01", "params": {"fn": "process-row"}})
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert state["ItemBatcher"] == {
        "MaxItemsPerBatch": 10,
        "BatchInput": {"day": "2025-01-01", "tag.$": "$.tag"},
    }
    parameters = state["ItemProcessor"]["States"]["InvokeFunction"]["Parameters"]
    assert parameters["FunctionName"] == "process-row"
    assert parameters["Payload"] == {"day": "2025-01-01", "item.$": "$"}
    assert batcher.batch_input == {"day": "{{ ds }}", "tag.$": "$.tag"}  # the DAG's objects are untouched
    assert processor.function_name == "{{ params.fn }}"


def test_an_asl_item_processor_and_item_batcher_are_templated_and_keep_jsonata():
    call = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {"FunctionName": "{{ params.fn }}", "Payload": "{% $states.input %}"},
        "End": True,
    }
    processor = {"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": call}}
    batcher = {"MaxItemsPerBatch": 5, "BatchInput": {"day": "{{ ds }}"}}
    op = _operator(function_name=None, item_processor=processor, item_batcher=batcher)
    op.render_template_fields({"ds": "2025-01-01", "params": {"fn": "process-row"}})
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert state["ItemProcessor"]["States"]["Call"]["Arguments"] == {
        "FunctionName": "process-row",
        "Payload": "{% $states.input %}",
    }
    assert state["ItemBatcher"] == {"MaxItemsPerBatch": 5, "BatchInput": {"day": "2025-01-01"}}


@pytest.mark.parametrize(
    ("argument", "value", "fix"),
    [
        (
            "item_reader",
            f"s3://{BUCKET}/in/items.json",
            f"pass JsonItemReader(uri='s3://{BUCKET}/in/items.json')",
        ),
        ("item_reader", f"s3://{BUCKET}/in/rows.csv", f"pass CsvItemReader(uri='s3://{BUCKET}/in/rows.csv')"),
        ("item_batcher", 10, "pass ItemBatcher(max_items_per_batch=10)"),
        ("item_processor", "process-row", "pass function_name='process-row'"),
    ],
)
def test_a_building_block_of_the_wrong_type_is_refused_when_the_dag_is_parsed(argument, value, fix):
    arguments = {argument: value, **({"function_name": None} if argument == "item_processor" else {})}
    with pytest.raises(InvalidTaskArgumentsError) as refused:
        _operator(**arguments)
    assert str(refused.value).startswith(f"{argument}={value!r} is a")
    assert f"To fix this, {fix}" in str(refused.value)


def test_a_templated_item_reader_is_checked_once_rendered(aws):
    op = _operator(item_reader="{{ params.uri }}")  # it could render to a reader: accepted at parse time
    op.render_template_fields({"params": {"uri": f"s3://{BUCKET}/in/rows.csv"}})
    with pytest.raises(
        InvalidTaskArgumentsError, match=r"is a str, not an item reader\. To fix this, pass Csv"
    ):
        op.execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


NUMBER_TEMPLATES = {
    "max_concurrency": "{{ params.c }}",
    "tolerated_failure_count": "{{ params.n }}",
    "tolerated_failure_percentage": "{{ params.p }}",
}


def test_concurrency_and_tolerances_are_templated(aws):
    assert set(NUMBER_TEMPLATES) <= set(DistributedMapOperator.template_fields)
    op = _operator(**NUMBER_TEMPLATES)  # accepted when the DAG is parsed
    op.render_template_fields({"params": {"c": 5, "n": 2, "p": 2.5}})
    assert (op.max_concurrency, op.tolerated_failure_count, op.tolerated_failure_percentage) == (5, 2, 2.5)
    state = op.build_definition(_context())["States"]["DistributedMap"]
    assert (state["MaxConcurrency"], state["ToleratedFailureCount"], state["ToleratedFailurePercentage"]) == (
        5,
        2,
        2.5,
    )
    unset = _operator(**NUMBER_TEMPLATES)
    unset.render_template_fields({"params": {"c": None, "n": "", "p": None}})  # optional params left unset
    assert (unset.max_concurrency, unset.tolerated_failure_count, unset.tolerated_failure_percentage) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"c": 20000}, "max_concurrency=20000 is invalid"),
        ({"n": "some"}, "tolerated_failure_count='some' is invalid"),
        ({"p": 150}, "tolerated_failure_percentage=150 is invalid"),
    ],
)
def test_a_number_rendered_to_a_bad_value_fails_before_anything_is_created(aws, params, message):
    op = _operator(**NUMBER_TEMPLATES)
    op.render_template_fields({"params": {"c": 5, "n": 0, "p": 0, **params}})
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        op.execute(_context())
    assert aws.list_state_machines()["stateMachines"] == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_concurrency": "20000"}, "max_concurrency=20000 is invalid"),
        ({"tolerated_failure_count": "some"}, "tolerated_failure_count='some' is invalid"),
        ({"tolerated_failure_percentage": 150}, "tolerated_failure_percentage=150 is invalid"),
    ],
)
def test_literal_bad_numbers_are_still_refused_when_the_dag_is_parsed(arguments, message):
    with pytest.raises(InvalidTaskArgumentsError, match=message):
        _operator(**arguments)


def test_the_summary_log_says_counts_are_items_and_how_to_see_row_errors(aws, capsys):
    key = _seed_results(boto3.client("s3", region_name="us-east-1"))
    described = {
        "executionArn": EXEC_ARN,
        "stateMachineArn": MACHINE_ARN,
        "name": "x",
        "status": "SUCCEEDED",
        "output": json.dumps(
            {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": key}}
        ),
    }
    with (
        mock.patch.object(DistributedMapHook, "describe_execution", return_value=described),
        mock.patch.object(DistributedMapHook, "describe_map_run", return_value=_map_run(3, 0)),
    ):
        _operator().execute_complete(_context(), {"status": "success", "execution_arn": EXEC_ARN})
    out = capsys.readouterr().out
    assert "counts are Map Run items (by child execution status)" in out
    assert f"To see row errors, run 'airflow-distmap results s3://{BUCKET}/{key}'" in out


@pytest.mark.parametrize(
    ("rendered", "number"),
    [("5", 5), (" 7 ", 7), ("5.0", 5), ("1e3", 1000), ("2.5", 2.5), ("None", None), ("", None), ("x", "x")],
)
def test_a_number_rendered_as_text_is_that_number(rendered: str, number: object) -> None:
    from airflow_distmap.operators.distributed_map import rendered_number

    assert rendered_number(rendered) == number
    assert type(rendered_number(rendered)) is type(number)
