from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_distmap.local import LocalEndpoint
from airflow_distmap.local.lambdas import LambdaInvoker
from tests.local.conftest import sample_registry


class EchoService:
    """A stand-in Step Functions service that records how the endpoint built it."""

    def __init__(self, *, s3_client_factory: Any, lambdas: LambdaInvoker, region: str) -> None:
        self.s3_client_factory = s3_client_factory
        self.lambdas = lambdas
        self.region = region
        self.closed = False

    def dispatch(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"stateMachines": [], "nextToken": action}

    def close(self) -> None:
        self.closed = True


def test_endpoint_serves_s3_and_step_functions_on_one_free_port(tmp_path: Path) -> None:
    with LocalEndpoint(functions_dir=tmp_path, service_factory=EchoService) as endpoint:
        assert endpoint.url.startswith("http://127.0.0.1:")
        assert not endpoint.url.endswith(":0")
        s3 = endpoint.client("s3")
        s3.create_bucket(Bucket="endpoint-test")
        s3.put_object(Bucket="endpoint-test", Key="k", Body=b"hello")
        service = endpoint.service
        assert isinstance(service, EchoService)
        # The service's own S3 client reaches the same buckets through the endpoint.
        assert (
            service.s3_client_factory().get_object(Bucket="endpoint-test", Key="k")["Body"].read() == b"hello"
        )
        assert endpoint.client("stepfunctions").list_state_machines()["nextToken"] == "ListStateMachines"
        assert service.lambdas is endpoint.lambdas

    assert service.closed
    assert endpoint.lambdas is None


