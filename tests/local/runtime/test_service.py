"""The Step Functions API: shapes, errors, idempotency (no Map Run involved beyond trivial ones)."""

from __future__ import annotations

import json
import threading

import pytest

from airflow_distmap.local.errors import ServiceError
from airflow_distmap.local.runtime import StepFunctionsService
from tests.local.runtime.helpers import ROLE_ARN, Harness, distributed_map, sleep_forever

PASS_MACHINE = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


def error_of(harness: Harness, action: str, **request: object) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        harness.call(action, **request)
    return caught.value


def test_unknown_operation(harness: Harness) -> None:
    assert error_of(harness, "FlyToTheMoon").code == "UnknownOperationException"
    unsupported = error_of(harness, "CreateActivity", name="a")
    assert (unsupported.code, unsupported.message.split(". To fix")[0]) == (
        "UnknownOperationException",
        "The Step Functions operation CreateActivity is not supported by the local endpoint",
    )


def test_a_raw_request_missing_or_mistyping_a_required_member(harness: Harness) -> None:
    missing = error_of(harness, "DescribeExecution")
    assert (missing.code, missing.message) == (
        "ValidationException",
        "1 validation error detected: Value null at 'executionArn' failed to satisfy constraint: Member must "
        "not be null",
    )
    assert error_of(harness, "DescribeExecution", executionArn=5).code == "SerializationException"
    assert error_of(harness, "CreateStateMachine", name="m", definition="{}").code == "ValidationException"


