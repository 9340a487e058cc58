from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_distmap.local.asl import compile_state_machine, validate_definition
from airflow_distmap.local.asl import io as asl_io
from airflow_distmap.local.asl.machine import resume_point
from airflow_distmap.local.errors import StatesError


def one(state: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": state}}


async def test_pass_result_resultpath_and_outputpath(run: Any) -> None:
    definition = one(
        {"Type": "Pass", "Result": {"r": 1}, "ResultPath": "$.res.inner", "OutputPath": "$.res", "End": True}
    )
    assert await run(definition, {"keep": True}) == {"inner": {"r": 1}}


async def test_pass_parameters_and_inputpath(run: Any) -> None:
    definition = one(
        {"Type": "Pass", "InputPath": "$.sub", "Parameters": {"v.$": "$.x", "c": 1}, "End": True}
    )
    assert await run(definition, {"sub": {"x": 5}}) == {"v": 5, "c": 1}


async def test_null_paths_discard(run: Any) -> None:
    keep_input = one({"Type": "Pass", "Result": "ignored", "ResultPath": None, "End": True})
    assert await run(keep_input, {"a": 1}) == {"a": 1}
    empty_input = one({"Type": "Pass", "InputPath": None, "End": True})
    assert await run(empty_input, {"a": 1}) == {}
    empty_output = one({"Type": "Pass", "OutputPath": None, "End": True})
    assert await run(empty_output, {"a": 1}) == {}


async def test_result_path_never_mutates_the_input(run: Any) -> None:
    data = {"a": {"b": 1}}
    await run(one({"Type": "Pass", "Result": 2, "ResultPath": "$.a.c", "End": True}), data)
    assert data == {"a": {"b": 1}}


async def test_result_path_into_a_non_object_fails(run: Any) -> None:
    with pytest.raises(StatesError) as info:
        await run(one({"Type": "Pass", "Result": 2, "ResultPath": "$.a.b", "End": True}), {"a": [1]})
    assert info.value.error == "States.ResultPathMatchFailure"


async def test_missing_input_path_is_prefixed_like_aws(run: Any) -> None:
    with pytest.raises(StatesError) as info:
        await run(one({"Type": "Pass", "InputPath": "$.nope", "End": True}), {"a": 1})
    assert info.value.error == "States.Runtime"
    assert info.value.cause == (
        "An error occurred while executing the state 'S' (entered at the event id #2). "
        "Invalid path '$.nope' : No results for path: $['nope']"
    )


async def test_context_state_fields_are_available(run: Any) -> None:
    definition = one(
        {
            "Type": "Pass",
            "Parameters": {
                "name.$": "$$.State.Name",
                "exec.$": "$$.Execution.Name",
                "t.$": "$$.State.EnteredTime",
            },
            "End": True,
        }
    )
    out = await run(definition)
    assert out["name"] == "S"
    assert out["exec"] == "exec-1"
    assert datetime.fromisoformat(out["t"]) <= datetime.now(timezone.utc)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (1738555506.0, "2025-02-03T04:05:06Z"),  # a zero fraction is left out, as AWS prints it
        (1738555506.25, "2025-02-03T04:05:06.250Z"),  # otherwise exactly three digits (Instant.toString)
        (1738555506.5, "2025-02-03T04:05:06.500Z"),
    ],
)
async def test_entered_time_trims_a_zero_fraction(
    run: Any, monkeypatch: pytest.MonkeyPatch, now: float, expected: str
) -> None:
    clock = SimpleNamespace(time=lambda: now, strftime=time.strftime, gmtime=time.gmtime)
    monkeypatch.setattr(asl_io, "time", clock)
    definition = one({"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime"}, "End": True})
    assert await run(definition) == {"t": expected}


async def test_bracket_notation_after_a_dot_in_every_path_field(run: Any) -> None:
    # AWS's example "$.abc.['def ghi']" is a reference path naming one node.
    path = "$.abc.['def ghi']"
    data = {"abc": {"def ghi": {"x": 1}}}
    parameters = {"v.$": path, "s.$": f"States.JsonToString({path})"}
    definition = one({"Type": "Pass", "Parameters": parameters, "ResultPath": path, "End": True})
    assert not [d for d in validate_definition(json.dumps(definition)) if d.severity == "ERROR"]
    assert await run(definition, data) == {"abc": {"def ghi": {"v": {"x": 1}, "s": '{"x":1}'}}}
    assert await run(one({"Type": "Pass", "InputPath": path, "End": True}), data) == {"x": 1}


