from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_distmap.local.asl import ContextDict, evaluate_template, validate_definition
from airflow_distmap.local.errors import StatesError

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:f"


def machine(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start, "States": states}


async def test_pass_output_and_assign(run: Any) -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Assign": {"total": "{% $states.input.a + $states.input.b %}"},
                  "Next": "B"},
            "B": {"Type": "Pass", "End": True,
                  "Output": {"sum": "{% $total %}", "name": "{% $states.context.State.Name %}"}},
        }
    )  # fmt: skip
    assert await run(definition, {"a": 2, "b": 3}) == {"sum": 5, "name": "B"}


async def test_task_arguments_and_output_with_result(run: Any, services: Any) -> None:
    services.lambdas.returns({"doubled": 8})
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {"FunctionName": "f", "Payload": {"n": "{% $states.input.n %}"}},
                "Output": "{% $states.result.Payload.doubled %}",
                "End": True,
            }
        }
    )
    assert await run(definition, {"n": 4}) == 8
    assert services.lambdas.calls == [("f", {"n": 4})]


async def test_task_default_output_is_the_result(run: Any, services: Any) -> None:
    services.lambdas.returns("r")
    definition = machine({"A": {"Type": "Task", "Resource": FUNCTION, "End": True}})
    assert await run(definition, {"n": 1}) == "r"


async def test_choice_condition(run: Any) -> None:
    definition = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n > 3 %}", "Next": "Big"}],
                  "Default": "Small"},
            "Big": {"Type": "Pass", "Output": "big", "End": True},
            "Small": {"Type": "Pass", "Output": "small", "End": True},
        },
        start="C",
    )  # fmt: skip
    assert await run(definition, {"n": 5}) == "big"
    assert await run(definition, {"n": 1}) == "small"


async def test_catch_output_sees_the_error_output(run: Any, services: Any) -> None:
    services.lambdas.fails("Boom", "bad")
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": FUNCTION,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Output": {"err": "{% $states.errorOutput.Error %}",
                           "in": "{% $states.input %}"}, "Next": "B"}],
                "End": True,
            },
            "B": {"Type": "Pass", "End": True},
        }
    )  # fmt: skip
    assert await run(definition, {"x": 1}) == {"err": "Boom", "in": {"x": 1}}


async def test_inline_map_items_and_item_selector(run: Any) -> None:
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "Items": "{% $states.input.values %}",
                "ItemSelector": {"v": "{% $states.context.Map.Item.Value * 10 %}",
                                 "i": "{% $states.context.Map.Item.Index %}"},
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
        start="M",
    )  # fmt: skip
    assert await run(definition, {"values": [1, 2]}) == [{"v": 10, "i": 0}, {"v": 20, "i": 1}]


async def test_fail_with_expressions(run: Any) -> None:
    definition = machine(
        {
            "F": {
                "Type": "Fail",
                "Error": "{% 'E.' & $states.input.kind %}",
                "Cause": "{% $string($states.input.n) %}",
            }
        },
        start="F",
    )
    with pytest.raises(StatesError) as info:
        await run(definition, {"kind": "Bad", "n": 3})
    assert (info.value.error, info.value.cause) == ("E.Bad", "3")


async def test_wait_seconds_expression(run: Any, no_sleep: list[float]) -> None:
    definition = machine({"W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": True}}, start="W")
    await run(definition, {"s": 7})
    assert no_sleep == [7]


async def test_expression_errors_are_query_evaluation_errors(run: Any) -> None:
    definition = machine({"A": {"Type": "Pass", "Output": "{% $number('x') %}", "End": True}})
    with pytest.raises(StatesError) as info:
        await run(definition, {})
    assert info.value.error == "States.QueryEvaluationError"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$partition([1, 2, 3, 4, 5], 2)", [[1, 2], [3, 4], [5]]),
        ("$range(0, 10, 2)", [0, 2, 4, 6, 8, 10]),
        ("$range(5, 0, -2)", [5, 3, 1]),
        ("$hash('abc', 'SHA-256')", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("$random(7) = $random(7) and $random(7) >= 0 and $random(7) < 1", True),
        ("$length($uuid()) = 36 and $substring($uuid(), 14, 1) = '4'", True),
        ("$parse($states.input.text).x[1]", 2),
    ],
)
async def test_the_functions_step_functions_adds_to_jsonata(run: Any, expression: str, expected: Any) -> None:
    definition = machine({"A": {"Type": "Pass", "Output": f"{{% {expression} %}}", "End": True}})
    assert await run(definition, {"text": '{"x": [1, 2]}'}) == expected


@pytest.mark.parametrize("expression", ["$eval('1 + 1')", "$.a", "$$.a", "a"])
async def test_eval_and_the_top_level_input_document_are_not_available(run: Any, expression: str) -> None:
    """AWS: "$eval is not available: use $parse"; an expression has no input document (use $states.input)."""
    definition = machine({"A": {"Type": "Pass", "Output": f"{{% {expression} %}}", "End": True}})
    with pytest.raises(StatesError) as info:
        await run(definition, {"a": 1})
    assert info.value.error == "States.QueryEvaluationError"


async def test_a_string_with_space_around_the_delimiters_is_text(run: Any) -> None:
    definition = machine({"A": {"Type": "Pass", "Output": {"v": " {% 1 %}"}, "End": True}})
    assert await run(definition, {}) == {"v": " {% 1 %}"}


