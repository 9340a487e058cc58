from __future__ import annotations

import pytest

from airflow_distmap.local.asl import ContextDict, evaluate_template, item_context
from airflow_distmap.local.asl.templates import CompiledTemplate
from airflow_distmap.local.errors import StatesError


def test_template_resolves_paths_context_and_intrinsics_and_keeps_constants() -> None:
    template = {
        "static": {"nested": [1, {"deep": True}]},
        "fromInput.$": "$.a",
        "index.$": "$$.Map.Item.Index",
        "value.$": "$$.Map.Item.Value",
        "number.$": "States.StringToJson($$.Map.Item.Value.n)",
        "list": [{"x.$": "$.a"}, "plain"],
    }
    context = item_context({"Execution": {}}, 4, {"n": "12"}, "STATE_DATA")
    assert evaluate_template(template, {"a": "A"}, context) == {
        "static": {"nested": [1, {"deep": True}]},
        "fromInput": "A",
        "index": 4,
        "value": {"n": "12"},
        "number": 12,
        "list": [{"x": "A"}, "plain"],
    }


def test_item_context_sets_source_and_key_and_keeps_variables() -> None:
    context = item_context(ContextDict({"Execution": {}}, {"v": 1}), 0, "val", "S3://bucket/key", key="k")
    assert context["Map"] == {"Item": {"Index": 0, "Value": "val", "Key": "k", "Source": "S3://bucket/key"}}
    assert evaluate_template({"v.$": "$v"}, {}, context) == {"v": 1}


def test_missing_field_path_cause_names_the_path_the_field_and_the_input() -> None:
    with pytest.raises(StatesError) as info:
        evaluate_template({"x.$": "$.x"}, {"y": 1}, {})
    assert info.value.error == "States.Runtime"
    assert info.value.cause == (
        "The JSONPath '$.x' specified for the field 'x.$' could not be found in the input '{\"y\":1}'"
    )


def test_dollar_strings_without_dot_dollar_key_are_literals() -> None:
    assert evaluate_template({"bucketName": "$bucket", "p": "$.a"}, {"a": 1}, {}) == {
        "bucketName": "$bucket",
        "p": "$.a",
    }


def test_a_constant_template_is_returned_as_is() -> None:
    compiled = CompiledTemplate({"a": [1, 2]})
    assert compiled.is_constant
    assert compiled.evaluate({}, {}) == {"a": [1, 2]}


def test_invalid_template_value_is_a_runtime_error() -> None:
    with pytest.raises(StatesError, match="must start with"):
        evaluate_template({"x.$": "no-dollar"}, {}, {})


# -- the Distributed Map's ItemSelector fast path ----------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        {"index.$": "$$.Map.Item.Index", "row": {"text.$": "$$.Map.Item.Value.text", "k": 1}},
        {"all.$": "$$.Map.Item.Value", "first.$": "$$.Map.Item.Value['list'][0]", "c": [1, {"d": 2}]},
        [{"i.$": "$$.Map.Item.Index"}, "constant"],
        {"only": "constants"},
    ],
)
def test_item_selector_fast_path_matches_the_general_evaluation(template: object) -> None:
    from airflow_distmap.local.asl.templates import compile_item_selector

    value = {"text": "héllo", "list": ["a", "b"]}
    fast = compile_item_selector(template)
    assert fast is not None
    general = evaluate_template(template, {"in": 1}, item_context({"Execution": {}}, 7, value, "STATE_DATA"))
    assert fast(7, [value]) == [general]


@pytest.mark.parametrize(
    "template",
    [
        {"x.$": "$.fromInput"},
        {"x.$": "$$.Map.Item.Source"},
        {"x.$": "States.Format('{}', $$.Map.Item.Index)"},
        {"x.$": "$$.Map.Item.Value..deep"},
        {"x.$": "$$.Execution.Name"},
        {"x.$": 3},
        {"x": "{% $states.context.Map.Item.Index %}"},
    ],
)
def test_item_selector_fast_path_declines_other_templates(template: object) -> None:
    from airflow_distmap.local.asl.templates import compile_item_selector

    assert compile_item_selector(template) is None


@pytest.mark.parametrize("path", ["$$.Map.Item.Value.absent", "$$.Map.Item.Value['absent'][0]"])
@pytest.mark.parametrize("item", [{"present": 1}, ["not", "an", "object"], "text", None])
def test_item_selector_fast_path_raises_for_an_item_that_does_not_fit(path: str, item: object) -> None:
    from airflow_distmap.local.asl.templates import ItemPathMissing, compile_item_selector

    fast = compile_item_selector({"x.$": path})
    assert fast is not None
    assert fast(0, [{"absent": [5]}]) == [{"x": [5] if path.endswith("absent") else 5}]
    with pytest.raises((KeyError, TypeError, ItemPathMissing)):  # the caller then goes the general way
        fast(0, [{"absent": [1]}, item])


def test_item_selector_fast_path_selects_a_chunk_in_order_and_keeps_odd_keys() -> None:
    from airflow_distmap.local.asl.templates import compile_item_selector

    template = {
        "i.$": "$$.Map.Item.Index",
        "'quoted\\\" key": {"t.$": "$$.Map.Item.Value.t"},
        "c": {"k": [1]},
    }
    fast = compile_item_selector(template)
    assert fast is not None
    selected = fast(40, [{"t": "a"}, {"t": "b"}])
    assert selected == [
        {"i": 40, "'quoted\\\" key": {"t": "a"}, "c": {"k": [1]}},
        {"i": 41, "'quoted\\\" key": {"t": "b"}, "c": {"k": [1]}},
    ]
