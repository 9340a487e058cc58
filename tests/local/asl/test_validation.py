from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_distmap.local.asl import validate_definition

CONFORMANCE = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "distributed-map"
PASS = {"Type": "Pass", "End": True}


def distributed_map(**fields: Any) -> dict[str, Any]:
    state = {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "P",
            "States": {"P": dict(PASS)},
        },
        "End": True,
        **fields,
    }
    return {"StartAt": "M", "States": {"M": state}}


def errors(definition: Any) -> list[tuple[str, str, str]]:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return [(d.code, d.message, d.location) for d in validate_definition(text) if d.severity == "ERROR"]


def assert_error(definition: Any, code: str, fragment: str) -> None:
    found = errors(definition)
    assert any(c == code and fragment in m for c, m, _ in found), found


@pytest.mark.parametrize(
    "reader",
    [
        {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "PARQUET"},
            "Parameters": {"Bucket": "b", "Key": "k.parquet"},
        },
        {
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "ReaderConfig": {"InputType": "CSV", "Transformation": "LOAD_AND_FLATTEN", "CSVDelimiter": "TAB"},
            "Parameters": {"Bucket": "b", "Prefix": "parts/"},
        },
    ],
)
def test_parquet_files_and_flattened_listings_are_valid_readers(reader: dict[str, Any]) -> None:
    assert errors(distributed_map(ItemReader=reader)) == []


def test_a_flattened_listing_needs_an_input_type() -> None:
    reader = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "ReaderConfig": {"Transformation": "LOAD_AND_FLATTEN"},
        "Parameters": {"Bucket": "b"},
    }
    assert_error(distributed_map(ItemReader=reader), "SCHEMA_VALIDATION_FAILED", "requires InputType")
    reader["ReaderConfig"] = {"InputType": "CSV", "Transformation": "EXPAND"}
    assert_error(distributed_map(ItemReader=reader), "SCHEMA_VALIDATION_FAILED", "NONE or LOAD_AND_FLATTEN")


def test_a_valid_definition_has_no_diagnostics() -> None:
    definition = distributed_map(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {
                "InputType": "CSV",
                "CSVHeaderLocation": "FIRST_ROW",
                "CSVDelimiter": "PIPE",
                "MaxItems": 10,
            },
            "Parameters": {"Bucket": "b", "Key.$": "$.key"},
        },
        ItemSelector={"row.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatch": 100, "BatchInput": {"run.$": "$$.Execution.Name"}},
        MaxConcurrency=50,
        ToleratedFailurePercentage=5,
        Label="rows",
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "b", "Prefix": "p"},
            "WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSONL"},
        },
        Retry=[
            {"ErrorEquals": ["States.ItemReaderFailed"], "MaxAttempts": 1},
            {"ErrorEquals": ["States.ALL"]},
        ],
    )
    processor = definition["States"]["M"]["ItemProcessor"]
    processor["States"] = {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "rows", "Payload.$": "$"},
            "Retry": [
                {"ErrorEquals": ["Lambda.ServiceException"], "JitterStrategy": "FULL", "MaxDelaySeconds": 10}
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "F"}],
            "OutputPath": "$.Payload",
            "End": True,
        },
        "F": {"Type": "Fail", "ErrorPath": "$.error.Error", "Cause": "row failed"},
    }
    processor["StartAt"] = "T"
    assert validate_definition(json.dumps(definition)) == []


def test_every_conformance_definition_validates() -> None:
    cases = sorted(CONFORMANCE.glob("*.json"))
    assert len(cases) > 50, f"conformance corpus not found at {CONFORMANCE}"
    for case in cases:
        data = json.loads(case.read_text())
        definition = data.get("definition")
        if definition is None:
            continue
        text = json.dumps(definition).replace(
            "${LAMBDA_ARN}", "arn:aws:lambda:us-east-1:111111111111:function:f"
        )
        assert errors(text) == [], case.name


