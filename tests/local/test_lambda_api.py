"""Lambda's function API on the local endpoint: the registered functions, looked up and invoked as on AWS."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airflow_distmap.local.endpoint import LocalEndpoint
from tests.local.aws_cli import aws_cli
from tests.local.conftest import sample_registry


@pytest.fixture(scope="module")
def lambda_client(local_endpoint: LocalEndpoint) -> Any:
    return local_endpoint.client("lambda")


def test_get_function_describes_a_registered_function(lambda_client: Any) -> None:
    by_name = lambda_client.get_function(FunctionName="behave")
    by_arn = lambda_client.get_function(
        FunctionName="arn:aws:lambda:us-east-1:123456789012:function:behave:$LATEST"
    )
    by_partial_arn = lambda_client.get_function(FunctionName="123456789012:function:behave")
    by_regional_partial_arn = lambda_client.get_function(
        FunctionName="us-east-1:123456789012:function:behave"
    )

    configuration = by_name["Configuration"]
    assert configuration["FunctionName"] == "behave"
    assert configuration["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:behave"
    assert configuration["Handler"] == "sample_handlers.behave"
    assert configuration["Timeout"] == 2
    assert configuration["State"] == "Active"
    assert by_arn["Configuration"] == by_partial_arn["Configuration"] == configuration
    assert by_regional_partial_arn["Configuration"] == configuration
    alone = lambda_client.get_function_configuration(FunctionName="behave")
    alone.pop("ResponseMetadata")
    assert alone == configuration


def test_functions_of_an_endpoint_in_a_china_region_are_in_its_partition() -> None:
    with LocalEndpoint(registry=sample_registry(), region="cn-north-1") as endpoint:
        configuration = endpoint.client("lambda").get_function(FunctionName="echo")["Configuration"]
    assert configuration["FunctionArn"] == "arn:aws-cn:lambda:cn-north-1:123456789012:function:echo"
    assert configuration["Role"] == "arn:aws-cn:iam::123456789012:role/local-lambda"


def test_list_functions_lists_every_registered_function_in_pages(lambda_client: Any) -> None:
    names = {f["FunctionName"] for f in lambda_client.list_functions()["Functions"]}
    first = lambda_client.list_functions(MaxItems=1)
    pages = lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
    paged = [f["FunctionName"] for page in pages for f in page["Functions"]]

    assert {"echo", "fail", "behave", "post_processing"} <= names
    assert len(first["Functions"]) == 1
    assert first["NextMarker"] == first["Functions"][0]["FunctionName"]
    assert sorted(paged) == sorted(names)
    with pytest.raises(ClientError, match="less than or equal to 10000"):
        lambda_client.list_functions(MaxItems=10001)


def test_an_unknown_function_is_resource_not_found_with_its_arn(lambda_client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        lambda_client.get_function(FunctionName="ehco")

    error = raised.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert (
        error["Error"]["Message"] == "Function not found: arn:aws:lambda:us-east-1:123456789012:function:ehco"
    )
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="ehco", Payload=b"{}")
    with pytest.raises(ClientError, match=r"arn:aws-cn:lambda:cn-north-1:123456789012:function:ehco$"):
        lambda_client.get_function(FunctionName="cn-north-1:123456789012:function:ehco")


@pytest.mark.parametrize("name", ["bad name!", "arn:aws:lambda:us-east-1:123:function:echo"])
def test_a_malformed_function_name_is_a_validation_error(lambda_client: Any, name: str) -> None:
    with pytest.raises(ClientError) as raised:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    error = raised.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert "at 'functionName' failed to satisfy constraint" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invoke_runs_the_handler_and_reports_its_error_as_lambda_does(lambda_client: Any) -> None:
    answer = lambda_client.invoke(FunctionName="echo", Payload=json.dumps({"row": 7}))
    failed = lambda_client.invoke(FunctionName="fail", Payload=json.dumps({"row": 7}))

    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    tailed = lambda_client.invoke(FunctionName="echo", Payload=b"{}", LogType="Tail")
    assert base64.b64decode(tailed["LogResult"]).decode().startswith("START RequestId: ")
    assert answer["ExecutedVersion"] == "$LATEST"
    assert json.loads(answer["Payload"].read())["event"] == {"row": 7}
    assert failed["StatusCode"] == 200
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("RowRejected", "bad row 7")
    assert failed["ResponseMetadata"]["RequestId"] == error["requestId"]  # the invocation's own request id


def test_invoke_dry_run_event_and_bad_payload(lambda_client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    dry = lambda_client.invoke(FunctionName="echo", InvocationType="DryRun")
    queued = lambda_client.invoke(
        FunctionName="behave",
        InvocationType="Event",
        Payload=json.dumps({"action": "touch", "path": str(marker)}),
    )

    assert dry["StatusCode"] == 204
    assert queued["StatusCode"] == 202
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()  # the asynchronous invocation ran
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException, match="parse request body"):
        lambda_client.invoke(FunctionName="echo", Payload=b"[1,")
    over_async_limit = json.dumps("x" * 1_048_576).encode()  # fine for a synchronous invocation
    with pytest.raises(lambda_client.exceptions.RequestTooLargeException, match="1048576 bytes"):
        lambda_client.invoke(FunctionName="echo", InvocationType="Event", Payload=over_async_limit)


def test_creating_a_function_is_refused_with_how_functions_are_registered(lambda_client: Any) -> None:
    with pytest.raises(ClientError, match="--function NAME=module:callable") as raised:
        lambda_client.create_function(
            FunctionName="new",
            Runtime="python3.11",
            Role="arn:aws:iam::123456789012:role/r",
            Handler="handler.handler",
            Code={"ZipFile": b"PK"},
        )
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_aws_cli_lambda_invoke(local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    invoked = aws_cli(
        local_endpoint.url,
        tmp_path,
        "lambda",
        "invoke",
        "--function-name",
        "echo",
        "--payload",
        '{"row": 1}',
        str(out),
    )

    assert json.loads(invoked.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text())["event"] == {"row": 1}


def test_s3_requests_to_a_bucket_named_like_lambdas_api_still_reach_s3(local_endpoint: LocalEndpoint) -> None:
    import urllib.request

    s3 = local_endpoint.client("s3")
    s3.create_bucket(Bucket="2015-03-31")
    s3.put_object(Bucket="2015-03-31", Key="functions/echo", Body=b"an object")
    presigned = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "2015-03-31", "Key": "functions/echo"}, ExpiresIn=60
    )

    assert s3.get_object(Bucket="2015-03-31", Key="functions/echo")["Body"].read() == b"an object"
    with urllib.request.urlopen(presigned, timeout=30) as answer:
        assert answer.read() == b"an object"
