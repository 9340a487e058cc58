"""Execution history events in GetExecutionHistory's shape."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

_DETAIL_KEYS = {
    "ExecutionStarted": "executionStartedEventDetails",
    "ExecutionSucceeded": "executionSucceededEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionRedriven": "executionRedrivenEventDetails",
    "MapStateStarted": "mapStateStartedEventDetails",
    "MapRunStarted": "mapRunStartedEventDetails",
    "MapRunFailed": "mapRunFailedEventDetails",
    "MapRunRedriven": "mapRunRedrivenEventDetails",
}


#: Events that make a first attempt's Lambda results impossible to pair one to one with a replay's
#: invocations: concurrent branches or iterations, and failed or timed-out attempts (retried or caught).
_UNPAIRABLE_EVENTS = frozenset(
    {
        "ParallelStateEntered",
        "MapIterationStarted",
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
    }
)
#: Events holding a successful Lambda result (``lambda:invoke`` and a bare function ARN).
_LAMBDA_RESULTS = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded"})


def detail_key(event_type: str) -> str | None:
    """The response key holding an event type's details (``None`` for events without details)."""
    if event_type in _DETAIL_KEYS:
        return _DETAIL_KEYS[event_type]
    if event_type.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if event_type.endswith("StateExited"):
        return "stateExitedEventDetails"
    if event_type in ("MapRunSucceeded", "MapStateSucceeded", "MapStateAborted"):
        return None
    return event_type[0].lower() + event_type[1:] + "EventDetails"


class History:
    """An execution's history and the :class:`EventSink` the ASL engine records into; thread-safe."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._entered: dict[str, int] = {}
        self.muted = False
        self._mute_entered = 0
        self._mute_started = False
        self._replay_results: deque[dict[str, Any]] = deque()

    def mute_until_entered(self, entered_events: int) -> None:
        """Drop a redrive's replayed events, and keep the first attempt's Lambda results for the replay.

        Events are dropped until the ``entered_events``-th ``*StateEntered`` event (and a ``MapStateStarted``
        right after it) has been replayed. While they are, :meth:`replayed_result` hands out the successful
        Lambda results recorded before that state, in order, so a redrive does not invoke them again.
        """
        self.muted = entered_events > 0
        self._mute_entered = entered_events
        self._mute_started = False
        self._replay_results = self._lambda_results_before(entered_events)

    def _lambda_results_before(self, entered_events: int) -> deque[dict[str, Any]]:
        results: deque[dict[str, Any]] = deque()
        entered = 0
        with self._lock:
            for event in self.events:
                event_type = str(event["type"])
                if event_type.endswith("StateEntered"):
                    entered += 1
                    if entered >= entered_events:
                        break
                if event_type in _UNPAIRABLE_EVENTS:
                    return deque()  # the replay invokes again, as before
                if event_type in _LAMBDA_RESULTS:
                    results.append(event)
        return results

    def replayed_result(self) -> tuple[str, str] | None:
        """During a redrive's replay, the next ``(event type, output)`` Lambda result of the first attempt.

        ``None`` once the replay reached the state that failed, or when the first attempt's results cannot be
        paired with the replay's invocations.
        """
        with self._lock:
            if not self.muted or not self._replay_results:
                return None
            event = self._replay_results.popleft()
        event_type = str(event["type"])
        details = event.get(detail_key(event_type) or "", {})
        return event_type, str(details.get("output", "null"))

    def _replayed(self, event_type: str) -> bool:
        if self._mute_started:
            self._mute_started = False
            if event_type == "MapStateStarted":
                return True
        if not self.muted:
            return False
        if event_type.endswith("StateEntered"):
            self._mute_entered -= 1
            if self._mute_entered <= 0:
                self.muted = False
                self._mute_started = True
        return True

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> None:
        """Append an event (``EventSink.record``)."""
        if self._replayed(event_type):
            if event_type.endswith("StateEntered") and details is not None and "name" in details:
                with self._lock:
                    self._entered[str(details["name"])] = len(self.events)
            return
        with self._lock:
            event_id = len(self.events) + 1
            # The first state's entered event (AWS records it after ExecutionStarted, pointing at 0).
            first_state = event_id == 2 and self.events[0]["type"] == "ExecutionStarted"
            event: dict[str, Any] = {
                "timestamp": time.time(),
                "type": event_type,
                "id": event_id,
                "previousEventId": 0 if first_state else self._previous_event_id(event_type, event_id),
            }
            key = detail_key(event_type)
            if key is not None and details is not None:
                if first_state and "input" in details:
                    # The first state's input is the execution's, which AWS records as it was given (its
                    # spacing kept: conformance map_state_config_distributed_item_selector).
                    started = self.events[0].get("executionStartedEventDetails") or {}
                    details = {**details, "input": started.get("input", details["input"])}
                event[key] = details
            self.events.append(event)
            if event_type.endswith("StateEntered") and details is not None and "name" in details:
                self._entered[str(details["name"])] = event_id

    def _previous_event_id(self, event_type: str, event_id: int) -> int:
        """``previousEventId`` as AWS's recorded histories give it (the conformance corpus), after the first.

        A Distributed Map's ``MapStateExited`` points at its ``MapRunStarted``, as in every recording since
        November 2024 (the older ones point at ``MapRunSucceeded``).
        """
        # A Distributed Map's own Map Run ended right before it succeeded (an inline Map's last event before
        # MapStateSucceeded is an iteration's, even when that iteration ran a Distributed Map).
        if (
            event_type == "MapStateExited"
            and len(self.events) >= 2
            and self.events[-1]["type"] == "MapStateSucceeded"
            and self.events[-2]["type"] == "MapRunSucceeded"
        ):
            for event in reversed(self.events):
                if event["type"] == "MapRunStarted":
                    return int(event["id"])
        return event_id - 1

    def unexited(self, state_type: str) -> set[str]:
        """Names of the ``state_type`` states (``"Map"``...) last entered and not exited: where a failure was.

        :param state_type: the state type as event types name it (``Map``, ``Task``...).
        """
        entered, exited = f"{state_type}StateEntered", f"{state_type}StateExited"
        names: set[str] = set()
        with self._lock:
            for event in self.events:
                if event["type"] == entered:
                    names.add(str(event["stateEnteredEventDetails"]["name"]))
                elif event["type"] == exited:
                    names.discard(str(event["stateExitedEventDetails"]["name"]))
        return names

    def entered_event_id(self, state_name: str) -> int:
        """Id of the latest ``*StateEntered`` event of ``state_name`` (0 when unknown)."""
        with self._lock:
            return self._entered.get(state_name, 0)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the events so far."""
        with self._lock:
            return list(self.events)
