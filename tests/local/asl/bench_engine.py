"""Micro-benchmark of the ASL engine's per-child overhead: run by hand, not collected by pytest.

.venv/bin/python tests/local/asl/bench_engine.py
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from airflow_distmap.local.asl import compile_state_machine


@dataclass(frozen=True)
class Result:
    payload: object
    function_error: str | None = None
    executed_version: str = "$LATEST"
    request_id: str = "r"
    error_text: str | None = None


class Invoker:
    async def invoke(self, function, payload):
        return Result(payload)


class Services:
    lambdas = Invoker()

    async def run_distributed_map(self, *args):
        raise NotImplementedError


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
TASK = {
    "StartAt": "T",
    "States": {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "f", "Payload.$": "$"},
            "OutputPath": "$.Payload",
            "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2}],
            "End": True,
        }
    },
}
BARE = {
    "StartAt": "T",
    "States": {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
            "End": True,
        }
    },
}
SELECTOR = {
    "StartAt": "P",
    "States": {
        "P": {
            "Type": "Pass",
            "Parameters": {"row.$": "$.row", "i.$": "$$.Execution.Name", "k": 1},
            "End": True,
        }
    },
}


TIMEOUT = {
    "StartAt": "T",
    "States": {"T": {**TASK["States"]["T"], "TimeoutSeconds": 60}},
}


async def best_of(repeats: int, n: int, call: Any) -> float:
    """Seconds per call, best of ``repeats`` runs of ``n`` calls (shared machine: take the quietest)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        best = min(best, (time.perf_counter() - start) / n)
    return best


async def main(n: int = 20_000, repeats: int = 7) -> None:
    services = Services()
    context = {"Execution": {"Id": "arn", "Name": "n"}}
    item = {"row": {"a": "1", "b": "2"}}
    base = await best_of(repeats, n, lambda: services.lambdas.invoke("f", item))
    print(f"bare invoker call: {base * 1e6:.2f} us")
    cases = (
        ("Pass child", PASS),
        ("Pass with Parameters", SELECTOR),
        ("lambda:invoke Task + Retry", TASK),
        ("bare ARN Task + Retry", BARE),
        ("lambda:invoke Task + Retry + TimeoutSeconds", TIMEOUT),
    )
    for name, definition in cases:
        machine = compile_state_machine(definition)
        per = await best_of(repeats, n, lambda machine=machine: machine.run(item, context, services))
        extra = per - base if "Task" in name else per
        print(f"{name}: {per * 1e6:.2f} us per run ({extra * 1e6:.2f} us engine overhead)")


asyncio.run(main())
