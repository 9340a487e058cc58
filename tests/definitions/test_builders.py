from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_distmap.definitions import (
    LAMBDA_RETRY,
    CsvItemReader,
    DistributedMap,
    ItemBatcher,
    JsonItemReader,
    JsonlItemReader,
    LambdaItemProcessor,
    ParquetItemReader,
    ResultWriter,
    S3PrefixItemReader,
    ensure_result_writer,
    invoked_functions,
    is_function_reference,
    iter_distributed_maps,
)
from airflow_distmap.definitions.locations import lift_locations
from airflow_distmap.definitions.partitions import in_partition
from airflow_distmap.definitions.processors import LAMBDA_INVOKE


def test_full_csv_lambda_definition():
    definition = DistributedMap(
        item_reader=CsvItemReader(uri="s3://in-bucket/data/rows.csv", delimiter="PIPE", max_items=10),
        item_processor=LambdaItemProcessor("process-row", execution_type="EXPRESS", timeout_seconds=60),
        item_selector={"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"},
        item_batcher=ItemBatcher(max_items_per_batch=50, max_input_bytes_per_batch=262144),
        max_concurrency=100,
        tolerated_failure_count=5,
        tolerated_failure_percentage=1.5,
        label="Rows",
        result_writer=ResultWriter(uri="s3://out-bucket/results/"),
        comment="rows",
    ).build()
    assert definition["StartAt"] == "Rows"
    state = definition["States"]["Rows"]
    assert state["Type"] == "Map"
    assert state["End"] is True
    assert state["Label"] == "Rows"
    assert state["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {
            "InputType": "CSV",
            "CSVHeaderLocation": "FIRST_ROW",
            "CSVDelimiter": "PIPE",
            "MaxItems": 10,
        },
        "Parameters": {"Bucket": "in-bucket", "Key": "data/rows.csv"},
    }
    assert state["ItemBatcher"] == {"MaxItemsPerBatch": 50, "MaxInputBytesPerBatch": 262144}
    assert state["MaxConcurrency"] == 100
    assert state["ToleratedFailureCount"] == 5
    assert state["ToleratedFailurePercentage"] == 1.5
    assert state["ResultWriter"] == {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "out-bucket", "Prefix": "results"},
    }
    processor = state["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    task = processor["States"][processor["StartAt"]]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": "process-row", "Payload.$": "$"}
    assert task["OutputPath"] == "$.Payload"
    assert task["TimeoutSeconds"] == 60
    assert task["Retry"] == LAMBDA_RETRY
    json.dumps(definition)  # plain JSON


def test_lambda_retry_policy_covers_throttling_with_jitter():
    (retrier,) = LAMBDA_RETRY
    assert "Lambda.TooManyRequestsException" in retrier["ErrorEquals"]
    assert "Lambda.ServiceException" in retrier["ErrorEquals"]
    assert retrier["JitterStrategy"] == "FULL"
    assert (retrier["IntervalSeconds"], retrier["MaxAttempts"], retrier["BackoffRate"]) == (2, 6, 2)
    assert "States.ALL" not in retrier["ErrorEquals"]


def test_lambda_processor_payload_and_no_retry():
    asl = LambdaItemProcessor(
        "arn:aws:lambda:us-east-1:123456789012:function:f:live", payload={"x.$": "$.a"}, retry=[]
    ).to_asl()
    task = asl["States"]["InvokeFunction"]
    assert task["Parameters"]["Payload"] == {"x.$": "$.a"}
    assert "Retry" not in task
    assert asl["ProcessorConfig"]["ExecutionType"] == "STANDARD"