def test_airflow_connection_forms_describe_the_endpoint(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    with LocalEndpoint(functions_dir=tmp_path, service_factory=EchoService, region="eu-west-1") as endpoint:
        as_dict = endpoint.airflow_connection()
        from_uri = Connection(conn_id="aws_default", uri=endpoint.airflow_connection_uri())
        from_json = Connection.from_json(endpoint.airflow_connection_json(), conn_id="aws_default")

    extra = {
        "endpoint_url": endpoint.url,
        "region_name": "eu-west-1",
        # plain HTTP: no SHA-256 of every upload for its signature (the endpoint checks none)
        "config_kwargs": {"s3": {"payload_signing_enabled": False}},
    }
    assert as_dict["conn_type"] == "aws"
    assert as_dict["extra"] == extra
    for conn in (from_uri, from_json):
        assert conn.conn_type == "aws"
        assert conn.login == "testing"
        assert conn.password == "testing"
        assert conn.extra_dejson == extra


def test_airflow_aws_hook_reaches_the_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    with LocalEndpoint(functions_dir=tmp_path, service_factory=EchoService) as endpoint:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", endpoint.airflow_connection_uri())
        endpoint.client("s3").create_bucket(Bucket="hook-bucket")
        hook = S3Hook(aws_conn_id="aws_default")
        hook.load_string("payload", key="x.txt", bucket_name="hook-bucket")

        assert hook.read_key("x.txt", bucket_name="hook-bucket") == "payload"
        assert json.loads(endpoint.airflow_connection_json())["extra"]["endpoint_url"] == endpoint.url
        assert hook.get_conn().meta.config.s3["payload_signing_enabled"] is False


def test_functions_dir_and_overrides_are_registered(tmp_path: Path) -> None:
    (tmp_path / "doubler").mkdir()
    (tmp_path / "doubler" / "handler.py").write_text("def handler(event, context):\n    return event * 2\n")

    endpoint = LocalEndpoint(
        functions_dir=tmp_path,
        functions={"echo": "sample_handlers:echo"},
        service_factory=EchoService,
    )

    assert endpoint.registry.names() == ["doubler", "echo"]


def csv_reader(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """An ItemReader of ``s3://<bucket>/in.csv``, a CSV with a header row."""
    return {
        "Resource": f"arn:{partition}:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
        "Parameters": {"Bucket": bucket, "Key": "in.csv"},
    }


def run_behave_map(
    endpoint: LocalEndpoint,
    name: str,
    item_reader: dict[str, Any],
    result_writer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a Distributed Map of EXPRESS children invoking ``behave`` per item; DescribeExecution when done."""
    sfn = endpoint.client("stepfunctions")
    definition = {
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemReader": item_reader,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Invoke",
                    "States": {
                        "Invoke": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "behave", "Payload.$": "$"},
                            "OutputPath": "$.Payload.value",
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }
    if result_writer is not None:
        definition["States"]["Map"]["ResultWriter"] = result_writer
    arn = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "still RUNNING after 60 s"
        time.sleep(0.1)
    return dict(described)


def test_local_endpoint_fixture_runs_a_distributed_map_with_real_handlers(
    local_endpoint: LocalEndpoint,
) -> None:
    s3 = local_endpoint.client("s3")
    s3.create_bucket(Bucket="fixture-map")
    s3.put_object(Bucket="fixture-map", Key="in.csv", Body=b"value,sleep\na,0\nb,0\nc,0\n")
    described = run_behave_map(local_endpoint, "fixture-map", csv_reader("fixture-map"))
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == ["a", "b", "c"]


def test_an_endpoint_process_freezes_start_up_objects_and_rarely_collects_fully() -> None:
    import subprocess
    import sys

    code = (
        "import gc, airflow_distmap.local.endpoint; from airflow_distmap.local.gc_tuning import "
        "tune_garbage_collector; "
        "tune_garbage_collector(); print(gc.get_freeze_count() > 10000, gc.get_threshold()[2])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "100"]


def test_tag_calls_work_through_boto3_with_aws_error_members(local_endpoint: LocalEndpoint) -> None:
    sfn = local_endpoint.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="endpoint-tags",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/distmap",
        tags=[{"key": "team", "value": "data"}],
    )["stateMachineArn"]
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])

    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "dev"}]
    with pytest.raises(sfn.exceptions.ResourceNotFound) as caught:
        sfn.list_tags_for_resource(resourceArn=arn + "-missing")
    assert caught.value.response["resourceName"] == arn + "-missing"


def test_a_distributed_map_reads_the_parquet_parts_under_a_prefix(local_endpoint: LocalEndpoint) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    s3 = local_endpoint.client("s3")
    s3.create_bucket(Bucket="parquet-parts")
    for part, values in enumerate((["a", "b"], ["c"])):
        sink = io.BytesIO()
        pq.write_table(pa.table({"value": values, "sleep": [0] * len(values)}), sink, compression="snappy")
        s3.put_object(Bucket="parquet-parts", Key=f"out/part-{part:05d}.snappy.parquet", Body=sink.getvalue())
    s3.put_object(Bucket="parquet-parts", Key="out/_SUCCESS", Body=b"")  # Spark's marker, passed over
    reader = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "ReaderConfig": {"InputType": "PARQUET", "Transformation": "LOAD_AND_FLATTEN"},
        "Parameters": {"Bucket": "parquet-parts", "Prefix": "out/"},
    }
    described = run_behave_map(local_endpoint, "parquet-parts", reader)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == ["a", "b", "c"]


def test_a_bucket_in_another_region_fails_the_read_or_the_export_as_on_aws(
    local_endpoint: LocalEndpoint,
) -> None:
    s3 = local_endpoint.client("s3")
    s3.create_bucket(Bucket="here-bucket")
    s3.put_object(Bucket="here-bucket", Key="in.csv", Body=b"value,sleep\na,0\n")
    s3.create_bucket(Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(Bucket="west-bucket", Key="in.csv", Body=b"value,sleep\na,0\n")
    read = run_behave_map(local_endpoint, "read-west", csv_reader("west-bucket"))
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "west-bucket", "Prefix": "r"},
    }
    written = run_behave_map(local_endpoint, "write-west", csv_reader("here-bucket"), writer)

    assert (read["status"], read["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert (written["status"], written["error"]) == ("FAILED", "States.ResultWriterFailed")
    for described, doing in ((read, "reading"), (written, "writing to")):
        assert described["cause"].startswith(f"Amazon S3 service returned an error {doing} s3://west-bucket")
        assert "The bucket is in this region: us-west-2." in described["cause"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="west-bucket")["Contents"]] == ["in.csv"]


def test_in_a_china_region_buckets_are_read_in_process_and_another_regions_refused() -> None:
    from airflow_distmap.local.moto_s3 import open_object

    with LocalEndpoint(registry=sample_registry(), region="cn-north-1") as endpoint:
        for bucket, region in (("cn-here", "cn-north-1"), ("cn-there", "cn-northwest-1")):
            s3 = boto3.client(  # a client of the bucket's own region, as S3 wants for CreateBucket
                "s3",
                endpoint_url=endpoint.url,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
            s3.put_object(Bucket=bucket, Key="in.csv", Body=b"value,sleep\na,0\n")
        here = run_behave_map(endpoint, "cn-here", csv_reader("cn-here", "aws-cn"))
        there = run_behave_map(endpoint, "cn-there", csv_reader("cn-there", "aws-cn"))
        streamed, _ = open_object("cn-here", "in.csv")  # moto files it under aws-cn: still read in-process

    assert here["status"] == "SUCCEEDED", here
    assert here["executionArn"].startswith("arn:aws-cn:states:cn-north-1:")
    assert (there["status"], there["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert "The bucket is in this region: cn-northwest-1." in there["cause"]
    assert streamed.read() == b"value,sleep\na,0\n"
