"""Helpers shared by the benchmarks: data, definitions, timing, memory."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from typing import Any

import psutil

ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


def machine() -> str:
    """One line describing the machine the figures were measured on."""
    memory_gb = psutil.virtual_memory().total / 2**30
    return f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, {memory_gb:.0f} GiB, Python {platform.python_version()}"


def csv_body(rows: int, text_width: int = 20) -> bytes:
    """``id,text`` CSV with ``rows`` data rows."""
    filler = "x" * max(0, text_width - 12)
    return ("id,text\n" + "".join(f"{i},row {i} {filler}\n" for i in range(rows))).encode()


def distributed_map_definition(
    bucket: str,
    key: str,
    processor: dict[str, Any],
    *,
    results_prefix: str = "results",
    batch_size: int | None = None,
    max_concurrency: int | None = None,
    item_selector: dict[str, Any] | None = None,
) -> str:
    """A one-state machine: a Distributed Map over a CSV with FIRST_ROW headers, results exported to S3."""
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket": bucket, "Key": key},
        },
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **processor},
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": results_prefix},
        },
        "End": True,
    }
    if item_selector is not None:
        state["ItemSelector"] = item_selector
    if batch_size:
        state["ItemBatcher"] = {"MaxItemsPerBatch": batch_size}
    if max_concurrency is not None:
        state["MaxConcurrency"] = max_concurrency
    return json.dumps({"StartAt": "Rows", "States": {"Rows": state}})


def lambda_processor(function_name: str) -> dict[str, Any]:
    """An ItemProcessor that invokes a Lambda function with the item (or batch) as payload."""
    return {
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_name, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }


def run_execution(sfn: Any, definition: str, name: str, poll: float = 0.05) -> tuple[dict[str, Any], float]:
    """Create the state machine, run one execution to its end; return (DescribeExecution, seconds)."""
    arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started = time.perf_counter()
    execution_arn = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run", input="{}")["executionArn"]
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described), time.perf_counter() - started
        time.sleep(poll)


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``func`` once; return (its result, seconds)."""
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started
