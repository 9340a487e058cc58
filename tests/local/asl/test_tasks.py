from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_distmap.local.errors import StatesError

INVOKE = "arn:aws:states:::lambda:invoke"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:rows"


def task(**fields: Any) -> dict[str, Any]:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "End": True, **fields}}}


async def test_lambda_invoke_output_shape(run: Any, services: Any) -> None:
    services.lambdas.returns({"ok": 1})
    out = await run(task(Resource=INVOKE, Parameters={"FunctionName": "rows", "Payload.$": "$"}), {"in": 1})
    assert services.lambdas.calls == [("rows", {"in": 1})]
    assert out["Payload"] == {"ok": 1}
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert out["SdkResponseMetadata"] == {"RequestId": "req-1"}
    assert out["SdkHttpMetadata"]["HttpStatusCode"] == 200
    headers = out["SdkHttpMetadata"]["HttpHeaders"]
    assert headers["x-amzn-RequestId"] == "req-1"  # the header names AWS's recorded results show
    assert headers["X-Amz-Executed-Version"] == "$LATEST"
    assert headers["Content-Length"] == "8"  # the payload's size ({"ok":1} here: the fake gives no size)
    assert out["SdkHttpMetadata"]["AllHttpHeaders"]["x-amzn-RequestId"] == ["req-1"]
    assert set(out) == {"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}


async def test_lambda_invoke_qualifier_and_missing_payload(run: Any, services: Any) -> None:
    await run(task(Resource=INVOKE, Parameters={"FunctionName": "rows", "Qualifier": "live"}), {"in": 1})
    assert services.lambdas.calls == [("rows:live", {})]


async def test_bare_function_arn_gets_the_effective_input_and_returns_the_payload(
    run: Any, services: Any
) -> None:
    services.lambdas.returns([1, 2])
    out = await run(task(Resource=FUNCTION, InputPath="$.row", ResultPath="$.result"), {"row": {"a": "1"}})
    assert services.lambdas.calls == [(FUNCTION, {"a": "1"})]
    assert out == {"row": {"a": "1"}, "result": [1, 2]}


@pytest.mark.parametrize("resource", [INVOKE, FUNCTION])
async def test_a_result_over_the_payload_quota_fails_the_task_even_if_result_selector_trims_it(
    run: Any, services: Any, resource: str
) -> None:
    services.lambdas.returns({"big": "x" * 300_000, "small": 1})
    parameters = {"FunctionName": "rows", "Payload": {}} if resource == INVOKE else {}
    selector = {"small.$": "$.Payload.small"} if resource == INVOKE else {"small.$": "$.small"}
    with pytest.raises(StatesError) as info:
        await run(task(Resource=resource, Parameters=parameters, ResultSelector=selector))
    assert info.value.error == "States.DataLimitExceeded"
    services.lambdas.returns({"big": "x" * 200_000, "small": 1})
    assert await run(task(Resource=resource, Parameters=parameters, ResultSelector=selector)) == {"small": 1}


@pytest.mark.parametrize("resource", [INVOKE, FUNCTION])
async def test_function_error_uses_error_type_and_the_error_object_as_cause(
    run: Any, services: Any, resource: str
) -> None:
    services.lambdas.fails("KeyError", "'col'")
    parameters = {"FunctionName": "rows", "Payload": {}} if resource == INVOKE else {}
    with pytest.raises(StatesError) as info:
        await run(task(Resource=resource, Parameters=parameters))
    assert info.value.error == "KeyError"
    # The runtime's text, as it wrote it (json.dumps' separators), not encoded again.
    assert info.value.cause == (
        '{"errorMessage": "\'col\'", "errorType": "KeyError", "requestId": "req-1", '
        '"stackTrace": ["  File x"]}'
    )


async def test_an_error_and_cause_longer_than_step_functions_takes_are_cut_to_its_limits(
    run: Any, services: Any
) -> None:
    services.lambdas.fails("E" * 300, "x" * 40_000)
    with pytest.raises(StatesError) as info:
        await run(task(Resource=FUNCTION))
    assert (len(info.value.error), len(info.value.cause)) == (256, 32_768)  # SensitiveError, SensitiveCause


async def test_sandbox_timeout_is_a_function_error(run: Any, services: Any) -> None:
    services.lambdas.fails("Sandbox.Timedout", "RequestId: r Error: Task timed out after 3.00 seconds")
    with pytest.raises(StatesError) as info:
        await run(task(Resource=FUNCTION))
    assert info.value.error == "Sandbox.Timedout"


async def test_unknown_function_is_resource_not_found(run: Any, services: Any) -> None:
    services.lambdas.not_found()
    with pytest.raises(StatesError) as info:
        await run(task(Resource=INVOKE, Parameters={"FunctionName": "ghost"}))
    assert info.value.error == "Lambda.ResourceNotFoundException"
    assert "ghost" in info.value.cause


async def test_timeout_seconds_raises_states_timeout(run: Any, services: Any) -> None:
    services.lambdas.hangs()
    definition = task(Resource=FUNCTION, TimeoutSeconds=1)
    definition["States"]["T"]["TimeoutSeconds"] = (
        0.05  # validated definitions use integers; keep the test fast
    )
    with pytest.raises(StatesError) as info:
        await run(definition)
    assert info.value.error == "States.Timeout"


async def test_timeout_seconds_path_reads_the_state_input_not_the_parameters(run: Any, services: Any) -> None:
    services.lambdas.hangs()
    definition = task(
        Resource=INVOKE, Parameters={"FunctionName": "rows"}, TimeoutSecondsPath="$.limit", InputPath="$.in"
    )
    with pytest.raises(StatesError) as info:
        await run(definition, {"in": {"limit": 1}})
    assert info.value.error == "States.Timeout"


async def test_states_timeout_is_not_matched_by_task_failed(run: Any, services: Any) -> None:
    services.lambdas.hangs()
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FUNCTION,
                "TimeoutSeconds": 0.05,
                "End": True,
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "P"},
                    {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.t", "Next": "P"},
                ],
            },
            "P": {"Type": "Pass", "End": True},
        },
    }
    assert (await run(definition, {}))["t"]["Error"] == "States.Timeout"


async def test_task_history_events(run: Any, services: Any, sink: Any) -> None:
    services.lambdas.fails("E").returns("ok")
    definition = task(
        Resource=INVOKE,
        Parameters={"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:rows", "Payload": 1},
        Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 1}],
    )
    definition["States"]["T"]["Retry"][0]["IntervalSeconds"] = 0
    await run(definition, {}, events=sink)
    assert sink.types == [
        "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskFailed", "TaskScheduled", "TaskStarted",
        "TaskSucceeded", "TaskStateExited",
    ]  # fmt: skip
    scheduled = sink.events[1][1]
    assert scheduled["resourceType"] == "lambda"
    assert scheduled["resource"] == "invoke"
    assert scheduled["region"] == "eu-west-1"
    assert json.loads(scheduled["parameters"])["Payload"] == 1
    assert sink.events[3][1]["error"] == "E"


async def test_bare_arn_history_events(run: Any, services: Any, sink: Any) -> None:
    await run(task(Resource=FUNCTION), {"a": 1}, events=sink)
    assert sink.types == [
        "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted", "LambdaFunctionSucceeded",
        "TaskStateExited",
    ]  # fmt: skip
    assert sink.events[1][1] == {
        "resource": FUNCTION,
        "input": '{"a":1}',
        "inputDetails": {"truncated": False},
    }
