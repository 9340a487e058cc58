"""A Distributed Map over the real endpoint (HTTP, Lambda worker processes): faults stay per child."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from airflow_distmap.local.endpoint import LocalEndpoint

ROLE_ARN = "arn:aws:iam::123456789012:role/faults"


def _wait(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(described)
        time.sleep(0.05)


def test_crashing_and_hanging_children_fail_alone(local_endpoint: LocalEndpoint) -> None:
    s3 = local_endpoint.client("s3")
    sfn = local_endpoint.client("stepfunctions")
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    definition = {
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ToleratedFailureCount": 2,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "behave", "Payload.$": "$"},
                            "OutputPath": "$.Payload",
                            "End": True,
                        }
                    },
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": bucket, "Prefix": "runs"},
                },
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"faults-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE_ARN
    )
    items = [{"value": 1}, {"action": "exit"}, {"action": "hang"}, {"value": 4}]
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps({"items": items})
    )
    done = _wait(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED", done

    output = json.loads(done["output"])
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=output["ResultWriterDetails"]["Key"])["Body"].read()
    )
    entries: dict[str, list[dict[str, Any]]] = {}
    for status, files in manifest["ResultFiles"].items():
        entries[status] = [
            e for f in files for e in json.loads(s3.get_object(Bucket=bucket, Key=f["Key"])["Body"].read())
        ]
    assert sorted(json.loads(e["Output"])["value"] for e in entries["SUCCEEDED"]) == [1, 4]
    errors = sorted(e["Error"] for e in entries["FAILED"])
    assert errors == ["Runtime.ExitError", "Sandbox.Timedout"]

    map_run = sfn.describe_map_run(mapRunArn=output["MapRunArn"])
    assert map_run["itemCounts"]["succeeded"] == 2
    assert map_run["itemCounts"]["failed"] == 2
    assert map_run["status"] == "SUCCEEDED"