@pytest.mark.parametrize(
    "field",
    [
        {"Arguments": {"FunctionName": "f", "Payload": "{% $states.input.absent %}"}},
        {"Arguments": {"FunctionName": "f"}, "Output": "{% $states.result.absent %}"},
        {"Arguments": {"FunctionName": "f"}, "Assign": {"v": "{% $states.result.absent %}"}},
    ],
)
async def test_a_tasks_query_evaluation_error_is_retried_and_caught(
    run: Any, services: Any, no_sleep: list[float], field: dict[str, Any]
) -> None:
    services.lambdas.returns({"ok": True})
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                **field,
                "Retry": [{"ErrorEquals": ["States.QueryEvaluationError"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput.Error %}",
                           "Next": "B"}],
                "End": True,
            },
            "B": {"Type": "Pass", "End": True},
        }
    )  # fmt: skip
    assert await run(definition, {}) == "States.QueryEvaluationError"
    assert no_sleep == [1.0, 2.0]  # two retries, then the catcher


@pytest.mark.parametrize("value", [10, "true", None])
async def test_a_choice_condition_that_is_not_a_boolean_is_a_query_evaluation_error(
    run: Any, value: Any
) -> None:
    definition = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n %}", "Next": "Y"}],
                  "Default": "Y"},
            "Y": {"Type": "Pass", "End": True},
        },
        start="C",
    )  # fmt: skip
    with pytest.raises(StatesError) as info:
        await run(definition, {"n": value})
    assert info.value.error == "States.QueryEvaluationError"


@pytest.mark.parametrize(
    ("field", "template", "named"),
    [
        ("Output", "{% $states.input.absent %}", "Output"),
        ("Output", {"kept": {"v": "{% $doesNotExist %}"}}, "Output/kept/v"),
        ("Assign", {"x": "{% $states.input.absent %}"}, "Assign/x"),
    ],
)
async def test_an_expression_that_returns_nothing_fails_the_state(
    run: Any, field: str, template: Any, named: str
) -> None:
    definition = machine({"A": {"Type": "Pass", field: template, "End": True}})
    with pytest.raises(StatesError) as info:
        await run(definition, {"present": None})
    assert info.value.error == "States.QueryEvaluationError"
    assert f"specified for the field '{named}' returned nothing (undefined)." in info.value.cause


async def test_a_variable_holding_null_is_a_value_not_nothing(run: Any) -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Assign": {"v": None}, "Next": "B"},
            "B": {"Type": "Pass", "Output": {"v": "{% $v %}"}, "End": True},
        }
    )
    assert await run(definition, {}) == {"v": None}


async def test_json_null_is_a_value_not_nothing(run: Any) -> None:
    output = {"v": "{% $states.input.present %}", "n": "{% null %}"}
    definition = machine({"A": {"Type": "Pass", "Output": output, "End": True}})
    assert await run(definition, {"present": None}) == {"v": None, "n": None}


async def test_distributed_map_gets_a_jsonata_context_with_state(run: Any, services: Any) -> None:
    services.distributed_result = []
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": True}},
    }
    definition = machine({"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}, start="M")
    await run(definition, {"Bucket": "b"})
    call = services.distributed_calls[0]
    assert call["state"]["ItemProcessor"]["QueryLanguage"] == "JSONata"
    assert evaluate_template({"Bucket": "{% $states.input.Bucket %}"}, call["input"], call["context"]) == {
        "Bucket": "b"
    }
    stamp = evaluate_template("{% $states.context.State.EnteredTime %}", {}, call["context"])
    assert isinstance(stamp, str)
    assert stamp.endswith("Z")


def test_evaluate_template_is_jsonpath_unless_the_context_says_jsonata() -> None:
    assert evaluate_template("{% 1 + 1 %}", {}, {}) == "{% 1 + 1 %}"
    assert evaluate_template("{% 1 + 1 %}", {}, ContextDict({}, jsonata=True)) == 2
    assert evaluate_template("{% $maxItems := 2 %}", {}, ContextDict({}, jsonata=True)) == 2


def diagnostics(definition: dict[str, Any]) -> list[str]:
    return [d.message for d in validate_definition(json.dumps(definition))]


def test_jsonata_definitions_validate_and_reject_jsonpath_fields() -> None:
    good = machine({"A": {"Type": "Pass", "Output": {"x": "{% $states.input %}"}, "End": True}})
    assert diagnostics(good) == []
    bad = machine({"A": {"Type": "Pass", "InputPath": "$.x", "End": True}})
    assert any("'InputPath' is not supported in JSONata states" in m for m in diagnostics(bad))
    broken = machine({"A": {"Type": "Pass", "Output": "{% $states.input.( %}", "End": True}})
    assert any("Invalid JSONata expression" in m for m in diagnostics(broken))
    jsonpath = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": 1, "End": True}}}
    assert any("only supported in JSONata states" in m for m in diagnostics(jsonpath))


def test_jsonata_lambda_invoke_needs_function_name_in_arguments() -> None:
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    good = machine({"A": {**task, "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"}}})
    assert diagnostics(good) == []
    bad = machine({"A": {**task, "Arguments": {"Payload": 1}}})
    assert any("needs 'FunctionName' in Arguments" in m for m in diagnostics(bad))


async def test_inline_map_items_that_are_not_a_list_or_object_are_a_query_evaluation_error(run: Any) -> None:
    definition = machine(
        {"M": {"Type": "Map", "Items": "{% 5 %}", "End": True,
               "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}},
        start="M",
    )  # fmt: skip
    with pytest.raises(StatesError) as info:
        await run(definition, {})
    assert info.value.error == "States.QueryEvaluationError"
    assert "returned 5, not an array or an object" in info.value.cause


async def test_hash_reads_json_null_as_null(run: Any) -> None:
    import hashlib

    definition = machine({"A": {"Type": "Pass", "Output": "{% $hash({'a': null}, 'MD5') %}", "End": True}})
    assert await run(definition, {}) == hashlib.md5(b'{"a":null}').hexdigest()