def test_invalid_json_and_missing_fields() -> None:
    assert_error("{not json", "INVALID_JSON_DESCRIPTION", "not valid JSON")
    assert_error("[]", "SCHEMA_VALIDATION_FAILED", "JSON object")
    assert_error({"States": {"A": PASS}}, "SCHEMA_VALIDATION_FAILED", "'StartAt' is required")
    assert_error({"StartAt": "A"}, "SCHEMA_VALIDATION_FAILED", "'States' is required")
    assert_error({"StartAt": "B", "States": {"A": PASS}}, "MISSING_TRANSITION_TARGET", "StartAt 'B'")


def test_transitions() -> None:
    assert_error(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}},
        "MISSING_TRANSITION_TARGET",
        "Nowhere",
    )
    assert_error(
        {"StartAt": "A", "States": {"A": {"Type": "Pass"}}}, "SCHEMA_VALIDATION_FAILED", "'Next' or 'End'"
    )
    assert_error(
        {"StartAt": "A", "States": {"A": PASS, "Orphan": PASS}},
        "MISSING_TRANSITION_TARGET",
        'State "Orphan" is not reachable.',
    )
    loop = {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}
    assert_error({"StartAt": "A", "States": loop}, "MISSING_END_STATE", "Workflow has no terminal state")
    choice = {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "Next": "Gone"}]}
    assert_error({"StartAt": "C", "States": {"C": choice}}, "MISSING_TRANSITION_TARGET", "Gone")


def choice_machine(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "C",
        "States": {"C": {"Type": "Choice", "Choices": [rule], "Default": "N"}, "Y": PASS, "N": PASS},
    }


@pytest.mark.parametrize("combinator", ["And", "Or"])
def test_a_rule_inside_and_or_not_has_no_next(combinator: str) -> None:
    inner = {"Variable": "$.a", "IsPresent": True, "Next": "N"}
    assert_error(choice_machine({combinator: [inner], "Next": "Y"}), "SCHEMA_VALIDATION_FAILED", "'Next'")
    assert_error(choice_machine({"Not": inner, "Next": "Y"}), "SCHEMA_VALIDATION_FAILED", "'Next'")
    valid = {"Variable": "$.a", "IsPresent": True}
    assert errors(choice_machine({combinator: [valid], "Next": "Y"})) == []


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"Variable": "$.a", "IsNull": "true"}, "'IsNull' needs true or false"),
        ({"Variable": "$.a", "BooleanEquals": 1}, "'BooleanEquals' needs true or false"),
        ({"And": [{"Variable": "$.a", "StringEquals": 5}]}, "'StringEquals' needs a string"),
        ({"Not": {"Variable": "$.a", "NumericEquals": "5"}}, "'NumericEquals' needs a number"),
    ],
)
def test_choice_operands_are_type_checked_at_every_depth(rule: dict[str, Any], fragment: str) -> None:
    assert_error(choice_machine({**rule, "Next": "Y"}), "SCHEMA_VALIDATION_FAILED", fragment)


def test_a_missing_next_is_named_as_required() -> None:
    found = errors(choice_machine({"Variable": "$.a", "IsPresent": True}))
    assert ("SCHEMA_VALIDATION_FAILED", "The field 'Next' is required", "/States/C/Choices/0") in found


def lambda_invoke(**parameters: Any) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}
    return {"StartAt": "T", "States": {"T": {**task, "Parameters": {"FunctionName": "f", **parameters}}}}


def test_lambda_invoke_takes_only_the_invoke_apis_fields() -> None:
    assert_error(lambda_invoke(Bogus=1), "SCHEMA_VALIDATION_FAILED", "The field 'Bogus' is not supported")
    assert_error(lambda_invoke(**{"Bogus.$": "$.x"}), "SCHEMA_VALIDATION_FAILED", "The field 'Bogus'")
    fields = {"Payload.$": "$", "ClientContext": "e30=", "Qualifier": "$LATEST", "LogType": "None"}
    assert errors(lambda_invoke(**fields)) == []


