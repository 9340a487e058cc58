from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_distmap.local.asl import validate_definition
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


def test_string_matches_escaped_backslash_is_literal() -> None:
    assert compile_rule({"Variable": "$.v", "StringMatches": "a\\\\b*"})({"v": "a\\bc"}, {})


@pytest.mark.parametrize("pattern", ["a\\b", "a\\", "\\n*", "ok\\*\\x"])
def test_string_matches_open_escape_is_a_runtime_error_when_evaluated(pattern: str) -> None:
    # ASL spec: "If an open escape backslash \ is found in the StringMatches string, the interpreter will
    # throw a runtime error": the rule compiles (the definition is valid) and fails when it runs.
    rule = compile_rule({"Variable": "$.v", "StringMatches": pattern})
    with pytest.raises(StatesError) as info:
        rule({"v": "ab"}, {})
    assert info.value.error == "States.Runtime"
    assert "open escape" in info.value.cause


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # Java's String.compareTo orders UTF-16 code units: U+1F600 is D83D DE00, below U+FFFF and U+FF01.
        ({"Variable": "$.emoji", "StringLessThan": "\uffff"}, True),
        ({"Variable": "$.emoji", "StringGreaterThanEquals": "\uff01"}, False),
        ({"Variable": "$.fullwidth", "StringGreaterThan": "\U0001f600"}, True),
        ({"Variable": "$.fullwidth", "StringGreaterThanPath": "$.emoji"}, True),
        ({"Variable": "$.emoji", "StringLessThanEqualsPath": "$.emoji"}, True),
        ({"Variable": "$.emoji", "StringGreaterThan": "\ud7ff"}, True),  # surrogates sort above U+D7FF
        ({"Variable": "$.emoji", "StringEquals": "\U0001f600"}, True),
        ({"Variable": "$.s", "StringLessThan": "\U0001f600"}, True),
    ],
)
def test_string_order_is_java_compare_to(rule: dict[str, Any], expected: bool) -> None:
    data = {**DATA, "emoji": "\U0001f600", "fullwidth": "\uff01"}
    assert compile_rule(rule)(data, {}) is expected


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


async def test_choice_state_with_an_open_escape_is_valid_but_fails_when_run(run: Any) -> None:
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.foo", "StringMatches": "a\\b", "Next": "Yes"}],
                "Default": "Yes",
            },
            "Yes": {"Type": "Pass", "End": True},
        },
    }
    assert not [d for d in validate_definition(json.dumps(definition)) if d.severity == "ERROR"]
    with pytest.raises(StatesError) as info:
        await run(definition, {"foo": "ab"})
    assert info.value.error == "States.Runtime"
