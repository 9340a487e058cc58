"""Records the Step Functions service keeps: state machines, executions, Map Runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_distmap.local.runtime.history import History
from airflow_distmap.local.runtime.map_run import MapRun


@dataclass
class StateMachineRecord:
    """A state machine."""

    arn: str
    name: str
    definition: str
    role_arn: str
    type: str
    creation_date: float
    logging_configuration: dict[str, Any]
    tracing_configuration: dict[str, Any]
    revision_id: str | None = None
    update_date: float | None = None
    description: str = ""
    #: TagResource's tags, key to value, in the order they were first set.
    tags: dict[str, str] = field(default_factory=dict)
    #: Deleted while executions ran: it goes once they are closed (DeleteStateMachine's DELETING status).
    deleting: bool = False
    _compiled: Any = None

    def compiled(self) -> Any:
        """The compiled state machine (compiled once per definition)."""
        if self._compiled is None:
            from airflow_distmap.local.runtime import engine

            self._compiled = engine.compile_state_machine(json.loads(self.definition))
        return self._compiled

    def describe(self) -> dict[str, Any]:
        """``DescribeStateMachine`` response."""
        response: dict[str, Any] = {
            "stateMachineArn": self.arn,
            "name": self.name,
            "status": "DELETING" if self.deleting else "ACTIVE",
            "definition": self.definition,
            "roleArn": self.role_arn,
            "type": self.type,
            "creationDate": self.creation_date,
            "loggingConfiguration": self.logging_configuration,
            "tracingConfiguration": self.tracing_configuration,
        }
        if self.revision_id is not None:
            response["revisionId"] = self.revision_id
        if self.description:
            response["description"] = self.description
        return response


@dataclass
class ExecutionRecord:
    """A top-level execution (children live in their :class:`MapRun`)."""

    arn: str
    name: str
    state_machine: StateMachineRecord
    definition_snapshot: Any
    #: The compiled definition the execution started with: a redrive runs it again, even after an update.
    compiled: Any
    input_text: str
    start_date: float
    status: str = "RUNNING"
    stop_date: float | None = None
    output_text: str | None = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0
    redrive_date: float | None = None
    redriving: bool = False
    #: StartExecution's ``traceHeader``, which DescribeExecution echoes.
    trace_header: str | None = None
    history: History = field(default_factory=History)
    task: asyncio.Task[None] | None = None
    #: The state machine's run inside :attr:`task`: after a stop or a timeout it goes on while its Map Runs
    #: settle (EXPRESS children are waited for), and a redrive starts once it has ended.
    run: asyncio.Task[Any] | None = None
    #: How many times the execution was launched (its start, then each redrive): only the latest launch runs.
    launches: int = 0
    map_runs: list[MapRun] = field(default_factory=list)
    map_runs_by_key: dict[tuple[str, int], MapRun] = field(default_factory=dict)
    map_entries: dict[str, int] = field(default_factory=dict)
    #: ``(clientToken, monotonic time, answer)`` of recent successful redrives (RedriveExecution idempotency).
    redrive_tokens: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)

    def redrive_status(self) -> tuple[str, str | None]:
        """``(redriveStatus, redriveStatusReason)``."""
        if self.status == "RUNNING":
            return "NOT_REDRIVABLE", "Execution is RUNNING and cannot be redriven"
        if self.status == "SUCCEEDED":
            return "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"
        if self.state_machine.type == "EXPRESS":
            return "NOT_REDRIVABLE", "Execution is EXPRESS and cannot be redriven"
        return "REDRIVABLE", None

    def describe(self) -> dict[str, Any]:
        """``DescribeExecution`` response."""
        response: dict[str, Any] = {
            "executionArn": self.arn,
            "stateMachineArn": self.state_machine.arn,
            "name": self.name,
            "status": self.status,
            "startDate": self.start_date,
            "input": self.input_text,
            "inputDetails": {"included": True},
            "redriveCount": self.redrive_count,
        }
        if self.stop_date is not None:
            response["stopDate"] = self.stop_date
        if self.status == "SUCCEEDED":
            response["output"] = self.output_text
            response["outputDetails"] = {"included": True}
        if self.error is not None:
            response["error"] = self.error
        if self.cause is not None:
            response["cause"] = self.cause
        status, reason = self.redrive_status()
        response["redriveStatus"] = status
        if reason is not None:
            response["redriveStatusReason"] = reason
        if self.redrive_date is not None:
            response["redriveDate"] = self.redrive_date
        if self.trace_header is not None:
            response["traceHeader"] = self.trace_header
        return response

    def list_entry(self) -> dict[str, Any]:
        """``ListExecutions`` entry."""
        entry: dict[str, Any] = {
            "executionArn": self.arn,
            "stateMachineArn": self.state_machine.arn,
            "name": self.name,
            "status": self.status,
            "startDate": self.start_date,
            "redriveCount": self.redrive_count,
        }
        if self.stop_date is not None:
            entry["stopDate"] = self.stop_date
        if self.redrive_date is not None:
            entry["redriveDate"] = self.redrive_date
        return entry


class Store:
    """All records of one service, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.state_machines: dict[str, StateMachineRecord] = {}
        self.executions: dict[str, ExecutionRecord] = {}
        self.map_runs: dict[str, MapRun] = {}
        self.map_runs_by_label: dict[str, list[MapRun]] = {}

    def add_map_run(self, map_run: MapRun) -> None:
        """Register a new Map Run (and attach it to its parent execution, if top-level)."""
        with self.lock:
            self.map_runs[map_run.arn] = map_run
            self.map_runs_by_label.setdefault(f"{map_run.state_machine_name}/{map_run.label}", []).append(
                map_run
            )
            parent = self.executions.get(map_run.parent_arn)
            if parent is not None:
                parent.map_runs.append(map_run)


def new_revision_id() -> str:
    """A fresh ``revisionId``."""
    return str(uuid.uuid4())


def now() -> float:
    """The current time as epoch seconds (the API's date format)."""
    return time.time()
