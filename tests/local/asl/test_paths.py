from __future__ import annotations

import pytest

from airflow_distmap.local.asl import ContextDict, evaluate_path
from airflow_distmap.local.asl.paths import compile_path
from airflow_distmap.local.errors import StatesError

DATA = {"a": {"b": [10, 20, {"c": "deep"}]}, "x y": 1, "items": [{"n": 1}, {"n": 5}], "nil": None}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DATA),
        ("$.a.b", [10, 20, {"c": "deep"}]),
        ("$.a.b[1]", 20),
        ("$.a.b[-1].c", "deep"),
        ("$['x y']", 1),
        ('$["x y"]', 1),
        ("$.a['b'][0]", 10),
        ("$.a.['b'][0]", 10),
        ('$.a.["b"].[2].c', "deep"),
        ("$.nil", None),
    ],
)
def test_reference_paths_select_one_value(path: str, expected: object) -> None:
    assert compile_path(path).is_reference_path
    assert evaluate_path(path, DATA, {}) == expected


def test_bracket_notation_after_a_dot_names_one_node() -> None:
    # AWS's example for a name with a space: "you must use square bracket notation ... $.abc.['def ghi']".
    data = {"abc": {"def ghi": {"x": 1}}}
    assert compile_path("$.abc.['def ghi']").is_reference_path
    assert evaluate_path("$.abc.['def ghi']", data, {}) == {"x": 1}
    assert evaluate_path("$$.abc.['def ghi'].x", {}, data) == 1


def test_a_dot_before_a_bracket_keeps_indefinite_paths_working() -> None:
    assert evaluate_path("$.a.['b'][*]", DATA, {}) == [10, 20, {"c": "deep"}]
    assert evaluate_path("$..['c']", DATA, {}) == ["deep"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.items[*].n", [1, 5]),
        ("$.items[?(@.n > 2)].n", [5]),
        ("$..c", ["deep"]),
        ("$.a.b[0:2]", [10, 20]),
    ],
)
def test_indefinite_paths_return_every_match(path: str, expected: object) -> None:
    assert evaluate_path(path, DATA, {}) == expected


def test_context_paths_read_the_context_object() -> None:
    context = {"Map": {"Item": {"Index": 3, "Value": {"k": "v"}}}}
    assert evaluate_path("$$.Map.Item.Index", DATA, context) == 3
    assert evaluate_path("$$.Map.Item.Value.k", DATA, context) == "v"


def test_variable_paths_read_workflow_variables_without_showing_them_in_the_context() -> None:
    context = ContextDict({"Execution": {"Name": "e"}}, {"bucket": {"name": "b1"}, "limit": 3})
    assert evaluate_path("$bucket.name", DATA, context) == "b1"
    assert evaluate_path("$limit", DATA, context) == 3
    assert evaluate_path("$$", DATA, context) == {"Execution": {"Name": "e"}}


@pytest.mark.parametrize("path", ["$.missing", "$.a.b[7]", "$.a.b.c", "$$.Map.Item", "$nothing"])
def test_a_path_that_matches_nothing_is_a_states_runtime_error(path: str) -> None:
    with pytest.raises(StatesError) as info:
        evaluate_path(path, DATA, {})
    assert info.value.error == "States.Runtime"
    assert path in info.value.cause


def test_missing_reference_path_cause_reads_like_aws() -> None:
    with pytest.raises(StatesError) as info:
        evaluate_path("$.a.missing", DATA, {})
    assert info.value.cause == "Invalid path '$.a.missing' : No results for path: $['a']['missing']"


def test_invalid_path_text_is_a_runtime_error() -> None:
    with pytest.raises(StatesError, match=r"States\.Runtime"):
        evaluate_path("a.b", DATA, {})


def test_paths_are_compiled_once() -> None:
    assert compile_path("$.a.b") is compile_path("$.a.b")