async def test_the_state_context_is_read_by_paths_and_choice_rules_too(run: Any) -> None:
    assert await run(one({"Type": "Pass", "InputPath": "$$.State.Name"})) == "S"
    assert await run(one({"Type": "Succeed", "OutputPath": "$$.State.RetryCount"})) == 0
    choice = {
        "StartAt": "S",
        "States": {
            "S": {
                "Type": "Choice",
                "Choices": [{"Variable": "$$.State.Name", "IsString": True, "Next": "Y"}],
            },
            "Y": {"Type": "Succeed"},
        },
    }
    assert await run(choice, {"x": 1}) == {"x": 1}
    with pytest.raises(StatesError) as info:
        await run(one({"Type": "Fail", "Error": "E", "CausePath": "States.Format('in {}', $$.State.Name)"}))
    assert info.value.cause == "in S"


async def test_succeed_and_fail(run: Any) -> None:
    assert await run(one({"Type": "Succeed", "OutputPath": "$.a"}), {"a": 3}) == 3
    with pytest.raises(StatesError) as info:
        await run(one({"Type": "Fail", "Error": "MyError", "Cause": "because"}))
    assert (info.value.error, info.value.cause) == ("MyError", "because")


async def test_fail_error_and_cause_paths_and_intrinsics(run: Any) -> None:
    definition = one({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.n)"})
    with pytest.raises(StatesError) as info:
        await run(definition, {"e": "Custom.Error", "n": 3})
    assert (info.value.error, info.value.cause) == ("Custom.Error", "bad 3")


async def test_wait_seconds_path_and_timestamp(run: Any, no_sleep: list[float]) -> None:
    await run(one({"Type": "Wait", "SecondsPath": "$.s", "End": True}), {"s": 5})
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await run(one({"Type": "Wait", "Timestamp": soon, "End": True}))
    past = "2000-01-01T00:00:00Z"
    await run(one({"Type": "Wait", "TimestampPath": "$.t", "End": True}), {"t": past})
    assert no_sleep[0] == 5
    assert 25 < no_sleep[1] <= 30
    assert len(no_sleep) == 2  # a timestamp in the past does not wait


async def test_wait_with_a_bad_seconds_path_is_a_runtime_error(run: Any) -> None:
    with pytest.raises(StatesError, match=r"States\.Runtime"):
        await run(one({"Type": "Wait", "SecondsPath": "$.s", "End": True}), {"s": "ten"})


WAIT_SECONDS = {"Type": "Wait", "SecondsPath": "$.w"}
BAD_TIMESTAMP = "2016-12-05 21:29:29Z"


@pytest.mark.parametrize(
    ("state", "state_input", "cause"),
    [  # AWS's recorded causes
        (WAIT_SECONDS, {"w": -1}, "The SecondsPath parameter references a negative value: $.w == -1"),
        (WAIT_SECONDS, {"w": 1.5}, "The SecondsPath parameter cannot be parsed as a long value: $.w == 1.5"),
        (WAIT_SECONDS, {}, "The SecondsPath parameter does not reference an input value: $.w"),
        (
            {"Type": "Wait", "TimestampPath": "$.t"},
            {"t": BAD_TIMESTAMP},
            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time "
            f"format string: $.t == {BAD_TIMESTAMP}",
        ),
        (
            {"Type": "Pass", "OutputPath": "$.no.such"},
            {},
            "Invalid path '$.no.such' : Missing property in path $['no']",
        ),
        (
            {"Type": "Fail", "ErrorPath": "$.e"},
            {},
            "The JSONPath '$.e' specified for the field 'ErrorPath' could not be found in the input '{}'",
        ),
    ],
)
async def test_runtime_causes_are_worded_as_aws_words_them(
    run: Any, no_sleep: list[float], state: dict[str, Any], state_input: Any, cause: str
) -> None:
    if state["Type"] != "Fail":
        state = {**state, "End": True}
    with pytest.raises(StatesError) as info:
        await run(one(state), state_input)
    prefix = "An error occurred while executing the state 'S' (entered at the event id #2)."
    assert info.value.cause == f"{prefix} {cause}"


async def test_inline_map_with_item_selector_and_concurrency(run: Any) -> None:
    definition = one(
        {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "k.$": "$.k"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "ResultPath": "$.out",
            "End": True,
        }
    )
    out = await run(definition, {"items": ["a", "b", "c"], "k": 9})
    assert out["out"] == [{"i": 0, "v": "a", "k": 9}, {"i": 1, "v": "b", "k": 9}, {"i": 2, "v": "c", "k": 9}]


async def test_inline_map_respects_max_concurrency(run: Any, services: Any) -> None:
    running = 0
    peak = 0

    async def slow(function: str, payload: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return type(
            "R",
            (),
            {"payload": payload, "function_error": None, "executed_version": "$LATEST", "request_id": "r"},
        )()

    services.lambdas.invoke = slow
    definition = one(
        {
            "Type": "Map",
            "MaxConcurrency": 3,
            "Iterator": {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    )
    assert await run(definition, list(range(12))) == list(range(12))
    assert peak == 3


async def test_inline_map_legacy_parameters_and_object_items(run: Any) -> None:
    definition = one(
        {
            "Type": "Map",
            "Parameters": {"key.$": "$$.Map.Item.Key", "value.$": "$$.Map.Item.Value"},
            "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    )
    assert await run(definition, {"a": 1, "b": 2}) == [{"key": "a", "value": 1}, {"key": "b", "value": 2}]


async def test_inline_map_iteration_failure_fails_the_map_and_can_be_caught(run: Any) -> None:
    processor = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Boom"}],
                "Default": "Ok",
            },
            "Boom": {"Type": "Fail", "Error": "Item.Failed", "Cause": "two"},
            "Ok": {"Type": "Succeed"},
        },
    }
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": processor,
                "Next": "Done",
                "Catch": [{"ErrorEquals": ["Item.Failed"], "ResultPath": "$.error", "Next": "Handled"}],
            },
            "Done": {"Type": "Succeed"},
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    out = await run(definition, {"items": [1, 2, 3]})
    assert out == {"items": [1, 2, 3], "error": {"Error": "Item.Failed", "Cause": "two"}}


async def test_parallel_runs_branches_and_collects_outputs(run: Any) -> None:
    definition = one(
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "InputPath": "$.x", "End": True}}},
            ],
            "ResultSelector": {"first.$": "$[0]", "second.$": "$[1]"},
            "End": True,
        }
    )
    assert await run(definition, {"x": 1}) == {"first": "a", "second": 1}