def test_readers():
    given = CsvItemReader(
        bucket="b-1", key="k.tsv", header_location="GIVEN", headers=["a", "b"], delimiter="TAB"
    )
    assert given.to_asl()["ReaderConfig"] == {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["a", "b"],
        "CSVDelimiter": "TAB",
    }
    assert JsonItemReader(uri="s3://b-1/x.json", items_pointer="/data").to_asl()["ReaderConfig"] == {
        "InputType": "JSON",
        "ItemsPointer": "/data",
    }
    assert JsonlItemReader(uri="s3://b-1/x.jsonl", max_items=0).to_asl()["ReaderConfig"] == {
        "InputType": "JSONL",
        "MaxItems": 0,
    }
    assert S3PrefixItemReader(uri="s3://b-1/images/").to_asl() == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": "b-1", "Prefix": "images/"},
    }
    assert ParquetItemReader(uri="s3://b-1/x.parquet", max_items=5).to_asl()["ReaderConfig"] == {
        "InputType": "PARQUET",
        "MaxItems": 5,
    }
    assert S3PrefixItemReader(uri="s3://b-1/parts/", input_type="CSV", delimiter="PIPE").to_asl() == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": "b-1", "Prefix": "parts/"},
        "ReaderConfig": {
            "InputType": "CSV",
            "Transformation": "LOAD_AND_FLATTEN",
            "CSVHeaderLocation": "FIRST_ROW",
            "CSVDelimiter": "PIPE",
        },
    }
    headerless = S3PrefixItemReader(
        uri="s3://b-1/p/", input_type="CSV", header_location="GIVEN", headers=["a"]
    )
    assert headerless.to_asl()["ReaderConfig"] == {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["a"],
        "Transformation": "LOAD_AND_FLATTEN",
    }
    assert S3PrefixItemReader(uri="s3://b-1/parts/", input_type="JSONL").to_asl()["ReaderConfig"] == {
        "InputType": "JSONL",
        "Transformation": "LOAD_AND_FLATTEN",
    }


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        (lambda: S3PrefixItemReader(uri="s3://b-1/p/", input_type="XML"), "input_type=.XML. is not"),
        (lambda: S3PrefixItemReader(uri="s3://b-1/p/", delimiter="TAB"), "apply to CSV objects only"),
        (lambda: ParquetItemReader(uri="s3://b-1/folder/"), "names a folder"),
        (
            lambda: S3PrefixItemReader(uri="s3://b-1/p/", input_type="CSV", headers=["a"]),
            "drop headers or set",
        ),
        (lambda: S3PrefixItemReader(uri="s3://b-1/p/", input_type="JSON", headers=["a"]), "CSV objects only"),
    ],
)
def test_reader_arguments_are_checked_with_the_fix(reader: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        reader().to_asl()
    assert "To fix this" in str(caught.value)


def test_processor_from_asl_becomes_distributed():
    processor = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    state = DistributedMap(item_processor=processor, items_path="$.items").to_state()
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert state["ItemsPath"] == "$.items"
    assert "ProcessorConfig" not in processor  # the caller's dict is not modified


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DistributedMap(LambdaItemProcessor("f"), label="x" * 41).build(), "at most 40"),
        (lambda: DistributedMap(LambdaItemProcessor("f"), label="my label").build(), "' '"),
        (lambda: DistributedMap(LambdaItemProcessor("f"), label="a:b").build(), "':'"),
        (lambda: DistributedMap(LambdaItemProcessor("f"), label="").build(), "non-empty"),
        (
            lambda: DistributedMap(LambdaItemProcessor("f"), max_concurrency=10001).build(),
            "between 0 and 10000",
        ),
        (lambda: DistributedMap(LambdaItemProcessor("f"), max_concurrency=-1).build(), "max_concurrency"),
        (lambda: DistributedMap(LambdaItemProcessor("f"), tolerated_failure_count=-1).build(), "at least 0"),
        (
            lambda: DistributedMap(LambdaItemProcessor("f"), tolerated_failure_percentage=101).build(),
            "0 and 100",
        ),
        (lambda: ItemBatcher().to_asl(), "needs a limit"),
        (lambda: ItemBatcher(max_items_per_batch=0).to_asl(), "max_items_per_batch"),
        (lambda: ItemBatcher(max_input_bytes_per_batch=262145).to_asl(), "between 1 and 262144"),
        (
            lambda: CsvItemReader(uri="s3://b-1/k.csv", max_items=100_000_001).to_asl(),
            "between 0 and 100000000",
        ),
        (lambda: CsvItemReader(uri="s3://b-1/k.csv", delimiter=",").to_asl(), "COMMA, PIPE"),
        (lambda: CsvItemReader(uri="s3://b-1/k.csv", header_location="GIVEN").to_asl(), "needs headers"),
        (
            lambda: CsvItemReader(uri="s3://b-1/k.csv", header_location="GIVEN", headers=["a", "a"]).to_asl(),
            "duplicates",
        ),
        (lambda: CsvItemReader(uri="s3://b-1/k.csv", headers=["a"]).to_asl(), "header_location='GIVEN'"),
        (lambda: CsvItemReader(uri="s3://b-1/dir/").to_asl(), "names a folder"),
        (lambda: CsvItemReader(uri="b-1/k.csv").to_asl(), "Invalid CSV input URI"),
        (lambda: JsonItemReader(uri="s3://b-1/k.json", items_pointer="data").to_asl(), "JSON Pointer"),
        (lambda: LambdaItemProcessor("bad name!").to_asl(), "function_name"),
        (
            lambda: LambdaItemProcessor(
                "arn:aws:lambda:us-east-1:12:function"
            ).to_asl(),  # no account, no name
            "is not a Lambda function name or ARN",
        ),
        (lambda: LambdaItemProcessor("f", execution_type="FAST").to_asl(), "STANDARD, EXPRESS"),
        (lambda: LambdaItemProcessor("f", execution_type="EXPRESS", timeout_seconds=301).to_asl(), "300"),
        (lambda: ResultWriter(uri="s3://b-1/p", writer_config={"Format": "x"}).to_asl(), "unknown keys"),
        (lambda: ResultWriter(uri="s3://b-1/p", writer_config={"OutputType": "CSV"}).to_asl(), "JSON, JSONL"),
        (lambda: DistributedMap({"StartAt": "P"}).build(), "StartAt"),
    ],
)
def test_invalid_arguments_name_the_problem_and_the_fix(build, message):
    with pytest.raises(ValueError, match="To fix this") as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize(
    "reference",
    [
        "process-row",
        "process-row:prod",
        "123456789012:function:process-row",
        "arn:aws:lambda:us-east-1:123456789012:function:process-row",
        "arn:aws:lambda:us-east-1:123456789012:function:process-row:$LATEST",
        "arn:aws-cn:lambda:cn-north-1:123456789012:function:process-row",
    ],
)
def test_every_lambda_name_format_is_accepted(reference):
    assert LambdaItemProcessor(reference).to_asl()


