"""Execution history events in GetExecutionHistory's shape."""

from __future__ import annotations

import threading
import time
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

    def mute_until_entered(self, entered_events: int) -> None:
        """Drop a redrive's replayed events.

        Events are dropped until the ``entered_events``-th ``*StateEntered`` event (and a ``MapStateStarted``
        right after it) has been replayed.
        """
        self.muted = entered_events > 0
        self._mute_entered = entered_events
        self._mute_started = False

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
            event: dict[str, Any] = {
                "timestamp": time.time(),
                "type": event_type,
                "id": event_id,
                "previousEventId": event_id - 1,
            }
            key = detail_key(event_type)
            if key is not None and details is not None:
                event[key] = details
            self.events.append(event)
            if event_type.endswith("StateEntered") and details is not None and "name" in details:
                self._entered[str(details["name"])] = event_id

    def entered_event_id(self, state_name: str) -> int:
        """Id of the latest ``*StateEntered`` event of ``state_name`` (0 when unknown)."""
        with self._lock:
            return self._entered.get(state_name, 0)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the events so far."""
        with self._lock:
            return list(self.events)