async def test_assign_sets_variables_read_by_later_states(run: Any) -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"bucket": "b1", "count.$": "$.n"}, "Next": "B"},
            "B": {"Type": "Pass", "Parameters": {"b.$": "$bucket", "c.$": "$count"}, "End": True},
        },
    }
    assert await run(definition, {"n": 4}) == {"b": "b1", "c": 4}


async def test_history_events_for_the_parent(run: Any, sink: Any) -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "M"}]},
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "ResultPath": None,
                "Next": "End",
            },
            "End": {"Type": "Succeed"},
        },
    }
    await run(definition, {"go": True, "items": [1]}, events=sink)
    assert sink.types == [
        "PassStateEntered", "PassStateExited", "ChoiceStateEntered", "ChoiceStateExited",
        "MapStateEntered", "MapStateStarted", "MapIterationStarted", "PassStateEntered", "PassStateExited",
        "MapIterationSucceeded", "MapStateSucceeded", "MapStateExited", "SucceedStateEntered",
        "SucceedStateExited",
    ]  # fmt: skip
    assert sink.events[0][1] == {
        "name": "A",
        "input": '{"go":true,"items":[1]}',
        "inputDetails": {"truncated": False},
    }
    assert sink.events[5][1] == {"length": 1}


async def test_distributed_map_calls_the_runtime_and_processes_its_result(
    run: Any, services: Any, sink: Any
) -> None:
    services.distributed_result = [{"r": 1}, {"r": 2}]
    definition = one(
        {
            "Type": "Map",
            "InputPath": "$.in",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": True}},
            },
            "ResultSelector": {"rs.$": "$[*].r"},
            "ResultPath": "$.result",
            "End": True,
        }
    )
    out = await run(definition, {"in": {"items": [1, 2]}}, events=sink)
    assert out == {"in": {"items": [1, 2]}, "result": {"rs": [1, 2]}}
    call = services.distributed_calls[0]
    assert call["state_name"] == "S"
    assert call["input"] == {"items": [1, 2]}
    assert call["events"].entered_event_id == 2
    assert sink.types == [
        "MapStateEntered", "MapStateStarted", "MapRunStarted", "MapRunSucceeded", "MapStateSucceeded",
        "MapStateExited",
    ]  # fmt: skip
    assert sink.events[1][1] == {"length": 2}


