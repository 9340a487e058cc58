"""Helpers for the runtime tests: a fake Lambda invoker, a service harness and definition builders."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_distmap.local.runtime import StepFunctionsService

ROLE_ARN = "arn:aws:iam::123456789012:role/test"
BUCKET = "runtime-tests"


@dataclass(frozen=True)
class FakeResult:
    """What ``LambdaInvoker.invoke`` returns."""

    payload: Any
    function_error: str | None
    request_id: str = "req"
    executed_version: str = "$LATEST"
    error_text: str | None = None


class FakeLambdas:
    """A ``LambdaInvoker`` calling plain Python functions in-process (sync or async)."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any], Any]] = {}
        self.calls = 0

    async def invoke(self, function: str, payload: Any) -> FakeResult:
        self.calls += 1
        handler = self.handlers[function.rsplit(":", 1)[-1] if "function:" in function else function]
        try:
            result = handler(payload)
            if inspect.isawaitable(result):
                result = await result
        except Exception as error:
            body = {"errorMessage": str(error), "errorType": type(error).__name__, "stackTrace": []}
            return FakeResult(body, "Unhandled")
        return FakeResult(result, None)


class Harness:
    """The service plus helpers to deploy and run definitions."""

    def __init__(self, service: StepFunctionsService, lambdas: FakeLambdas, s3: Any) -> None:
        self.service = service
        self.lambdas = lambdas
        self.s3 = s3
        self._count = 0

    def call(self, action: str, **request: Any) -> dict[str, Any]:
        return self.service.dispatch(action, request)

    def create(
        self, definition: dict[str, Any], name: str | None = None, machine_type: str = "STANDARD"
    ) -> str:
        self._count += 1
        response = self.call(
            "CreateStateMachine",
            name=name or f"sm-{self._count}",
            definition=json.dumps(definition),
            roleArn=ROLE_ARN,
            type=machine_type,
        )
        return str(response["stateMachineArn"])

    def start(self, machine_arn: str, execution_input: Any = None, name: str | None = None) -> str:
        request: dict[str, Any] = {"stateMachineArn": machine_arn, "input": json.dumps(execution_input or {})}
        if name is not None:
            request["name"] = name
        return str(self.call("StartExecution", **request)["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            described = self.call("DescribeExecution", executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise AssertionError(f"{execution_arn} still RUNNING after {timeout}s")
            time.sleep(0.01)

    def run(self, definition: dict[str, Any], execution_input: Any = None) -> tuple[str, dict[str, Any]]:
        arn = self.start(self.create(definition), execution_input)
        return arn, self.wait(arn)

    def map_run(self, execution_arn: str) -> dict[str, Any]:
        runs = self.call("ListMapRuns", executionArn=execution_arn)["mapRuns"]
        return self.call("DescribeMapRun", mapRunArn=runs[0]["mapRunArn"])

    def event_types(self, execution_arn: str) -> list[str]:
        events = self.call("GetExecutionHistory", executionArn=execution_arn, maxResults=1000)["events"]
        return [e["type"] for e in events]

    def put(self, key: str, body: bytes | str) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def get_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def distributed_map(
    processor_states: dict[str, Any] | None = None, start_at: str = "P", **fields: Any
) -> dict[str, Any]:
    """A one-state machine whose Map state is DISTRIBUTED, with extra Map ``fields``."""
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": fields.pop("ExecutionType", "STANDARD")},
        "StartAt": start_at,
        "States": processor_states or {"P": {"Type": "Pass", "End": True}},
    }
    return {
        "StartAt": "Map",
        "States": {"Map": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}},
    }


def lambda_task(function: str = "work") -> dict[str, Any]:
    """Processor states invoking ``function`` with a bare Lambda ARN."""
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function}"
    return {"P": {"Type": "Task", "Resource": arn, "End": True}}


async def sleep_forever(_: Any) -> Any:
    await asyncio.sleep(3600)