def test_ensure_result_writer_adds_one_to_every_distributed_map():
    inner = DistributedMap(LambdaItemProcessor("f"), label="Inner").to_state()
    exported = DistributedMap(
        LambdaItemProcessor("f"), label="Exported", result_writer=ResultWriter(uri="s3://mine/keep")
    ).to_state()
    config_only = DistributedMap(LambdaItemProcessor("f"), label="ConfigOnly").to_state()
    config_only["ResultWriter"] = {"WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSONL"}}
    jsonata = DistributedMap(LambdaItemProcessor("f"), label="Jsonata").to_state()
    jsonata["QueryLanguage"] = "JSONata"
    inline = {
        "Type": "Map",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
    }
    definition = {
        "StartAt": "Par",
        "States": {
            "Par": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Inner", "States": {"Inner": inner}}],
                "Next": "Exported",
            },
            "Exported": {**exported, "End": False, "Next": "ConfigOnly"},
            "ConfigOnly": {**config_only, "End": False, "Next": "Jsonata"},
            "Jsonata": {**jsonata, "End": False, "Next": "Inline"},
            "Inline": {**inline, "End": True},
        },
    }
    result = ensure_result_writer(definition, "s3://res/runs")
    expected = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "res", "Prefix": "runs"},
    }
    assert result["States"]["Par"]["Branches"][0]["States"]["Inner"]["ResultWriter"] == expected
    assert result["States"]["Exported"]["ResultWriter"]["Parameters"] == {"Bucket": "mine", "Prefix": "keep"}
    assert result["States"]["ConfigOnly"]["ResultWriter"] == {
        **expected,
        "WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSONL"},
    }
    assert result["States"]["Jsonata"]["ResultWriter"]["Arguments"] == {"Bucket": "res", "Prefix": "runs"}
    assert "ResultWriter" not in result["States"]["Inline"]
    assert (
        "ResultWriter" not in definition["States"]["ConfigOnly"]
        or "Resource" not in (definition["States"]["ConfigOnly"]["ResultWriter"])
    )  # input untouched
    assert sorted(name for name, _, _ in iter_distributed_maps(result)) == [
        "ConfigOnly",
        "Exported",
        "Inner",
        "Jsonata",
    ]
    with pytest.raises(ValueError, match="results_uri"):
        ensure_result_writer(definition, "not-a-uri")


