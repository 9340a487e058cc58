"""Fakes for the ASL engine tests: a scripted Lambda invoker, the services object and a history sink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_distmap.local.asl import compile_state_machine

CONTEXT = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:sm:exec-1",
        "Name": "exec-1",
        "Input": {},
        "StartTime": "2026-01-01T00:00:00.000Z",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "RedriveCount": 0,
    },
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:sm", "Name": "sm"},
}


@dataclass(frozen=True)
class Result:
    payload: Any
    function_error: str | None = None
    executed_version: str = "$LATEST"
    request_id: str = "req-1"
    error_text: str | None = None


class FunctionNotFound(Exception):
    """Same name as airflow_distmap.local.lambdas.FunctionNotFound."""


class FakeInvoker:
    """A Lambda invoker that echoes its payload unless outcomes were scripted (consumed one per call)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.outcomes: list[Any] = []

    def returns(self, payload: Any) -> FakeInvoker:
        self.outcomes.append(Result(payload))
        return self

    def fails(self, error_type: str, message: str = "boom") -> FakeInvoker:
        error = {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": "req-1",
            "stackTrace": ["  File x"],
        }
        self.outcomes.append(Result(error, function_error="Unhandled", error_text=json.dumps(error)))
        return self

    def not_found(self) -> FakeInvoker:
        self.outcomes.append(FunctionNotFound("nope"))
        return self

    def hangs(self) -> FakeInvoker:
        self.outcomes.append("hang")
        return self

    async def invoke(self, function: str, payload: Any) -> Result:
        self.calls.append((function, payload))
        if not self.outcomes:
            return Result(payload)
        outcome = self.outcomes.pop(0)
        if outcome == "hang":
            await asyncio.Event().wait()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@dataclass
class FakeServices:
    lambdas: FakeInvoker = field(default_factory=FakeInvoker)
    distributed_result: Any = None
    distributed_error: Exception | None = None
    distributed_calls: list[dict[str, Any]] = field(default_factory=list)

    async def run_distributed_map(
        self, state_name: str, state: dict[str, Any], effective_input: Any, context: Any, events: Any
    ) -> Any:
        self.distributed_calls.append(
            {
                "state_name": state_name,
                "state": state,
                "input": effective_input,
                "context": context,
                "events": events,
            }
        )
        if events is not None:
            events.record("MapRunStarted", {"mapRunArn": "arn:map-run"})
        if self.distributed_error is not None:
            if events is not None:
                events.record("MapRunFailed", {"error": "x", "cause": "y"})
            raise self.distributed_error
        if events is not None:
            events.record("MapRunSucceeded")
        return self.distributed_result


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any] | None]] = []

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> None:
        self.events.append((event_type, details))

    @property
    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def run(services: FakeServices) -> Callable[..., Awaitable[Any]]:
    """``await run(definition, input, events=None)``: compile and run a definition with the fake services."""

    async def runner(definition: dict[str, Any], data: Any = None, events: Any = None) -> Any:
        machine = compile_state_machine(definition)
        return await machine.run({} if data is None else data, CONTEXT, services, events)

    return runner


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Patch asyncio.sleep in the engine; returns the list of requested delays."""
    import asyncio

    from airflow_distmap.local.asl import machine

    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        delays.append(delay)
        await real_sleep(0)
        return result

    monkeypatch.setattr(machine.asyncio, "sleep", fake_sleep)
    return delays
