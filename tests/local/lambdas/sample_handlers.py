"""Tiny Lambda handlers the pool tests run in worker processes."""

from __future__ import annotations

import decimal
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, NamedTuple


class Point(NamedTuple):
    x: int
    y: int


class RowRejected(Exception):
    pass


def echo(event: Any, context: Any) -> Any:
    return {
        "event": event,
        "function": context.function_name,
        "request_id": context.aws_request_id,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "cwd": os.getcwd(),
        "log_stream": context.log_stream_name,
        "identity": context.identity.cognito_identity_id,
        "env": {
            key: os.environ.get(key)
            for key in (
                "AWS_EXECUTION_ENV",
                "LAMBDA_TASK_ROOT",
                "_HANDLER",
                "TZ",
                "AWS_LAMBDA_LOG_GROUP_NAME",
            )
        },
    }


def fail(event: Any, context: Any) -> Any:
    raise RowRejected(f"bad row {event['row']}")


def behave(event: Any, context: Any) -> Any:
    """Does what the event says: sleep, crash, hang, allocate, or return."""
    action = event.get("action", "ok")
    time.sleep(float(event.get("sleep", 0)))
    if action == "exit":
        os._exit(3)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "hang":
        time.sleep(3600)
    if action == "touch":  # a side effect an asynchronous (Event) invocation leaves behind
        with open(event["path"], "w"):
            pass
    if action == "sys_exit":
        sys.exit(4)
    if action == "numbers":  # what DynamoDB items and namedtuples look like in a response
        return {"price": decimal.Decimal("1.10"), "count": decimal.Decimal("3"), "point": Point(1, 2)}
    if action == "log":  # what the Lambda docs show: set the root level, then log through any logger
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("mylib").info("hello %s", event.get("value"))
    if action == "allocate":
        block = bytearray(event["mb"] * 1024 * 1024)
        return len(block)
    return {"pid": os.getpid(), "value": event.get("value")}


def burn(event: Any, context: Any) -> Any:
    """CPU-bound: spin for the requested milliseconds of CPU time."""
    end = time.thread_time() + event["ms"] / 1000
    total = 0
    while time.thread_time() < end:
        total += 1
    return os.getpid()


_active = 0
_active_lock = threading.Lock()


def burn_counting(event: Any, context: Any) -> Any:
    """Like ``burn``, returning how many invocations were running in this worker at once at most."""
    global _active
    with _active_lock:
        _active += 1
        peak = _active
    try:
        burn(event, context)
        with _active_lock:
            return max(peak, _active)
    finally:
        with _active_lock:
            _active -= 1


def wait_steps(event: Any, context: Any) -> Any:
    """Waits ``steps`` x ``step_ms`` (like a batch of rows, each a slow API call)."""
    for _ in range(int(event["steps"])):
        time.sleep(float(event["step_ms"]) / 1000)
    return None


def gc_state(event: Any, context: Any) -> Any:
    """What the worker did to the garbage collector before serving."""
    import gc

    return {"frozen": gc.get_freeze_count(), "full_threshold": gc.get_threshold()[2]}


def big(event: Any, context: Any) -> Any:
    return "x" * (7 * 1024 * 1024)


def not_json(event: Any, context: Any) -> Any:
    return {1, 2, 3}