def test_a_per_execution_result_writer_reads_the_execution_name_at_run_time():
    nested = DistributedMap(LambdaItemProcessor("f"), label="Nested").to_state()
    outer = DistributedMap(LambdaItemProcessor("f"), label="Outer").to_state()
    outer["ItemProcessor"] = {**outer["ItemProcessor"], "StartAt": "Nested", "States": {"Nested": nested}}
    jsonata = DistributedMap(LambdaItemProcessor("f"), label="Jsonata").to_state()
    jsonata["QueryLanguage"] = "JSONata"
    definition = {
        "StartAt": "Outer",
        "States": {"Outer": {**outer, "End": False, "Next": "Jsonata"}, "Jsonata": {**jsonata, "End": True}},
    }
    result = ensure_result_writer(definition, "s3://res/it's {odd}", per_execution=True)
    assert result["States"]["Outer"]["ResultWriter"]["Parameters"] == {
        "Bucket": "res",
        "Prefix.$": "States.Format('it\\'s \\{odd\\}/{}', $$.Execution.Name)",
    }
    assert result["States"]["Jsonata"]["ResultWriter"]["Arguments"] == {
        "Bucket": "res",
        "Prefix": '{% "it\'s {odd}/" & $states.context.Execution.Name %}',
    }
    # A Map in a Distributed Map's children runs in executions named by UUIDs: it writes under the prefix.
    inner = result["States"]["Outer"]["ItemProcessor"]["States"]["Nested"]["ResultWriter"]["Parameters"]
    assert inner == {"Bucket": "res", "Prefix": "it's {odd}"}


def test_invoked_functions_are_the_literal_lambda_names_of_every_task_state() -> None:
    def task(resource: str, **fields: object) -> dict[str, object]:
        return {"Type": "Task", "Resource": resource, "End": True, **fields}

    arn = "arn:aws:lambda:us-east-1:123456789012:function:legacy:prod"
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Legacy", "States": {"Legacy": task(arn)}},
                    {
                        "StartAt": "Rows",
                        "States": {
                            "Rows": {
                                "Type": "Map",
                                "ItemProcessor": {
                                    "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                                    "StartAt": "Row",
                                    "States": {
                                        "Row": task(LAMBDA_INVOKE, Parameters={"FunctionName": "rows"}),
                                        "Picked": task(LAMBDA_INVOKE, Parameters={"FunctionName.$": "$.f"}),
                                    },
                                },
                                "End": True,
                            }
                        },
                    },
                ],
                "Next": "Notify",
            },
            "Notify": task(f"{LAMBDA_INVOKE}.waitForTaskToken", Parameters={"FunctionName": "rows"}),
            "Said": task(LAMBDA_INVOKE, QueryLanguage="JSONata", Arguments={"FunctionName": "notify"}),
            "Computed": task(LAMBDA_INVOKE, QueryLanguage="JSONata", Arguments={"FunctionName": "{% $f %}"}),
            "Stored": task("arn:aws:states:::s3:putObject", Parameters={"Bucket": "b", "Key": "k"}),
            "Theirs": task(
                LAMBDA_INVOKE,
                Parameters={"FunctionName": "in-their-account"},
                Credentials={"RoleArn": "arn:aws:iam::210987654321:role/invoker"},
            ),
        },
    }

    assert invoked_functions(definition) == {arn: ["Legacy"], "rows": ["Row", "Notify"], "notify": ["Said"]}


def test_a_definition_moves_to_another_partition_with_its_service_integrations_only() -> None:
    lambda_arn = "arn:aws:lambda:cn-north-1:123456789012:function:legacy"
    built = DistributedMap(
        item_processor=LambdaItemProcessor(function_name="rows"),
        item_reader=CsvItemReader(uri="s3://input/rows.csv"),
    ).build()
    built["States"]["Legacy"] = {"Type": "Task", "Resource": lambda_arn, "End": True}
    moved = in_partition(ensure_result_writer(built, "s3://results/out"), "aws-cn")

    state = moved["States"]["DistributedMap"]
    assert state["ItemReader"]["Resource"] == "arn:aws-cn:states:::s3:getObject"
    assert state["ResultWriter"]["Resource"] == "arn:aws-cn:states:::s3:putObject"
    assert (
        state["ItemProcessor"]["States"]["InvokeFunction"]["Resource"] == "arn:aws-cn:states:::lambda:invoke"
    )
    assert moved["States"]["Legacy"]["Resource"] == lambda_arn  # the user's own ARN stays as given
    assert built["States"]["DistributedMap"]["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    written = ensure_result_writer(built, "s3://results/out", partition="aws-us-gov")
    assert (
        written["States"]["DistributedMap"]["ResultWriter"]["Resource"]
        == "arn:aws-us-gov:states:::s3:putObject"
    )


def test_lambda_invocations_are_found_in_every_partition() -> None:
    task = {"Type": "Task", "Parameters": {"FunctionName": "rows"}, "End": True}
    for partition in ("aws", "aws-cn", "aws-us-gov", "aws-iso-b"):
        definition = {
            "StartAt": "T",
            "States": {"T": {**task, "Resource": f"arn:{partition}:states:::lambda:invoke"}},
        }
        assert invoked_functions(definition) == {"rows": ["T"]}


@pytest.mark.parametrize(
    "function",
    [
        "arn:aws-iso:lambda:us-iso-east-1:123456789012:function:rows",
        "arn:aws-iso-b:lambda:us-isob-east-1:123456789012:function:rows:live",
        "arn:aws-eusc:lambda:eusc-de-east-1:123456789012:function:rows",
        "rows:$LATEST.PUBLISHED",
        "us-gov-west-1:123456789012:function:rows",
    ],
)
def test_function_names_of_every_partition_lambda_accepts_are_accepted(function: str) -> None:
    assert is_function_reference(function)


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("item_reader", "s3://b/data.parquet", "pass ParquetItemReader(uri='s3://b/data.parquet')"),
        ("item_reader", "s3://b/parts/", "pass S3PrefixItemReader(uri='s3://b/parts/')"),
        ("item_batcher", 10, "pass ItemBatcher(max_items_per_batch=10)"),
        ("item_processor", "process-row", "pass function_name='process-row'"),
    ],
)
def test_a_building_block_of_the_wrong_type_names_the_argument_and_the_fix(
    field: str, value: Any, fix: str
) -> None:
    blocks: dict[str, Any] = {"item_processor": LambdaItemProcessor(function_name="fn"), field: value}
    with pytest.raises(ValueError, match="To fix this") as refused:
        DistributedMap(**blocks).build()
    assert str(refused.value).startswith(f"{field}={value!r} is a")
    assert fix in str(refused.value)