def test_unknown_fields_and_types() -> None:
    assert_error(
        {"StartAt": "A", "States": {"A": {**PASS, "Bogus": 1}}}, "SCHEMA_VALIDATION_FAILED", "'Bogus'"
    )
    assert_error(
        {"StartAt": "A", "States": {"A": {"Type": "Nope"}}}, "SCHEMA_VALIDATION_FAILED", "invalid Type"
    )


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("Label", "x" * 41, "40 characters"),
        ("Label", "has space", "forbidden character"),
        ("Label", "a:b", "forbidden character"),
        ("ToleratedFailurePercentage", 101, "between 0 and 100"),
        ("ToleratedFailureCount", -1, "ToleratedFailureCount"),
        ("MaxConcurrency", -5, "MaxConcurrency"),
        ("ItemBatcher", {"BatchInput": {}}, "MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)"),
        ("ItemBatcher", {"MaxInputBytesPerBatch": 300000}, "262144"),
        ("ResultWriter", {}, "non-empty"),
        ("ResultWriter", {"Resource": "arn:aws:states:::s3:putObject"}, "both Resource and Parameters"),
        ("ResultWriter", {"WriterConfig": {"OutputType": "CSV"}}, "OutputType"),
        (
            "ItemReader",
            {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "MaxItems": 100000001},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "MaxItems",
        ),
        (
            "ItemReader",
            {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN"},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "CSVHeaders",
        ),
        (
            "ItemReader",
            {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV", "CSVDelimiter": "HASH"},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "CSVDelimiter",
        ),
        (
            "ItemReader",
            {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON", "Transformation": "NONE"},
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "Transformation is only allowed with arn:aws:states:::s3:listObjectsV2",
        ),
        (
            "ItemReader",
            {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "data/rows"},  # no leading /
                "Parameters": {"Bucket": "b", "Key": "k"},
            },
            "ItemsPointer must be a JSON Pointer",
        ),
    ],
)
def test_distributed_map_field_rules(field: str, value: Any, fragment: str) -> None:
    assert_error(distributed_map(**{field: value}), "SCHEMA_VALIDATION_FAILED", fragment)


def test_mutually_exclusive_fields() -> None:
    assert_error(
        distributed_map(MaxConcurrency=1, MaxConcurrencyPath="$.c"),
        "SCHEMA_VALIDATION_FAILED",
        "mutually exclusive",
    )
    assert_error(
        distributed_map(ToleratedFailureCount=1, ToleratedFailureCountPath="$.c"),
        "SCHEMA_VALIDATION_FAILED",
        "mutually exclusive",
    )
    assert_error(
        distributed_map(ItemSelector={}, Parameters={}), "SCHEMA_VALIDATION_FAILED", "mutually exclusive"
    )
    fail = {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}
    assert_error({"StartAt": "F", "States": {"F": fail}}, "SCHEMA_VALIDATION_FAILED", "mutually exclusive")


def test_labels_must_be_unique() -> None:
    definition = distributed_map(Label="same", Next="M2")
    del definition["States"]["M"]["End"]
    second = copy.deepcopy(distributed_map(Label="same")["States"]["M"])
    definition["States"]["M2"] = second
    assert_error(definition, "SCHEMA_VALIDATION_FAILED", "must be unique")