async def test_distributed_map_with_item_reader_reports_length_zero(
    run: Any, services: Any, sink: Any
) -> None:
    services.distributed_result = {"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": "b", "Key": "k"}}
    definition = one(
        {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "P",
                "States": {"P": {"Type": "Pass", "End": True}},
            },
            "End": True,
        }
    )
    assert await run(definition, {}, events=sink) == services.distributed_result
    assert sink.events[1] == ("MapStateStarted", {"length": 0})


async def test_distributed_map_failure_is_caught_but_states_runtime_is_not(
    run: Any, services: Any, sink: Any
) -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}],
                "End": True,
            },
            "H": {"Type": "Pass", "End": True},
        },
    }
    services.distributed_error = StatesError(
        "States.ExceedToleratedFailureThreshold", "The specified tolerated failure threshold was exceeded"
    )
    out = await run(definition, [1], events=sink)
    assert out == {
        "Error": "States.ExceedToleratedFailureThreshold",
        "Cause": "The specified tolerated failure threshold was exceeded",
    }
    assert "MapStateFailed" in sink.types

    services.distributed_error = StatesError("States.Runtime", "bad path")
    sink.events.clear()
    with pytest.raises(StatesError, match="bad path"):
        await run(definition, [1], events=sink)
    assert "MapStateFailed" not in sink.types


async def test_parallel_branch_failure_fails_the_state_and_records_events(run: Any, sink: Any) -> None:
    definition = one(
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "Branch.Error", "Cause": "b"}}},
            ],
            "End": True,
        }
    )
    with pytest.raises(StatesError) as info:
        await run(definition, {}, events=sink)
    assert (info.value.error, info.value.cause) == ("Branch.Error", "b")
    assert sink.types[:2] == ["ParallelStateEntered", "ParallelStateStarted"]
    assert sink.types[-1] == "ParallelStateFailed"
    assert "ParallelStateExited" not in sink.types


async def test_a_jsonata_state_inside_a_jsonpath_machine(run: Any) -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "B"},
            "B": {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% $states.input.n * 2 %}",
                "End": True,
            },
        },
    }
    assert await run(definition, {"n": 21}) == 42


async def test_runtime_error_cause_counts_events_recorded_by_the_map_runtime(
    run: Any, services: Any, sink: Any
) -> None:
    services.distributed_result = [1]
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "Next": "Bad",
            },
            "Bad": {"Type": "Pass", "InputPath": "$.missing", "End": True},
        },
    }
    with pytest.raises(StatesError) as info:
        await run(definition, [1], events=sink)
    # ExecutionStarted #1, MapStateEntered #2, MapStateStarted #3, MapRunStarted #4, MapRunSucceeded #5,
    # MapStateSucceeded #6, MapStateExited #7, PassStateEntered #8.
    assert "(entered at the event id #8)" in info.value.cause


async def test_a_parent_state_output_over_256_kib_fails_with_data_limit_exceeded(run: Any, sink: Any) -> None:
    definition = {
        "StartAt": "Big",
        "States": {
            "Big": {"Type": "Pass", "Next": "Never"},
            "Never": {"Type": "Pass", "End": True},
        },
    }
    with pytest.raises(StatesError) as info:
        await run(definition, {"blob": "é" * 140_000}, events=sink)
    assert info.value.error == "States.DataLimitExceeded"
    assert "'Big'" in info.value.cause
    assert sink.types == ["PassStateEntered"]
    assert await run(definition, {"blob": "x" * 200_000}, events=sink) == {"blob": "x" * 200_000}


