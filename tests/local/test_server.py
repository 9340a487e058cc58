from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiobotocore.session
import boto3
import botocore.exceptions
import pytest

from airflow_distmap.local.errors import ServiceError
from airflow_distmap.local.server import EndpointServer, LocalEndpointApp
from tests.local.aws_cli import aws_cli


class FakeStepFunctions:
    """Stands in for StepFunctionsService: records calls, answers two actions, fails the rest like AWS."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def dispatch(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((action, request))
        if action == "ListStateMachines":
            return {
                "stateMachines": [
                    {
                        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
                        "name": "sm",
                        "type": "STANDARD",
                        "creationDate": 1700000000.5,
                    }
                ]
            }
        if action == "DescribeExecution":
            raise ServiceError(
                "ExecutionDoesNotExist", f"Execution Does Not Exist: '{request['executionArn']}'"
            )
        if action == "StartExecution":
            raise RuntimeError("boom")
        raise ServiceError("UnknownOperationException", f"Unknown operation {action}")


@pytest.fixture(scope="module")
def fake_service() -> FakeStepFunctions:
    return FakeStepFunctions()


@pytest.fixture(scope="module")
def url(fake_service: FakeStepFunctions) -> Iterator[str]:
    server = EndpointServer(LocalEndpointApp(fake_service))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def _client(url: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_s3_round_trip_goes_to_moto(url: str) -> None:
    s3 = _client(url, "s3")
    s3.create_bucket(Bucket="server-test")
    s3.put_object(Bucket="server-test", Key="a/b.csv", Body=b"x,y\n1,2\n", Metadata={"my_key": "v"})

    got = s3.get_object(Bucket="server-test", Key="a/b.csv")

    assert got["Body"].read() == b"x,y\n1,2\n"
    assert got["Metadata"] == {"my_key": "v"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="server-test")["Contents"]] == ["a/b.csv"]


def test_large_bodies_single_and_multipart_arrive_intact(url: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = _client(url, "s3")
    s3.create_bucket(Bucket="server-big")
    body = bytes(range(256)) * (12 * 4096)  # 12 MiB: read in one call before moto, in parts when multipart
    s3.put_object(Bucket="server-big", Key="single", Body=body)
    path = tmp_path / "big.bin"
    path.write_bytes(body)
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(path), "server-big", "parts", Config=config)

    assert s3.get_object(Bucket="server-big", Key="single")["Body"].read() == body
    multipart = s3.get_object(Bucket="server-big", Key="parts")
    assert multipart["ETag"].strip('"').endswith("-3")  # really uploaded in 3 parts
    assert multipart["Body"].read() == body


def test_step_functions_calls_reach_the_service(url: str, fake_service: FakeStepFunctions) -> None:
    sfn = _client(url, "stepfunctions")

    machines = sfn.list_state_machines(maxResults=5)["stateMachines"]

    assert machines[0]["name"] == "sm"
    assert machines[0]["creationDate"].timestamp() == 1700000000.5
    assert ("ListStateMachines", {"maxResults": 5}) in fake_service.calls


@pytest.mark.parametrize(
    "target", ["awsstepfunctions.CreateStateMachine", "AWSStepFunctions", "ListStateMachines", None]
)
def test_a_call_signed_for_step_functions_with_another_target_never_reaches_moto(
    url: str, fake_service: FakeStepFunctions, target: str | None
) -> None:
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Content-Type": "application/x-amz-json-1.0"}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=url + "/", data=b'{"name": "ghost"}', headers=headers)
    calls_before = list(fake_service.calls)
    SigV4Auth(Credentials("testing", "testing"), "states", "us-east-1").add_auth(request)

    sent = urllib.request.Request(url + "/", data=request.body, headers=dict(request.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(sent, timeout=10)

    assert answer.value.code == 400
    assert json.loads(answer.value.read())["__type"] == "UnknownOperationException"
    assert fake_service.calls == calls_before  # the service never saw it


def test_service_errors_become_the_aws_exception_class(url: str) -> None:
    sfn = _client(url, "stepfunctions")
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:nope"

    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist) as caught:
        sfn.describe_execution(executionArn=arn)

    assert caught.value.response["Error"]["Message"] == f"Execution Does Not Exist: '{arn}'"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unexpected_service_failure_is_a_500_without_stack_trace(url: str) -> None:
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sfn.start_execution(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:sm")

    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert "Traceback" not in caught.value.response["Error"]["Message"]


def test_malformed_json_body_is_a_serialization_error(url: str) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=b"{not json",
        method="POST",
        headers={
            "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)

    assert caught.value.code == 400
    assert caught.value.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert json.loads(caught.value.read())["__type"] == "SerializationException"


async def test_aiobotocore_talks_to_both_services(url: str) -> None:
    session = aiobotocore.session.get_session()
    kwargs = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    async with (
        session.create_client("stepfunctions", **kwargs) as sfn,
        session.create_client("s3", **kwargs) as s3,
    ):
        machines = await sfn.list_state_machines()
        await s3.create_bucket(Bucket="aio-bucket")
        buckets = await s3.list_buckets()

    assert machines["stateMachines"][0]["name"] == "sm"
    assert "aio-bucket" in [b["Name"] for b in buckets["Buckets"]]


def test_aws_cli_works_unchanged(url: str, tmp_path: Path) -> None:
    listed = aws_cli(url, tmp_path, "stepfunctions", "list-state-machines")
    missing = aws_cli(
        url,
        tmp_path,
        "stepfunctions",
        "describe-execution",
        "--execution-arn",
        "arn:aws:states:us-east-1:123456789012:execution:sm:nope",
        check=False,
    )

    assert json.loads(listed.stdout)["stateMachines"][0]["name"] == "sm"
    assert missing.returncode != 0
    assert "ExecutionDoesNotExist" in missing.stderr


def test_a_large_body_is_read_once_and_a_short_one_stays_bounded() -> None:
    import io

    from airflow_distmap.local.server import PREREAD_BODY_BYTES, _preread_body

    whole = b"x" * PREREAD_BODY_BYTES
    environ: dict[str, Any] = {"CONTENT_LENGTH": str(len(whole)), "wsgi.input": io.BytesIO(whole)}
    _preread_body(environ)
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.input"].read() == whole

    cut: dict[str, Any] = {"CONTENT_LENGTH": str(len(whole) + 1), "wsgi.input": io.BytesIO(whole)}
    _preread_body(cut)
    assert cut["wsgi.input_terminated"] is False  # werkzeug's length-bounded stream then reports the cut

    small = io.BytesIO(b"tiny")
    untouched: dict[str, Any] = {"CONTENT_LENGTH": "4", "wsgi.input": small}
    _preread_body(untouched)
    assert untouched["wsgi.input"] is small
    assert "wsgi.input_terminated" not in untouched