def test_processor_config() -> None:
    definition = distributed_map()
    del definition["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"]
    assert_error(definition, "SCHEMA_VALIDATION_FAILED", "ExecutionType must be STANDARD or EXPRESS")
    definition["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["Mode"] = "SIDEWAYS"
    assert_error(definition, "SCHEMA_VALIDATION_FAILED", "Mode must be INLINE or DISTRIBUTED")
    inline = distributed_map(ItemBatcher={"MaxItemsPerBatch": 2})
    inline["States"]["M"]["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    assert_error(inline, "SCHEMA_VALIDATION_FAILED", "only allowed in a DISTRIBUTED Map")


@pytest.mark.parametrize(
    ("retry", "fragment"),
    [
        ([{"ErrorEquals": []}], "non-empty list"),
        ([{"ErrorEquals": ["States.ALL", "E"]}], "alone"),
        ([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}], "last"),
        ([{"ErrorEquals": ["E"], "IntervalSeconds": 0}], "IntervalSeconds"),
        ([{"ErrorEquals": ["E"], "MaxAttempts": -1}], "MaxAttempts"),
        ([{"ErrorEquals": ["E"], "BackoffRate": 0.5}], "BackoffRate"),
        ([{"ErrorEquals": ["E"], "MaxDelaySeconds": 31622401}], "MaxDelaySeconds"),
        ([{"ErrorEquals": ["E"], "JitterStrategy": "HALF"}], "JitterStrategy"),
    ],
)
def test_retrier_rules(retry: list[dict[str, Any]], fragment: str) -> None:
    assert_error(distributed_map(Retry=retry), "SCHEMA_VALIDATION_FAILED", fragment)


def test_catcher_rules() -> None:
    assert_error(
        distributed_map(Catch=[{"ErrorEquals": ["E"], "Next": "Missing"}]),
        "MISSING_TRANSITION_TARGET",
        "Missing",
    )


@pytest.mark.parametrize(
    ("definition", "feature"),
    [
        (
            distributed_map(
                ItemReader={
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "MANIFEST"},
                    "Parameters": {"Bucket": "b", "Key": "k"},
                }
            ),
            "ItemReader InputType MANIFEST",
        ),
        (
            distributed_map(
                ItemReader={
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"ManifestType": "S3_INVENTORY"},
                    "Parameters": {"Bucket": "b", "Key": "k"},
                }
            ),
            "ManifestType S3_INVENTORY",
        ),
        (
            {
                "StartAt": "T",
                "States": {
                    "T": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True}
                },
            },
            "Task resource arn:aws:states:::dynamodb:putItem",
        ),
        (
            {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "f"},
                        "HeartbeatSeconds": 5,
                        "End": True,
                    }
                },
            },
            "HeartbeatSeconds",
        ),
        (
            {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "f", "InvocationType": "Event"},
                        "End": True,
                    }
                },
            },
            "InvocationType Event",
        ),
        (lambda_invoke(LogType="Tail"), "LogType Tail"),
    ],
)
def test_unsupported_features_are_errors_naming_the_feature(definition: dict[str, Any], feature: str) -> None:
    assert_error(definition, "UNSUPPORTED_FEATURE", f"{feature}")
    assert any("not supported by the local runtime" in m for _, m, _ in errors(definition))


def test_item_reader_fields_the_local_reader_would_not_send_are_refused() -> None:
    listing = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "b", "Prefx": "in/"}}
    assert_error(  # a typo would otherwise list the whole bucket
        distributed_map(ItemReader=listing),
        "UNSUPPORTED_FEATURE",
        "The ItemReader field 'Prefx' is not one the local reader sends to s3:listObjectsV2 (Bucket, "
        "ExpectedBucketOwner, Prefix): check its spelling",
    )
    ranged = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV"},
        "Parameters": {"Bucket": "b", "Key.$": "$.key", "Range": "bytes=0-99"},
    }
    assert_error(distributed_map(ItemReader=ranged), "UNSUPPORTED_FEATURE", "field 'Range' is not one")


def test_invalid_paths_and_templates() -> None:
    assert_error(
        {"StartAt": "A", "States": {"A": {**PASS, "ResultPath": "$.a[*]"}}},
        "SCHEMA_VALIDATION_FAILED",
        "ResultPath",
    )
    assert_error(  # the context object is read-only
        {"StartAt": "A", "States": {"A": {**PASS, "ResultPath": "$$.Execution"}}},
        "SCHEMA_VALIDATION_FAILED",
        "ResultPath",
    )
    assert_error(
        {"StartAt": "A", "States": {"A": {**PASS, "Parameters": {"x.$": "States.Nope()"}}}},
        "SCHEMA_VALIDATION_FAILED",
        "States.Nope",
    )
    assert_error(
        {"StartAt": "A", "States": {"A": {**PASS, "Parameters": {"x.$": "oops"}}}},
        "SCHEMA_VALIDATION_FAILED",
        "x.$",
    )


def test_diagnostics_have_the_api_shape() -> None:
    (diagnostic,) = validate_definition(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}))
    assert diagnostic.to_dict() == {
        "severity": "ERROR",
        "code": "SCHEMA_VALIDATION_FAILED",
        "message": "A state must have exactly one of 'Next' or 'End': true",
        "location": "/States/A",
    }


