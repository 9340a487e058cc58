from __future__ import annotations

from typing import Any

import pytest

from airflow_distmap.local.asl.choice import compile_rule
from airflow_distmap.local.errors import StatesError

DATA = {
    "s": "hello",
    "n": 5,
    "f": 2.5,
    "b": True,
    "t": "2024-01-02T03:04:05Z",
    "t2": "2024-01-02T03:04:05.500+01:00",
    "nil": None,
    "other": 5,
    "name": "log-2024.txt",
    "star": "a*b",
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"StringEquals": "hello"}, True),
        ({"StringEquals": "nope"}, False),
        ({"StringLessThan": "world"}, True),
        ({"StringGreaterThan": "abc"}, True),
        ({"StringLessThanEquals": "hello"}, True),
        ({"StringGreaterThanEquals": "help"}, False),
        ({"NumericEquals": 5}, True),
        ({"NumericLessThan": 6}, True),
        ({"NumericGreaterThan": 5}, False),
        ({"NumericLessThanEquals": 5}, True),
        ({"NumericGreaterThanEquals": 5.5}, False),
        ({"BooleanEquals": True}, True),
        ({"TimestampEquals": "2024-01-02T03:04:05Z"}, True),
        ({"TimestampLessThan": "2025-01-01T00:00:00Z"}, True),
        ({"TimestampGreaterThan": "2025-01-01T00:00:00Z"}, False),
        ({"TimestampLessThanEquals": "2024-01-02T03:04:05Z"}, True),
        ({"TimestampGreaterThanEquals": "2024-01-02T03:04:06Z"}, False),
    ],
)
def test_comparison_operators(rule: dict[str, Any], expected: bool) -> None:
    operator = next(iter(rule))
    variable = {"String": "$.s", "Numeric": "$.n", "Boolean": "$.b", "Timestamp": "$.t"}[
        next(k for k in ("String", "Numeric", "Boolean", "Timestamp") if operator.startswith(k))
    ]
    assert compile_rule({"Variable": variable, **rule})(DATA, {}) is expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.n", "NumericEqualsPath": "$.other"}, True),
        ({"Variable": "$.f", "NumericLessThanPath": "$.n"}, True),
        ({"Variable": "$.s", "StringEqualsPath": "$.s"}, True),
        ({"Variable": "$.b", "BooleanEqualsPath": "$.b"}, True),
        ({"Variable": "$.t", "TimestampLessThanPath": "$.t2"}, False),
        ({"Variable": "$.t2", "TimestampLessThanPath": "$.t"}, True),
        ({"Variable": "$.n", "StringEqualsPath": "$.s"}, False),
    ],
)
def test_path_variants_compare_two_values_of_the_input(rule: dict[str, Any], expected: bool) -> None:
    assert compile_rule(rule)(DATA, {}) is expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.missing", "IsPresent": False}, True),
        ({"Variable": "$.nil", "IsPresent": True}, True),
        ({"Variable": "$.nil", "IsNull": True}, True),
        ({"Variable": "$.s", "IsNull": True}, False),
        ({"Variable": "$.s", "IsString": True}, True),
        ({"Variable": "$.n", "IsNumeric": True}, True),
        ({"Variable": "$.b", "IsNumeric": True}, False),
        ({"Variable": "$.b", "IsBoolean": True}, True),
        ({"Variable": "$.t", "IsTimestamp": True}, True),
        ({"Variable": "$.s", "IsTimestamp": False}, True),
        ({"Variable": "$.missing", "IsString": True}, False),
    ],
)
def test_type_tests(rule: dict[str, Any], expected: bool) -> None:
    assert compile_rule(rule)(DATA, {}) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("log-*.txt", True), ("log-*.csv", False), ("*", True), ("LOG-*", False)],
)
def test_string_matches_wildcards(pattern: str, expected: bool) -> None:
    assert compile_rule({"Variable": "$.name", "StringMatches": pattern})(DATA, {}) is expected


def test_string_matches_escaped_star_is_literal() -> None:
    assert compile_rule({"Variable": "$.star", "StringMatches": "a\\*b"})(DATA, {})
    assert not compile_rule({"Variable": "$.s", "StringMatches": "h\\*"})(DATA, {})


def test_and_or_not() -> None:
    rule = {
        "And": [
            {"Variable": "$.n", "NumericGreaterThan": 1},
            {
                "Or": [
                    {"Variable": "$.s", "StringEquals": "x"},
                    {"Not": {"Variable": "$.b", "BooleanEquals": False}},
                ]
            },
        ]
    }
    assert compile_rule(rule)(DATA, {})
    assert not compile_rule({"Not": rule})(DATA, {})


def test_type_mismatch_is_false_not_an_error() -> None:
    assert compile_rule({"Variable": "$.s", "NumericEquals": 5})(DATA, {}) is False


def test_missing_variable_is_a_runtime_error() -> None:
    with pytest.raises(StatesError) as info:
        compile_rule({"Variable": "$.missing", "StringEquals": "x"})(DATA, {})
    assert info.value.error == "States.Runtime"
    assert "$.missing" in info.value.cause


async def test_choice_state_default_and_no_match(run: Any) -> None:
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
                "Default": "Other",
            },
            "One": {"Type": "Pass", "Result": "one", "End": True},
            "Other": {"Type": "Pass", "Result": "other", "End": True},
        },
    }
    assert await run(definition, {"n": 1}) == "one"
    assert await run(definition, {"n": 2}) == "other"
    del definition["States"]["C"]["Default"]
    with pytest.raises(StatesError) as info:
        await run(definition, {"n": 2})
    assert info.value.error == "States.NoChoiceMatched"
