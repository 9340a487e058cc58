from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from airflow_distmap.local.asl import evaluate_template
from airflow_distmap.local.asl.intrinsics import IntrinsicSyntaxError, compile_intrinsic
from airflow_distmap.local.errors import StatesError

DATA = {
    "name": "World",
    "n": 7,
    "json": '{"a": [1, 2]}',
    "list": [1, 2, 2, 3, {"k": 1}, {"k": 1}],
    "obj1": {"a": 1, "b": {"x": 1}},
    "obj2": {"b": {"y": 2}, "c": 3},
    "csv": "1,2,,3",
}


def call(expression: str, data: object = DATA) -> object:
    return evaluate_template({"out.$": expression}, data, {"Execution": {"Name": "exec"}})["out"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Format('Hello, {}!', $.name)", "Hello, World!"),
        ("States.Format('{} is {}', $.name, $.n)", "World is 7"),
        ("States.Format('literal \\{\\} and {}', 'x')", "literal {} and x"),
        ("States.Format('it\\'s {}', $$.Execution.Name)", "it's exec"),
        ("States.StringToJson($.json)", {"a": [1, 2]}),
        ("States.JsonToString($.obj1)", '{"a":1,"b":{"x":1}}'),
        ("States.Array($.n, 'two', 3, true, null)", [7, "two", 3, True, None]),
        ("States.ArrayPartition(States.ArrayRange(1, 5, 1), 2)", [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains($.list, 3)", True),
        ("States.ArrayContains($.list, 9)", False),
        ("States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9]),
        ("States.ArrayRange(5, 1, -2)", [5, 3, 1]),
        # "If you specify a non-integer value ... Step Functions will round it off to the nearest integer".
        ("States.ArrayRange(1.2, 9.4, 2.1)", [1, 3, 5, 7, 9]),
        ("States.ArrayPartition(States.ArrayRange(1, 9, 1), 4.6)", [[1, 2, 3, 4, 5], [6, 7, 8, 9]]),
        ("States.ArrayPartition(States.Array(1, 2, 3), 1.2)", [[1], [2], [3]]),
        ("States.ArrayGetItem($.list, 3)", 3),
        ("States.ArrayLength($.list)", 6),
        ("States.ArrayUnique($.list)", [1, 2, 3, {"k": 1}]),
        ("States.Base64Encode('Data to encode')", base64.b64encode(b"Data to encode").decode()),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode"),
        ("States.Hash('input data', 'SHA-256')", hashlib.sha256(b"input data").hexdigest()),
        ("States.Hash('input data', 'MD5')", hashlib.md5(b"input data").hexdigest()),
        ("States.JsonMerge($.obj1, $.obj2, false)", {"a": 1, "b": {"y": 2}, "c": 3}),
        ("States.MathAdd($.n, -10)", -3),
        # AWS rounds non-integers half up (recorded: 1.49 + 1.5 = 3, 2.5 + 0 = 3, -2.5 + 0 = -2).
        ("States.MathAdd(1.49, 1.5)", 3),
        ("States.MathAdd(2.5, 0)", 3),
        ("States.MathAdd(-2.5, 0)", -2),
        ("States.MathAdd(-1.5, -1.51)", -3),
        ("States.StringSplit($.csv, ',')", ["1", "2", "3"]),
        ("States.StringSplit('This.is+a,test=string', '.+,=')", ["This", "is", "a", "test", "string"]),
    ],
)
def test_intrinsic_functions(expression: str, expected: object) -> None:
    assert call(expression) == expected


def test_math_random_is_in_range_and_reproducible_with_a_seed() -> None:
    values = {call("States.MathRandom(1, 4)") for _ in range(200)}
    assert values <= {1, 2, 3}
    assert call("States.MathRandom(0, 1000, 42)") == call("States.MathRandom(0, 1000, 42)")
    assert 13 <= call("States.MathRandom(12.50, 44.51)") < 45  # AWS rounds both ends


def test_rounded_array_arguments_come_from_paths_too() -> None:
    assert call("States.ArrayPartition($.list, $.size)", {"list": [1, 2, 3], "size": 1.2}) == [[1], [2], [3]]


@pytest.mark.parametrize("function", ["States.Hash($.d, 'MD5')", "States.Base64Encode($.d)"])
def test_hash_and_base64_take_at_most_10000_characters(function: str) -> None:
    # States.Hash: "The data you provide must be an object string containing 10,000 characters or less".
    assert call(function, {"d": "a" * 10000})
    with pytest.raises(StatesError) as info:
        call(function, {"d": "a" * 10001})
    assert info.value.error == "States.Runtime"
    assert "the input cannot be longer than 10000 characters" in info.value.cause


def test_uuid_returns_a_fresh_uuid4() -> None:
    first, second = call("States.UUID()"), call("States.UUID()")
    assert uuid.UUID(str(first)).version == 4
    assert first != second


@pytest.mark.parametrize(
    "expression",
    [
        "States.StringToJson('not json')",
        "States.ArrayGetItem($.list, 99)",
        "States.ArrayRange(1, 2000, 1)",
        "States.ArrayRange(1, 5, 0.4)",  # the step rounds to 0
        "States.ArrayRange('1', 5, 1)",
        "States.ArrayPartition($.list, 0.4)",  # the chunk size rounds to 0
        "States.ArrayPartition($.list, '2')",
        "States.JsonMerge($.obj1, $.obj2, true)",
        "States.Hash('x', 'SHA-3')",
        "States.MathAdd('a', 1)",
        "States.MathAdd(2147483648, 1)",
        "States.Format('{} {}', 'only one')",
        "States.Base64Decode('%%%')",
        "States.Format('{}', $.missing)",
        "States.Format('a\\qb')",  # an open escape: a backslash before no reserved character
        "States.Array('x\\n')",
    ],
)
def test_a_failing_intrinsic_is_a_states_runtime_error(expression: str) -> None:
    with pytest.raises(StatesError) as info:
        call(expression)
    assert info.value.error == "States.Runtime"


@pytest.mark.parametrize(
    "expression",
    [
        "States.Nope(1)",
        "States.Format('a'",
        "States.Format('a') trailing",
        "States.Array(bad)",
        "States.Format('x",
        "States.UUID(1)",
        "States.ArrayLength()",
        "States.MathAdd(1, 2, 3)",
        "States.Format()",
        "States.Array(" * 11 + ")" * 11,  # "You can nest up to 10 intrinsic functions within a field"
    ],
)
def test_malformed_calls_are_rejected_at_compile_time(expression: str) -> None:
    with pytest.raises(IntrinsicSyntaxError):
        compile_intrinsic(expression)


def test_ten_nested_calls_are_allowed() -> None:
    assert call("States.Array(" * 10 + "1" + ")" * 10) == [[[[[[[[[[1]]]]]]]]]]