def test_definitions_built_by_the_provider_are_accepted() -> None:
    from airflow_distmap.definitions import (
        CsvItemReader,
        DistributedMap,
        ItemBatcher,
        JsonItemReader,
        JsonlItemReader,
        LambdaItemProcessor,
        ResultWriter,
        S3PrefixItemReader,
    )

    writer = ResultWriter(uri="s3://out-bucket/results/")
    built = [
        DistributedMap(
            item_reader=CsvItemReader(uri="s3://in-bucket/rows.csv", delimiter="PIPE", max_items=10),
            item_processor=LambdaItemProcessor("process-row", execution_type="EXPRESS", timeout_seconds=60),
            item_selector={"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"},
            item_batcher=ItemBatcher(max_items_per_batch=50, max_input_bytes_per_batch=262144),
            max_concurrency=100,
            tolerated_failure_count=5,
            tolerated_failure_percentage=1.5,
            label="Rows",
            result_writer=writer,
        ).build(),
        DistributedMap(
            item_reader=JsonlItemReader(uri="s3://in-bucket/k.jsonl"),
            item_processor=LambdaItemProcessor("f"),
            result_writer=writer,
        ).build(),
        DistributedMap(
            item_reader=JsonItemReader(uri="s3://in-bucket/k.json"),
            item_processor=LambdaItemProcessor("arn:aws:lambda:us-east-1:123456789012:function:f"),
            result_writer=writer,
        ).build(),
        DistributedMap(
            item_reader=S3PrefixItemReader(uri="s3://in-bucket/prefix/"),
            item_processor=LambdaItemProcessor("f"),
            result_writer=writer,
        ).build(),
    ]
    for definition in built:
        assert validate_definition(json.dumps(definition)) == []


@pytest.mark.parametrize(
    "definition",
    [
        {"StartAt": "A", "States": {"A": {"Type": [1], "End": True}}},
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": {"x": 1}}}},
        {"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [{"Variable": 1, "Next": []}]}}},
        {"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": 5, "Default": ["A"]}}},
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": [1], "End": True}}},
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                          "Parameters": {"FunctionName": "f"}, "Catch": [{"Next": 3}],
                                          "End": True}}},
    ],
)  # fmt: skip
def test_malformed_definitions_get_diagnostics_never_exceptions(definition: dict[str, Any]) -> None:
    found = errors(definition)
    assert found
    allowed = ("SCHEMA_VALIDATION_FAILED", "MISSING_TRANSITION_TARGET", "MISSING_END_STATE")
    assert all(code in allowed for code, _, _ in found)


def test_an_executions_timeout_is_accepted_at_the_top_level_only() -> None:
    assert errors({"TimeoutSeconds": 5, "StartAt": "A", "States": {"A": PASS}}) == []
    assert_error(
        {"TimeoutSeconds": 0, "StartAt": "A", "States": {"A": PASS}}, "SCHEMA_VALIDATION_FAILED", "positive"
    )
    inner = {"TimeoutSeconds": 5, "StartAt": "A", "States": {"A": PASS}}
    nested = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [inner], "End": True}}}
    assert_error(nested, "UNSUPPORTED_FEATURE", "TimeoutSeconds inside")


def test_a_path_in_a_field_without_dollar_and_a_static_pass_result_are_warnings() -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Result": {"nested": {"a.$": "$.x"}}, "Next": "Q"},
            "Q": {
                "Type": "Pass",
                "Parameters": {"a": "$.x", "b": {"c": "$$.Map"}, "d": "$5", "e.$": "$"},
                "End": True,
            },
        },
    }
    found = [(d.severity, d.code, d.location) for d in validate_definition(json.dumps(definition))]
    assert sorted(found) == [
        ("WARNING", "NO_DOLLAR", "/States/Q/Parameters"),
        ("WARNING", "NO_DOLLAR", "/States/Q/Parameters"),
        ("WARNING", "PASS_RESULT_IS_STATIC", "/States/P/Result"),
    ]