def test_create_state_machine_rules(harness: Harness) -> None:
    definition = json.dumps(PASS_MACHINE)
    assert (
        error_of(harness, "CreateStateMachine", name="bad name", definition=definition, roleArn=ROLE_ARN).code
        == "InvalidName"
    )
    too_long = error_of(harness, "CreateStateMachine", name="x" * 81, definition=definition, roleArn=ROLE_ARN)
    assert too_long.code == "ValidationException"  # a model constraint, as AWS reports it
    assert too_long.message.endswith("Member must have length less than or equal to 80")
    assert (
        error_of(harness, "CreateStateMachine", name="a\uffff", definition=definition, roleArn=ROLE_ARN).code
        == "InvalidName"
    )
    assert (
        error_of(harness, "CreateStateMachine", name="ok", definition=definition, roleArn="not-an-arn").code
        == "InvalidArn"
    )
    invalid = error_of(
        harness,
        "CreateStateMachine",
        name="ok",
        definition='{"StartAt": "Nope", "States": {}}',
        roleArn=ROLE_ARN,
    )
    assert invalid.code == "InvalidDefinition"
    assert invalid.message.startswith("Invalid State Machine Definition: ")

    first = harness.call("CreateStateMachine", name="ok", definition=definition, roleArn=ROLE_ARN)
    again = harness.call("CreateStateMachine", name="ok", definition=definition, roleArn=ROLE_ARN)
    assert again == first
    other = json.dumps({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}})
    assert (
        error_of(harness, "CreateStateMachine", name="ok", definition=other, roleArn=ROLE_ARN).code
        == "StateMachineAlreadyExists"
    )
    # "A different roleArn or tags is ignored": idempotent, and the role is not updated.
    other_role = "arn:aws:iam::123456789012:role/other"
    assert harness.call("CreateStateMachine", name="ok", definition=definition, roleArn=other_role) == first
    described = harness.call("DescribeStateMachine", stateMachineArn=first["stateMachineArn"])
    assert described["roleArn"] == ROLE_ARN
    group = {"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:sfn:*"}
    logged = {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [{"cloudWatchLogsLogGroup": group}],
    }
    assert (
        error_of(
            harness,
            "CreateStateMachine",
            name="ok",
            definition=definition,
            roleArn=ROLE_ARN,
            loggingConfiguration=logged,
        ).code
        == "StateMachineAlreadyExists"
    )
    # The defaults, given or not, are the same settings.
    off = {"level": "OFF"}
    again = harness.call(
        "CreateStateMachine", name="ok", definition=definition, roleArn=ROLE_ARN, loggingConfiguration=off
    )
    assert again == first
    assert described["loggingConfiguration"] == {"level": "OFF", "includeExecutionData": False}
    assert described["tracingConfiguration"] == {"enabled": False}
    not_a_group = {**logged, "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "bogus"}}]}
    refused = error_of(
        harness,
        "CreateStateMachine",
        name="l",
        definition=definition,
        roleArn=ROLE_ARN,
        loggingConfiguration=not_a_group,
    )
    assert (refused.code, refused.message) == (
        "InvalidLoggingConfiguration",
        "Invalid Logging Configuration: Log Destination not found.",
    )


def test_update_describe_list_delete(harness: Harness) -> None:
    arns = [harness.create(PASS_MACHINE, name=f"m{i}") for i in range(3)]
    assert error_of(harness, "UpdateStateMachine", stateMachineArn=arns[0]).code == "MissingRequiredParameter"
    updated = harness.call(
        "UpdateStateMachine",
        stateMachineArn=arns[0],
        definition=json.dumps({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}),
    )
    assert set(updated) == {"updateDate", "revisionId"}
    described = harness.call("DescribeStateMachine", stateMachineArn=arns[0])
    assert json.loads(described["definition"])["StartAt"] == "B"
    assert (described["type"], described["status"], described["roleArn"]) == ("STANDARD", "ACTIVE", ROLE_ARN)

    page = harness.call("ListStateMachines", maxResults=2)
    assert len(page["stateMachines"]) == 2
    assert "nextToken" in page
    rest = harness.call("ListStateMachines", maxResults=2, nextToken=page["nextToken"])
    assert [m["name"] for m in page["stateMachines"] + rest["stateMachines"]] == ["m0", "m1", "m2"]
    assert "nextToken" not in rest
    assert error_of(harness, "ListStateMachines", nextToken="garbage").code == "InvalidToken"

    harness.call("DeleteStateMachine", stateMachineArn=arns[1])
    assert (
        error_of(harness, "DescribeStateMachine", stateMachineArn=arns[1]).code == "StateMachineDoesNotExist"
    )
    assert error_of(harness, "DescribeStateMachine", stateMachineArn="arn:nope").code == "InvalidArn"


def test_a_machine_deleted_while_it_runs_is_deleting_until_its_executions_close(harness: Harness) -> None:
    waits = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = harness.create(waits, name="busy")
    execution = harness.start(arn, {})
    harness.call("DeleteStateMachine", stateMachineArn=arn)
    assert harness.call("DescribeStateMachine", stateMachineArn=arn)["status"] == "DELETING"
    definition = json.dumps(waits)
    taken = error_of(harness, "CreateStateMachine", name="busy", definition=definition, roleArn=ROLE_ARN)
    assert taken.code == "StateMachineDeleting"
    assert error_of(harness, "StartExecution", stateMachineArn=arn).code == "StateMachineDeleting"
    assert harness.call("DescribeExecution", executionArn=execution)["status"] == "RUNNING"

    harness.call("StopExecution", executionArn=execution)
    harness.wait(execution)
    assert error_of(harness, "DescribeStateMachine", stateMachineArn=arn).code == "StateMachineDoesNotExist"
    assert harness.create(waits, name="busy") == arn  # the name is free again


def test_state_machine_tags_are_set_at_creation_added_removed_and_listed(harness: Harness) -> None:
    definition = json.dumps(PASS_MACHINE)
    created = harness.call(
        "CreateStateMachine",
        name="tagged",
        definition=definition,
        roleArn=ROLE_ARN,
        tags=[{"key": "team", "value": "data"}, {"key": "env", "value": "dev"}],
    )
    arn = created["stateMachineArn"]

    harness.call(
        "TagResource", resourceArn=arn, tags=[{"key": "env", "value": "prod"}, {"key": "cost", "value": ""}]
    )
    harness.call("UntagResource", resourceArn=arn, tagKeys=["team", "not-there"])

    listed = harness.call("ListTagsForResource", resourceArn=arn)["tags"]
    assert listed == [{"key": "env", "value": "prod"}, {"key": "cost", "value": ""}]
    bad_text = error_of(harness, "TagResource", resourceArn=arn, tags=[{"key": "a#b", "value": "x"}])
    assert bad_text.code == "ValidationException"
    assert "may only contain" in bad_text.message
    fifty_one = [{"key": f"k{number}", "value": "v"} for number in range(51)]
    too_many = error_of(harness, "TagResource", resourceArn=arn, tags=fifty_one)
    assert (too_many.code, too_many.members) == ("TooManyTags", {"resourceName": arn})
    assert harness.call("ListTagsForResource", resourceArn=arn)["tags"] == listed  # nothing half-applied


def test_tag_calls_name_a_missing_or_wrong_resource_as_aws_does(harness: Harness) -> None:
    gone = "arn:aws:states:us-east-1:123456789012:stateMachine:gone"
    missing = error_of(harness, "ListTagsForResource", resourceArn=gone)
    assert (missing.code, missing.members) == ("ResourceNotFound", {"resourceName": gone})
    execution = "arn:aws:states:us-east-1:123456789012:execution:gone:run"
    assert error_of(harness, "TagResource", resourceArn=execution, tags=[]).code == "InvalidArn"
    no_tags = error_of(harness, "TagResource", resourceArn=gone)
    assert no_tags.code == "ValidationException"
    assert "'tags' failed to satisfy constraint: Member must not be null" in no_tags.message
    definition = json.dumps(PASS_MACHINE)
    too_many = [{"key": f"k{number}", "value": "v"} for number in range(51)]
    refused = error_of(
        harness, "CreateStateMachine", name="crowded", definition=definition, roleArn=ROLE_ARN, tags=too_many
    )
    assert refused.code == "TooManyTags"
    assert error_of(
        harness, "DescribeStateMachine", stateMachineArn=gone.replace("gone", "crowded")
    ).code == ("StateMachineDoesNotExist")


def test_validate_state_machine_definition(harness: Harness) -> None:
    ok = harness.call("ValidateStateMachineDefinition", definition=json.dumps(PASS_MACHINE))
    assert ok == {"result": "OK", "diagnostics": [], "truncated": False}
    bad = harness.call("ValidateStateMachineDefinition", definition="{not json")
    assert bad["result"] == "FAIL"
    assert bad["diagnostics"][0]["severity"] == "ERROR"
    express = harness.call(
        "ValidateStateMachineDefinition", definition=json.dumps(distributed_map()), type="EXPRESS"
    )
    assert express["result"] == "FAIL"  # Create would refuse it
    for wrong in ({"maxResults": 101}, {"severity": "FOO"}, {"type": "FOO"}):
        refused = error_of(
            harness, "ValidateStateMachineDefinition", definition=json.dumps(PASS_MACHINE), **wrong
        )
        assert refused.code == "ValidationException", wrong


def test_logging_publish_and_version_description_are_checked(harness: Harness) -> None:
    definition = json.dumps(PASS_MACHINE)

    def create(**extra: object) -> ServiceError:
        return error_of(
            harness, "CreateStateMachine", name="logs", definition=definition, roleArn=ROLE_ARN, **extra
        )

    assert create(loggingConfiguration={"level": "LOUD"}).code == "ValidationException"
    assert (
        create(loggingConfiguration={"level": "ALL"}).code == "InvalidLoggingConfiguration"
    )  # no destination
    assert create(versionDescription="v1").code == "ValidationException"  # without publish
    refused = create(publish=True)  # versions are not implemented: refused, never silently ignored
    assert (refused.code, "versions are not supported" in refused.message) == ("ValidationException", True)
    assert harness.call("ListStateMachines")["stateMachines"] == []


def test_express_machines_are_not_listed_and_cannot_be_updated_to_a_distributed_map(harness: Harness) -> None:
    arn = harness.create(PASS_MACHINE, name="express", machine_type="EXPRESS")
    assert error_of(harness, "ListExecutions", stateMachineArn=arn).code == "StateMachineTypeNotSupported"
    refused = error_of(
        harness, "UpdateStateMachine", stateMachineArn=arn, definition=json.dumps(distributed_map())
    )
    assert refused.code == "InvalidDefinition"


def test_a_trace_header_is_checked_and_described(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    arn = harness.call("StartExecution", stateMachineArn=machine, traceHeader=header)["executionArn"]
    assert harness.call("DescribeExecution", executionArn=arn)["traceHeader"] == header
    other = harness.call("StartExecution", stateMachineArn=machine)["executionArn"]
    assert "traceHeader" not in harness.call("DescribeExecution", executionArn=other)
    for bad in ("x" * 257, "Root=é"):
        assert error_of(harness, "StartExecution", stateMachineArn=machine, traceHeader=bad).code == (
            "ValidationException"
        )


def test_start_execution_input_and_name_rules(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    assert error_of(harness, "StartExecution", stateMachineArn=machine, name="a/b").code == "InvalidName"
    assert (
        error_of(harness, "StartExecution", stateMachineArn=machine, input="{oops").code
        == "InvalidExecutionInput"
    )
    for literal in ("NaN", "[Infinity]", '{"a": -Infinity}'):  # not JSON, though Python's parser takes them
        assert (
            error_of(harness, "StartExecution", stateMachineArn=machine, input=literal).code
            == "InvalidExecutionInput"
        )
    big = json.dumps({"x": "y" * 262_144})
    too_big = error_of(harness, "StartExecution", stateMachineArn=machine, input=big)
    assert too_big.code == "ValidationException"
    assert "262144 bytes in UTF-8 encoding" in too_big.message
    missing = machine.replace(":stateMachine:sm-", ":stateMachine:gone-")
    # Model constraints come before the machine is looked up.
    assert error_of(harness, "StartExecution", stateMachineArn=missing, name="n" * 81).code == (
        "ValidationException"
    )
    assert error_of(harness, "StartExecution", stateMachineArn=missing).code == "StateMachineDoesNotExist"
    arn = harness.start(machine)
    assert arn.split(":")[-1]  # a UUID name by default
    done = harness.wait(arn)
    assert (done["status"], done["output"]) == ("SUCCEEDED", "{}")
    assert done["redriveStatus"] == "NOT_REDRIVABLE"


def test_start_execution_is_idempotent_only_while_running(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = sleep_forever
    processor = {
        "P": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work", "End": True}
    }
    machine = harness.create(distributed_map(processor, ItemsPath="$.items"))
    request = {"stateMachineArn": machine, "name": "run-1", "input": '{"items": [1]}'}
    first = harness.call("StartExecution", **request)
    assert harness.call("StartExecution", **request) == first
    assert error_of(harness, "StartExecution", **{**request, "input": '{"items": [2]}'}).code == (
        "ExecutionAlreadyExists"
    )
    harness.call("StopExecution", executionArn=first["executionArn"])
    assert error_of(harness, "StartExecution", **request).code == "ExecutionAlreadyExists"


def test_describe_and_list_executions(harness: Harness) -> None:
    machine = harness.create(
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Oops", "Cause": "why"}}}
    )
    arns = [harness.start(machine, name=f"e{i}") for i in range(3)]
    for arn in arns:
        harness.wait(arn)
    failed = harness.call("DescribeExecution", executionArn=arns[0])
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Oops", "why")
    assert "output" not in failed
    assert failed["redriveStatus"] == "REDRIVABLE"
    listed = harness.call("ListExecutions", stateMachineArn=machine, statusFilter="FAILED")
    assert [e["name"] for e in listed["executions"]] == ["e2", "e1", "e0"]
    assert (
        harness.call("ListExecutions", stateMachineArn=machine, statusFilter="SUCCEEDED")["executions"] == []
    )
    assert error_of(harness, "DescribeExecution", executionArn=arns[0] + "x").code == "ExecutionDoesNotExist"
    assert error_of(harness, "DescribeExecution", executionArn="arn:aws:states:x").code == "InvalidArn"
    assert error_of(harness, "ListExecutions").code == "ValidationException"
    wrong_status = error_of(harness, "ListExecutions", stateMachineArn=machine, statusFilter="DONE")
    assert wrong_status.message.startswith("1 validation error detected: Value 'DONE' at 'statusFilter'")
    assert error_of(harness, "ListExecutions", stateMachineArn=machine, maxResults=-1).message.endswith(
        "Member must have value greater than or equal to 0"
    )
    assert harness.event_types(arns[0]) == ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    reverse = harness.call("GetExecutionHistory", executionArn=arns[0], reverseOrder=True)["events"]
    assert reverse[0]["type"] == "ExecutionFailed"
    assert reverse[0]["executionFailedEventDetails"] == {"error": "Oops", "cause": "why"}
    without_data = harness.call("GetExecutionHistory", executionArn=arns[0], includeExecutionData=False)
    started, _, failed_event = without_data["events"]
    assert "input" not in started["executionStartedEventDetails"]
    assert "roleArn" in started["executionStartedEventDetails"]
    assert failed_event["executionFailedEventDetails"] == {"error": "Oops", "cause": "why"}


def test_list_executions_orders_closed_executions_by_stop_date_and_running_ones_by_start_date(
    harness: Harness,
) -> None:
    machine = harness.create(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$", "End": True}}}
    )
    slow = harness.start(machine, 1, name="slow")
    fast = harness.start(machine, 0, name="fast")
    harness.wait(fast)
    running = harness.start(machine, 60, name="running")
    harness.wait(slow)
    listed = harness.call("ListExecutions", stateMachineArn=machine)["executions"]
    assert [e["name"] for e in listed] == ["slow", "running", "fast"]  # slow stopped after running started
    harness.call("StopExecution", executionArn=running)


def test_redrive_of_a_succeeded_execution_is_refused(harness: Harness) -> None:
    arn, _ = harness.run(PASS_MACHINE)
    refused = error_of(harness, "RedriveExecution", executionArn=arn)
    assert refused.code == "ExecutionNotRedrivable"
    assert "SUCCEEDED" in refused.message


def test_a_redrive_runs_the_definition_the_execution_started_with(harness: Harness) -> None:
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Broken"}}}
    machine = harness.create(failing)
    arn = harness.start(machine)
    assert harness.wait(arn)["status"] == "FAILED"
    harness.call("UpdateStateMachine", stateMachineArn=machine, definition=json.dumps(PASS_MACHINE))
    harness.call("RedriveExecution", executionArn=arn)
    redriven = harness.wait(arn)
    assert (redriven["status"], redriven["error"], redriven["redriveCount"]) == ("FAILED", "Broken", 1)
    assert harness.wait(harness.start(machine))["status"] == "SUCCEEDED"  # a new execution runs the update


def test_map_run_api_errors(harness: Harness) -> None:
    missing = "arn:aws:states:us-east-1:123456789012:mapRun:sm/label:00000000-0000-0000-0000-000000000000"
    assert error_of(harness, "DescribeMapRun", mapRunArn=missing).code == "ResourceNotFound"
    assert error_of(harness, "DescribeMapRun", mapRunArn="arn:bad").code == "InvalidArn"


def test_close_is_safe_twice(harness: Harness) -> None:
    service: StepFunctionsService = harness.service
    service.close()
    service.close()


def test_express_machines_cannot_hold_a_distributed_map(harness: Harness) -> None:
    refused = error_of(
        harness,
        "CreateStateMachine",
        name="express",
        definition=json.dumps(distributed_map()),
        roleArn=ROLE_ARN,
        type="EXPRESS",
    )
    assert refused.code == "InvalidDefinition"
    assert "EXPRESS" in refused.message


def test_child_history_and_redrive_filter(harness: Harness) -> None:
    arn, done = harness.run(distributed_map(), [1, 2])
    assert done["status"] == "SUCCEEDED"
    map_run_arn = harness.call("ListMapRuns", executionArn=arn)["mapRuns"][0]["mapRunArn"]
    children = harness.call("ListExecutions", mapRunArn=map_run_arn)["executions"]
    assert len(children) == 2
    history = harness.call("GetExecutionHistory", executionArn=children[0]["executionArn"])["events"]
    assert [e["type"] for e in history] == ["ExecutionStarted", "ExecutionSucceeded"]
    assert history[1]["executionSucceededEventDetails"]["output"] in ("1", "2")
    assert harness.call("ListExecutions", mapRunArn=map_run_arn, redriveFilter="REDRIVEN")["executions"] == []
    assert (
        len(harness.call("ListExecutions", mapRunArn=map_run_arn, redriveFilter="NOT_REDRIVEN")["executions"])
        == 2
    )


def test_definition_timeout_closes_the_execution_as_timed_out(harness: Harness) -> None:
    definition = {
        "TimeoutSeconds": 1,
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}},
    }
    arn, done = harness.run(definition)
    assert (done["status"], done["error"]) == ("TIMED_OUT", "States.Timeout")
    assert "output" not in done
    assert done["redriveStatus"] == "REDRIVABLE"
    assert harness.event_types(arn)[-1] == "ExecutionTimedOut"


def test_nested_map_runs_are_listed_under_their_child_execution(harness: Harness) -> None:
    inner = distributed_map(ItemsPath="$")["States"]["Map"]
    outer = distributed_map({"Inner": inner}, start_at="Inner")
    arn, done = harness.run(outer, [[1, 2], [3]])
    assert json.loads(done["output"]) == [[1, 2], [3]]
    outer_run = harness.call("ListMapRuns", executionArn=arn)["mapRuns"]
    assert len(outer_run) == 1
    children = harness.call("ListExecutions", mapRunArn=outer_run[0]["mapRunArn"])["executions"]
    nested = harness.call("ListMapRuns", executionArn=children[0]["executionArn"])["mapRuns"]
    assert len(nested) == 1
    assert nested[0]["executionArn"] == children[0]["executionArn"]


def test_concurrent_identical_starts_create_one_execution(harness: Harness) -> None:
    harness.lambdas.handlers["work"] = sleep_forever
    processor = {
        "P": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work", "End": True}
    }
    machine = harness.create(distributed_map(processor, ItemsPath="$.items"))
    results: list[str] = []

    def start() -> None:
        response = harness.call(
            "StartExecution", stateMachineArn=machine, name="same", input='{"items": [1]}'
        )
        results.append(response["executionArn"])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1
    assert len(harness.call("ListExecutions", stateMachineArn=machine)["executions"]) == 1
    harness.call("StopExecution", executionArn=results[0])


def test_a_fail_state_without_error_or_cause_reports_neither(harness: Harness) -> None:
    arn, described = harness.run({"StartAt": "F", "States": {"F": {"Type": "Fail"}}})
    assert described["status"] == "FAILED"
    assert "error" not in described
    assert "cause" not in described
    events = harness.call("GetExecutionHistory", executionArn=arn)["events"]
    assert events[-1]["type"] == "ExecutionFailed"
    assert events[-1]["executionFailedEventDetails"] == {}


def test_members_of_the_wrong_type_cannot_be_read(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    for action, request in [
        ("UpdateStateMachine", {"stateMachineArn": machine, "tracingConfiguration": [1]}),
        ("UpdateStateMachine", {"stateMachineArn": machine, "tracingConfiguration": {"enabled": "false"}}),
        ("ListExecutions", {"stateMachineArn": machine, "maxResults": "5"}),
        ("ListExecutions", {"stateMachineArn": machine, "maxResults": True}),
        ("StartExecution", {"stateMachineArn": machine, "name": 7}),
    ]:
        assert error_of(harness, action, **request).code == "SerializationException", (action, request)
    for action, request in [
        ("TagResource", {"resourceArn": machine, "tags": [None]}),
        ("TagResource", {"resourceArn": machine, "tags": [{"value": "no key"}]}),
        ("UntagResource", {"resourceArn": machine, "tagKeys": [None]}),
    ]:
        refused = error_of(harness, action, **request)
        assert refused.code == "ValidationException", (action, request)
        assert refused.message.endswith("Member must not be null"), refused.message
    assert harness.call("ListTagsForResource", resourceArn=machine)["tags"] == []


def test_every_broken_model_constraint_is_listed_in_one_validation_error(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    enum = error_of(harness, "DescribeStateMachine", stateMachineArn=machine, includedData="NONE")
    assert enum.message == (
        "1 validation error detected: Value 'NONE' at 'includedData' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY]"
    )
    encryption = {"type": "BOGUS"}
    refused = error_of(
        harness,
        "CreateStateMachine",
        name="x" * 81,
        definition=json.dumps(PASS_MACHINE),
        roleArn=ROLE_ARN,
        encryptionConfiguration=encryption,
    )
    assert refused.message.startswith("2 validation errors detected: Value '" + "x" * 81 + "' at 'name'")
    assert "at 'encryptionConfiguration.type' failed to satisfy constraint: Member must satisfy enum" in (
        refused.message
    )
    long_token = error_of(harness, "ListStateMachines", nextToken="t" * 1025)
    assert long_token.code == "ValidationException"
    assert long_token.message.endswith("Member must have length less than or equal to 1024")


def test_a_page_token_belongs_to_its_request_and_goes_on_after_its_last_item(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    for number in range(3):
        harness.wait(harness.start(machine, name=f"e{number}"))
    first = harness.call("ListExecutions", stateMachineArn=machine, maxResults=2)
    assert [e["name"] for e in first["executions"]] == ["e2", "e1"]
    harness.wait(harness.start(machine, name="e3"))  # listed first from now on
    rest = harness.call("ListExecutions", stateMachineArn=machine, maxResults=2, nextToken=first["nextToken"])
    assert [e["name"] for e in rest["executions"]] == ["e0"]
    token = first["nextToken"]
    other = error_of(
        harness, "ListExecutions", stateMachineArn=machine, statusFilter="FAILED", nextToken=token
    )
    assert other.code == "InvalidToken"
    assert error_of(harness, "ListStateMachines", nextToken=token).code == "InvalidToken"


def test_a_distributed_maps_state_machine_arn_cannot_be_deleted(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    refused = error_of(harness, "DeleteStateMachine", stateMachineArn=f"{machine}/mapLabel")
    assert refused.code == "ValidationException"
    assert harness.call("DescribeStateMachine", stateMachineArn=machine)["status"] == "ACTIVE"
    garbage = error_of(harness, "DescribeStateMachine", stateMachineArn="not_a_valid_arn")
    assert (garbage.code, garbage.message) == (
        "InvalidArn",
        "Invalid Arn: 'Invalid ARN prefix: not_a_valid_arn'",
    )


def test_json_nested_too_deeply_is_refused_as_bad_input_not_a_fault(harness: Harness) -> None:
    machine = harness.create(PASS_MACHINE)
    deep = "[" * 100_000 + "]" * 100_000
    assert (
        error_of(harness, "StartExecution", stateMachineArn=machine, input=deep).code
        == "InvalidExecutionInput"
    )
    refused = error_of(harness, "CreateStateMachine", name="deep", definition=deep, roleArn=ROLE_ARN)
    assert refused.code == "InvalidDefinition"
    assert harness.call("ValidateStateMachineDefinition", definition=deep)["result"] == "FAIL"


def test_an_express_execution_is_started_afresh_each_time_and_the_execution_apis_cannot_read_it(
    harness: Harness,
) -> None:
    machine = harness.create(PASS_MACHINE, name="fast", machine_type="EXPRESS")
    first = harness.call("StartExecution", stateMachineArn=machine, name="same")["executionArn"]
    second = harness.call("StartExecution", stateMachineArn=machine, name="same")["executionArn"]
    assert first.startswith("arn:aws:states:us-east-1:123456789012:express:fast:same:")
    assert first != second
    for action in (
        "DescribeExecution",
        "GetExecutionHistory",
        "StopExecution",
        "DescribeStateMachineForExecution",
    ):
        refused = error_of(harness, action, executionArn=first)
        assert (refused.code, refused.message) == (
            "InvalidArn",
            "Invalid Arn: 'Resource type not valid in this context: express'",
        ), action


def test_metadata_only_empties_only_describe_state_machines_definition(harness: Harness) -> None:
    arn, _ = harness.run(PASS_MACHINE, {"secret": 1})
    described = harness.call("DescribeExecution", executionArn=arn, includedData="METADATA_ONLY")
    assert (json.loads(described["input"]), described["status"]) == ({"secret": 1}, "SUCCEEDED")
    for_execution = harness.call(
        "DescribeStateMachineForExecution", executionArn=arn, includedData="METADATA_ONLY"
    )
    machine = harness.call("DescribeStateMachine", stateMachineArn=described["stateMachineArn"])
    assert json.loads(for_execution["definition"]) == json.loads(machine["definition"]) == PASS_MACHINE
    metadata = harness.call(
        "DescribeStateMachine", stateMachineArn=described["stateMachineArn"], includedData="METADATA_ONLY"
    )
    assert (metadata["definition"], metadata["name"]) == ("{}", machine["name"])


def test_a_customer_managed_kms_key_is_refused_naming_the_fix(harness: Harness) -> None:
    encryption = {"type": "CUSTOMER_MANAGED_KMS_KEY", "kmsKeyId": "alias/mine"}
    refused = error_of(
        harness,
        "CreateStateMachine",
        name="encrypted",
        definition=json.dumps(PASS_MACHINE),
        roleArn=ROLE_ARN,
        encryptionConfiguration=encryption,
    )
    assert refused.code == "ValidationException"
    assert "customer managed KMS keys are not supported" in refused.message
    assert "AWS_OWNED_KEY" in refused.message
    machine = harness.create(PASS_MACHINE)
    accepted = harness.call(
        "UpdateStateMachine",
        stateMachineArn=machine,
        definition=json.dumps(PASS_MACHINE),
        encryptionConfiguration={"type": "AWS_OWNED_KEY"},
    )
    assert "revisionId" in accepted
