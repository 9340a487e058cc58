from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from botocore.config import Config
from moto import mock_aws

from airflow_distmap.exceptions import ExecutionNameConflict, StateMachineTypeMismatch
from airflow_distmap.hooks.distributed_map import DistributedMapHook, execution_arn_for, inputs_differ_only_in
from airflow_distmap.hooks.s3 import DistributedMapS3Hook
from airflow_distmap.naming import input_scoped_name

ROLE = "arn:aws:iam::123456789012:role/sfn-role"
OTHER_ROLE = "arn:aws:iam::123456789012:role/other-role"
DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


@pytest.fixture
def hook():
    with mock_aws():
        yield DistributedMapHook(aws_conn_id=None, region_name="us-east-1")


def _spy(hook, *names):
    return {name: mock.patch.object(hook.conn, name, wraps=getattr(hook.conn, name)) for name in names}


def test_create_when_missing(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    assert arn == "arn:aws:states:us-east-1:123456789012:stateMachine:dm-test"
    described = hook.conn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == DEFINITION
    assert described["roleArn"] == ROLE


def test_unchanged_redeploy_makes_no_write_call(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    with (
        mock.patch.object(hook.conn, "create_state_machine", wraps=hook.conn.create_state_machine) as create,
        mock.patch.object(hook.conn, "update_state_machine", wraps=hook.conn.update_state_machine) as update,
    ):
        # Same definition as JSON text with other formatting and key order: still unchanged.
        text = json.dumps({"States": DEFINITION["States"], "StartAt": "P"}, indent=4)
        assert hook.create_or_update_state_machine("dm-test", text, ROLE) == arn
        assert hook.create_or_update_state_machine("dm-test", DEFINITION, None) == arn
    create.assert_not_called()
    update.assert_not_called()


def test_changed_definition_is_updated(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    changed = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}
    with mock.patch.object(hook.conn, "update_state_machine", wraps=hook.conn.update_state_machine) as update:
        assert hook.create_or_update_state_machine("dm-test", changed, ROLE) == arn
    update.assert_called_once()
    assert set(update.call_args.kwargs) == {"stateMachineArn", "definition"}
    assert json.loads(hook.conn.describe_state_machine(stateMachineArn=arn)["definition"]) == changed


def test_logging_and_tracing_as_aws_describes_them_are_not_a_change(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    described = hook.conn.describe_state_machine(stateMachineArn=arn)
    # AWS describes the settings with their defaults filled in; the task asks with only some of them.
    described["loggingConfiguration"] = {"level": "OFF", "includeExecutionData": False}
    described.pop("tracingConfiguration", None)
    with (
        mock.patch.object(hook.conn, "describe_state_machine", return_value=described),
        mock.patch.object(hook.conn, "update_state_machine") as update,
    ):
        hook.create_or_update_state_machine(
            "dm-test",
            DEFINITION,
            ROLE,
            logging_configuration={"level": "OFF"},
            tracing_configuration={"enabled": False},
        )
        update.assert_not_called()
        traced = {"enabled": True}
        hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE, tracing_configuration=traced)
        assert update.call_args.kwargs["tracingConfiguration"] == {"enabled": True}
        update.reset_mock()
        group = {"cloudWatchLogsLogGroup": {"logGroupArn": "arn:aws:logs:us-east-1:1:log-group:g:*"}}
        logged = {"level": "ERROR", "destinations": [group]}
        hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE, logging_configuration=logged)
        assert update.call_args.kwargs["loggingConfiguration"] == logged


def test_changed_role_is_updated(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    hook.create_or_update_state_machine("dm-test", DEFINITION, OTHER_ROLE)
    assert hook.conn.describe_state_machine(stateMachineArn=arn)["roleArn"] == OTHER_ROLE


def test_missing_machine_without_role_is_a_clear_error(hook):
    with pytest.raises(ValueError, match="role_arn"):
        hook.create_or_update_state_machine("dm-test", DEFINITION, None)


def test_type_change_is_refused(hook):
    hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    with pytest.raises(StateMachineTypeMismatch, match="cannot be changed"):
        hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE, type="EXPRESS")


def test_start_then_attach_to_running_execution(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    first = hook.start_execution(arn, "run-1", {"a": 1})
    assert first.started
    assert first.execution_arn == execution_arn_for(arn, "run-1")
    # A retry computes the same name and input: it gets the same execution, not a second one.
    again = hook.start_execution(arn, "run-1", '{"a": 1}')
    assert again.execution_arn == first.execution_arn
    assert again.status == "RUNNING"
    executions = hook.conn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["name"] for e in executions] == ["run-1"]


def test_an_idempotent_start_answer_for_an_earlier_trys_execution_is_an_attach(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    first = hook.start_execution(arn, "run-1", {"a": 1})
    earlier = datetime.now(timezone.utc) - timedelta(seconds=9)  # by a try killed seconds ago
    answer = {"executionArn": first.execution_arn, "startDate": earlier}
    with mock.patch.object(hook.conn, "start_execution", return_value=answer):
        again = hook.start_execution(arn, "run-1", {"a": 1})
    assert (again.execution_arn, again.started, again.attached) == (first.execution_arn, False, True)


def test_attach_when_start_raises_already_exists_for_a_running_execution(hook):
    # moto answers idempotently; AWS may raise ExecutionAlreadyExists under eventual consistency.
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    hook.start_execution(arn, "run-1", {"a": 1})
    error = hook.conn.exceptions.ExecutionAlreadyExists(
        {"Error": {"Code": "ExecutionAlreadyExists", "Message": "exists"}}, "StartExecution"
    )
    with mock.patch.object(hook.conn, "start_execution", side_effect=error):
        attached = hook.start_execution(arn, "run-1", {"a": 1})
    assert attached.attached
    assert attached.description is not None
    assert attached.description["status"] == "RUNNING"


def test_running_execution_with_other_input_is_a_conflict(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    hook.start_execution(arn, "run-1", {"a": 1})
    with pytest.raises(ExecutionNameConflict, match="different input"):
        hook.start_execution(arn, "run-1", {"a": 2})


def test_a_running_execution_differing_only_in_given_keys_is_attached_to(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    first = hook.start_execution(arn, "run-1", {"a": 1, "where": "old"})
    with mock.patch.object(hook.log, "warning") as warning:
        attached = hook.start_execution(arn, "run-1", {"a": 1, "where": "new"}, attach_despite=("where",))
    assert (attached.execution_arn, attached.started, attached.attached) == (first.execution_arn, False, True)
    assert warning.call_args.args[2] == "where"
    with pytest.raises(ExecutionNameConflict, match="different input"):  # another difference still conflicts
        hook.start_execution(arn, "run-1", {"a": 2, "where": "new"}, attach_despite=("where",))
    assert len(hook.conn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_closed_execution_is_reported_not_restarted(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    started = hook.start_execution(arn, "run-1", {"a": 1})
    hook.stop_execution(started.execution_arn, error="Airflow.Killed", cause="task killed")
    closed = hook.start_execution(arn, "run-1", {"a": 1})
    assert not closed.started
    assert not closed.attached
    assert closed.status == "ABORTED"
    assert hook.describe_execution(started.execution_arn)["status"] == "ABORTED"


def test_closed_execution_with_another_input_starts_a_new_execution_for_that_input(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    first = hook.start_execution(arn, "run-1", {"etag": "old"})
    hook.stop_execution(first.execution_arn)
    changed = hook.start_execution(arn, "run-1", {"etag": "new"})
    assert changed.started
    assert changed.execution_arn == execution_arn_for(arn, input_scoped_name("run-1", '{"etag":"new"}'))
    assert json.loads(hook.describe_execution(changed.execution_arn)["input"]) == {"etag": "new"}
    # A retry with the new input finds that execution; the old one is left as it was.
    again = hook.start_execution(arn, "run-1", {"etag": "new"})
    assert again.execution_arn == changed.execution_arn
    assert hook.describe_execution(first.execution_arn)["status"] == "ABORTED"


def test_started_with_other_definition_compares_parsed_definitions_and_says_no_when_it_cannot_read(hook):
    from botocore.exceptions import ClientError

    arn = "arn:aws:states:us-east-1:123456789012:execution:dm-test:run-1"
    ran = {"definition": json.dumps(DEFINITION, indent=2)}
    with mock.patch.object(hook.conn, "describe_state_machine_for_execution", return_value=ran) as describe:
        assert not hook.started_with_other_definition(arn, DEFINITION)
        assert hook.started_with_other_definition(arn, {**DEFINITION, "Comment": "changed"})
    assert describe.call_args.kwargs == {"executionArn": arn}
    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "DescribeStateMachineForExecution")
    with (
        mock.patch.object(hook.conn, "describe_state_machine_for_execution", side_effect=denied),
        mock.patch.object(hook.log, "warning") as warning,
    ):
        assert not hook.started_with_other_definition(arn, {**DEFINITION, "Comment": "changed"})
    assert warning.call_args.args[0].startswith("Could not read the definition execution")


def test_redrive_and_map_run_calls_pass_aws_parameters(hook):
    with (
        mock.patch.object(hook.conn, "redrive_execution") as redrive,
        mock.patch.object(hook.conn, "describe_map_run", return_value={"mapRunArn": "m"}) as describe,
        mock.patch.object(hook.conn, "get_paginator") as paginator,
    ):
        paginator.return_value.paginate.return_value = [
            {"mapRuns": [{"mapRunArn": "m1", "startDate": 1}]},
            {"mapRuns": [{"mapRunArn": "m2", "startDate": 2}]},
        ]
        hook.redrive_execution("arn:exec", client_token="t" * 80)
        assert hook.describe_map_run("m") == {"mapRunArn": "m"}
        assert [run["mapRunArn"] for run in hook.list_map_runs("arn:exec")] == ["m1", "m2"]
        assert hook.latest_map_run_arn("arn:exec") == "m2"
    redrive.assert_called_once_with(executionArn="arn:exec", clientToken="t" * 64)
    describe.assert_called_once_with(mapRunArn="m")


def test_execution_arn_for_rejects_non_state_machine_arns():
    with pytest.raises(ValueError, match="stateMachine"):
        execution_arn_for("arn:aws:lambda:us-east-1:1:function:f", "x")


def test_find_state_machine_describes_by_arn_without_listing(hook):
    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    with mock.patch.object(hook.conn, "get_paginator") as paginator:
        assert hook.find_state_machine("dm-test") == arn
        assert hook.find_state_machine("missing") is None
    paginator.assert_not_called()


def test_find_state_machine_lists_when_the_account_is_unknown(hook):
    from botocore.exceptions import NoCredentialsError

    arn = hook.create_or_update_state_machine("dm-test", DEFINITION, ROLE)
    fresh = DistributedMapHook(aws_conn_id=None, region_name="us-east-1")
    with mock.patch.object(
        DistributedMapHook, "account_id", new_callable=mock.PropertyMock, side_effect=NoCredentialsError()
    ):
        assert fresh.find_state_machine("dm-test") == arn
        assert fresh.find_state_machine("missing") is None


@pytest.mark.parametrize("hook_class", [DistributedMapHook, DistributedMapS3Hook])
def test_calls_retry_throttling_with_backoff_unless_retries_are_configured(hook_class):
    with mock_aws():
        client = hook_class(aws_conn_id=None, region_name="us-east-1").get_conn()
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}
        own = Config(retries={"mode": "adaptive", "total_max_attempts": 3}, connect_timeout=7)
        client = hook_class(aws_conn_id=None, region_name="us-east-1", config=own).get_conn()
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
        timeout_only = Config(connect_timeout=7)
        client = hook_class(aws_conn_id=None, region_name="us-east-1", config=timeout_only).get_conn()
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}
        assert client.meta.config.connect_timeout == 7


def test_inputs_differ_only_in_the_given_keys_or_not_at_all() -> None:
    locations = ("airflow_distmap",)
    day_one = {"a": 1, "airflow_distmap": {"ItemReader": {"Key": "d1"}}}
    day_two = {"a": 1, "airflow_distmap": {"ItemReader": {"Key": "d2"}}}
    assert inputs_differ_only_in(day_one, day_two, locations)
    assert not inputs_differ_only_in(day_one, day_one, locations)  # no difference at all
    assert not inputs_differ_only_in(day_one, {**day_two, "a": 2}, locations)  # another difference too
    assert not inputs_differ_only_in({"input": "x", "rerun": 1}, {"input": "x"}, locations)  # a CSV re-run


@pytest.mark.parametrize(
    ("answer", "codes"),
    [
        ({"result": "OK", "diagnostics": [{"severity": "WARNING", "code": "NO_DOLLAR"}]}, ["NO_DOLLAR"]),
        (  # warnings filled the page: the refusal still shows, as an error
            {
                "result": "FAIL",
                "diagnostics": [{"severity": "WARNING", "code": "NO_DOLLAR"}],
                "truncated": True,
            },
            ["NO_DOLLAR", "UNLISTED"],
        ),
    ],
)
def test_definition_diagnostics_asks_for_warnings_and_trusts_the_result(hook, answer, codes):
    with mock.patch.object(type(hook), "conn", new_callable=mock.PropertyMock) as conn:
        conn.return_value.validate_state_machine_definition.return_value = answer
        found = hook.definition_diagnostics({"StartAt": "P", "States": {}})
    assert conn.return_value.validate_state_machine_definition.call_args.kwargs["severity"] == "WARNING"
    assert [d["code"] for d in found] == codes
    assert found[-1]["severity"] == ("ERROR" if answer["result"] == "FAIL" else "WARNING")