def test_run_now_runs_a_machine_of_immediate_states_without_a_loop() -> None:
    from airflow_distmap.local.asl import compile_state_machine

    machine = compile_state_machine(
        {
            "StartAt": "Format",
            "States": {
                "Format": {
                    "Type": "Pass",
                    "Parameters": {"out.$": "States.Format('<{}>', $.text)"},
                    "Next": "Pick",
                },
                "Pick": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.out", "StringEquals": "<boom>", "Next": "Boom"}],
                    "Default": "Done",
                },
                "Boom": {"Type": "Fail", "Error": "Custom.Boom", "Cause": "boom"},
                "Done": {"Type": "Succeed"},
            },
        }
    )
    assert machine.immediate
    assert machine.run_now({"text": "a"}, {}, None) == {"out": "<a>"}
    with pytest.raises(StatesError) as failed:
        machine.run_now({"text": "boom"}, {}, None)
    assert failed.value.error == "Custom.Boom"


def test_machines_with_waiting_states_are_not_immediate() -> None:
    from airflow_distmap.local.asl import compile_state_machine

    machine = compile_state_machine(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 0, "End": True}}}
    )
    assert not machine.immediate


LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
CONTEXT: dict[str, Any] = {}  # these machines read no $$


def three_tasks() -> dict[str, Any]:
    """A (Assigns) -> B -> C, each a bare Lambda Task."""
    return {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": LAMBDA_ARN, "Assign": {"seen.$": "$.n"}, "Next": "B"},
            "B": {"Type": "Task", "Resource": LAMBDA_ARN, "Next": "C"},
            "C": {"Type": "Pass", "Parameters": {"n.$": "$.n", "seen.$": "$seen"}, "End": True},
        },
    }


async def test_a_failure_leaves_where_a_redrive_goes_on_and_resuming_runs_only_what_is_left(
    services: Any,
) -> None:
    machine = compile_state_machine(three_tasks())
    services.lambdas.returns({"n": 2}).fails("ValueError")  # A answers, B fails
    with pytest.raises(StatesError) as info:
        await machine.run({"n": 1}, CONTEXT, services)
    point = resume_point(info.value)
    assert point is not None
    assert (point.state, json.loads(point.input_text), point.variables) == ("B", {"n": 2}, {"seen": 2})

    services.lambdas.calls.clear()
    assert await machine.run({"n": 1}, CONTEXT, services, None, point) == {"n": 2, "seen": 2}
    assert [payload for _, payload in services.lambdas.calls] == [{"n": 2}]  # B only, with A's output


async def test_a_failure_at_start_at_leaves_no_point_a_redrive_simply_restarts(services: Any) -> None:
    machine = compile_state_machine(three_tasks())
    services.lambdas.fails("ValueError")
    with pytest.raises(StatesError) as info:
        await machine.run({"n": 1}, CONTEXT, services)
    assert resume_point(info.value) is None


async def test_a_failure_inside_a_branch_resumes_at_the_outer_state(services: Any) -> None:
    branch = {"StartAt": "In1", "States": {"In1": {"Type": "Pass", "Next": "In2"}, "In2": {"Type": "Fail"}}}
    definition = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Next": "Both"},
            "Both": {"Type": "Parallel", "Branches": [branch], "End": True},
        },
    }
    with pytest.raises(StatesError) as info:
        await compile_state_machine(definition).run({"x": 1}, CONTEXT, services)
    point = resume_point(info.value)
    assert point is not None
    assert point.state == "Both"  # not the branch's In2


async def test_assignments_take_effect_only_once_the_state_output_is_made(services: Any) -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"y": 1}, "Next": "B"},
            "B": {"Type": "Pass", "Assign": {"x": 2}, "OutputPath": "$.nope", "End": True},
        },
    }
    with pytest.raises(StatesError) as info:
        await compile_state_machine(definition).run({}, CONTEXT, services)
    point = resume_point(info.value)
    assert point is not None
    assert (point.state, point.variables) == ("B", {"y": 1})  # B's failed output assigned nothing