def test_an_item_batchers_batch_input_is_an_airflow_template_field() -> None:
    assert ItemBatcher.template_fields == ("batch_input",)


def test_lifted_locations_come_from_the_execution_input_and_everything_else_stays() -> None:
    built = DistributedMap(
        item_reader=S3PrefixItemReader(uri="s3://in-bucket/day=2025-01-01/", extra_parameters={"X": "y"}),
        item_processor=LambdaItemProcessor("process-row"),
        result_writer=ResultWriter(uri="s3://out-bucket/results/2025-01-01"),
    ).build()
    lifted, execution_input = lift_locations(built)
    state = lifted["States"]["DistributedMap"]
    assert state["ItemReader"]["Parameters"] == {
        "Bucket.$": "$$.Execution.Input.airflow_distmap.ItemReader.Bucket",
        "Prefix.$": "$$.Execution.Input.airflow_distmap.ItemReader.Prefix",
        "X": "y",
    }
    assert execution_input == {
        "airflow_distmap": {
            "ItemReader": {"Bucket": "in-bucket", "Prefix": "day=2025-01-01/"},
            "ResultWriter": {"Bucket": "out-bucket", "Prefix": "results/2025-01-01"},
        }
    }
    assert built["States"]["DistributedMap"]["ItemReader"]["Parameters"]["Bucket"] == "in-bucket"  # a copy
    state.pop("ItemReader"), state.pop("ResultWriter")
    built_state = built["States"]["DistributedMap"]
    assert state == {
        key: value for key, value in built_state.items() if key not in ("ItemReader", "ResultWriter")
    }


def test_lifting_keeps_paths_and_expressions_and_speaks_jsonata() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "in/rows.json"},
                },
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P", "States": {}},
                "End": True,
            }
        },
    }
    lifted, execution_input = lift_locations(definition)
    assert lifted["States"]["Map"]["ItemReader"]["Arguments"] == {
        "Bucket": "{% $states.input.bucket %}",
        "Key": "{% $states.context.Execution.Input.airflow_distmap.ItemReader.Key %}",
    }
    assert execution_input == {"airflow_distmap": {"ItemReader": {"Key": "in/rows.json"}}}
    paths_only = {"StartAt": "Map", "States": {"Map": {**definition["States"]["Map"], "ItemReader": {}}}}
    assert lift_locations(paths_only) == (paths_only, {})


def test_lambda_processor_extra_parameters_are_the_invoke_apis():
    asl = LambdaItemProcessor("f", extra_parameters={"Qualifier": "live", "ClientContext.$": "$.c"}).to_asl()
    parameters = asl["States"]["InvokeFunction"]["Parameters"]
    assert (parameters["Qualifier"], parameters["ClientContext.$"]) == ("live", "$.c")
    with pytest.raises(ValueError, match="'Bogus', which lambda:invoke does not take"):
        LambdaItemProcessor("f", extra_parameters={"Bogus": 1}).to_asl()
