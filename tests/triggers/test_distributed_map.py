from __future__ import annotations

import asyncio
import importlib
import ssl
import time
from unittest import mock

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    SSLError,
)

from airflow_distmap.hooks.distributed_map import EXECUTION_FAILURE_STATES, DistributedMapHook
from airflow_distmap.triggers import distributed_map as trigger_module
from airflow_distmap.triggers.distributed_map import (
    DistributedMapEventReason,
    DistributedMapTrigger,
    is_transient,
    killing_try,
)

EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:sm:run-1"
MAP_RUN_ARN = "arn:aws:states:us-east-1:123456789012:mapRun:sm/Rows:6c7b4a5e-0000-4000-8000-000000000001"


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Describe"
    )


class FakeSFN:
    """A scripted aiobotocore Step Functions client: each call pops the next response (or raises it)."""

    def __init__(self, executions: list, map_runs: list | None = None) -> None:
        self.executions = list(executions)
        self.map_runs = list(map_runs or [])
        self.calls: list[str] = []

    async def __aenter__(self) -> FakeSFN:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def _next(script: list):
        item = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(item, BaseException):
            raise item
        return item

    async def describe_execution(self, executionArn: str) -> dict:
        self.calls.append("describe_execution")
        result = self._next(self.executions)
        return {"executionArn": executionArn, **result}

    async def stop_execution(self, **kwargs) -> dict:
        self.calls.append("stop_execution")
        self.stopped = kwargs
        return {"stopDate": 1}

    async def list_map_runs(self, executionArn: str) -> dict:
        self.calls.append("list_map_runs")
        return {"mapRuns": [{"mapRunArn": MAP_RUN_ARN, "executionArn": executionArn, "startDate": 1}]}

    async def describe_map_run(self, mapRunArn: str) -> dict:
        self.calls.append("describe_map_run")
        return {
            "mapRunArn": mapRunArn,
            **self._next(self.map_runs or [{"status": "RUNNING", "itemCounts": {}}]),
        }


def _log_lines(capsys, start: str) -> list[str]:
    """Messages starting with ``start`` that the trigger logged (Airflow 3 logs via structlog to stdout)."""
    lines = []
    for line in capsys.readouterr().out.splitlines():
        _, found, message = line.partition(start)
        if found:
            lines.append(
                (start + message).split(" [airflow_distmap")[0].split(": An error")[0].split(": Could")[0]
            )
    return lines


def _trigger(**kwargs) -> DistributedMapTrigger:
    return DistributedMapTrigger(execution_arn=EXECUTION_ARN, waiter_delay=0.001, aws_conn_id=None, **kwargs)


async def _collect(trigger: DistributedMapTrigger, client: FakeSFN) -> list[dict]:
    async def fake_conn(self):
        return client

    with mock.patch.object(DistributedMapHook, "get_async_conn", fake_conn):
        return [event.payload async for event in trigger.run()]


def _counts(succeeded: int, failed: int = 0, running: int = 0, pending: int = 0, total: int = 4) -> dict:
    return {
        "status": "RUNNING",
        "itemCounts": {
            "total": total,
            "succeeded": succeeded,
            "failed": failed,
            "timedOut": 0,
            "aborted": 0,
            "running": running,
            "pending": pending,
            "resultsWritten": succeeded,
        },
    }


def test_waiter_max_attempts_sets_a_deadline_that_a_restart_keeps(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_000.0)
    trigger = DistributedMapTrigger(execution_arn=EXECUTION_ARN, waiter_delay=10, waiter_max_attempts=6)
    assert trigger.deadline == 1_060.0
    monkeypatch.setattr(time, "time", lambda: 5_000.0)  # the triggerer restarts much later
    _, kwargs = trigger.serialize()
    assert DistributedMapTrigger(**kwargs).deadline == 1_060.0


def test_serialization_round_trip():
    trigger = DistributedMapTrigger(
        execution_arn=EXECUTION_ARN,
        waiter_delay=5,
        max_backoff=60,
        aws_conn_id="my_aws",
        region_name="eu-west-1",
        verify=False,
        botocore_config={"retries": {"mode": "standard"}},
        try_number=3,
        deadline=1_700_000_000.5,
        execution_timeout_at=1_700_000_000.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_distmap.triggers.distributed_map.DistributedMapTrigger"
    assert kwargs == {
        "execution_arn": EXECUTION_ARN,
        "waiter_delay": 5,
        "waiter_max_attempts": None,
        "max_backoff": 60,
        "aws_conn_id": "my_aws",
        "region_name": "eu-west-1",
        "verify": False,
        "botocore_config": {"retries": {"mode": "standard"}},
        "stop_on_kill": True,
        "min_redrive_count": 0,
        "try_number": 3,
        "deadline": 1_700_000_000.5,
        "execution_timeout_at": 1_700_000_000.5,
    }
    module_name, class_name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_success_yields_exactly_one_small_event():
    client = FakeSFN(
        [{"status": "RUNNING"}, {"status": "RUNNING"}, {"status": "SUCCEEDED", "output": "x" * 10**6}]
    )
    events = await _collect(_trigger(), client)
    assert events == [
        {
            "status": "success",
            "execution_arn": EXECUTION_ARN,
            "execution_status": "SUCCEEDED",
            "reason": "succeeded",
            "message": f"Execution {EXECUTION_ARN} is SUCCEEDED",
            "map_run_arn": MAP_RUN_ARN,
            "error": None,
            "cause": None,
        }
    ]
    assert client.calls.count("describe_execution") == 3


@pytest.mark.parametrize("status", sorted(EXECUTION_FAILURE_STATES))
async def test_each_failure_status_is_a_terminal_error_event(status):
    client = FakeSFN(
        [
            {"status": "RUNNING"},
            {"status": status, "error": "States.ExceedToleratedFailureThreshold", "cause": "c" * 5000},
        ]
    )
    events = await _collect(_trigger(), client)
    assert len(events) == 1
    (event,) = events
    assert event["status"] == "error"
    assert event["execution_status"] == status
    assert event["reason"] == DistributedMapEventReason(status.lower()).value
    assert event["error"] == "States.ExceedToleratedFailureThreshold"
    assert len(event["cause"]) == 1000


async def test_the_deadline_ends_the_wait_with_a_timeout_event_naming_the_execution():
    client = FakeSFN([{"status": "RUNNING"}])
    events = await _collect(_trigger(deadline=time.time() + 0.2), client)
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["reason"] == "deadline"
    assert events[0]["execution_arn"] == EXECUTION_ARN
    assert client.calls.count("describe_execution") > 1  # it polled until then
    assert "stop_execution" not in client.calls  # the execution keeps running
    assert events[0]["execution_timeout_at"] is None  # the task has no execution_timeout


async def test_a_deadline_passed_during_a_triggerer_restart_ends_the_wait_after_one_last_poll():
    client = FakeSFN([{"status": "RUNNING"}])
    events = await _collect(_trigger(deadline=time.time() - 1), client)
    assert [event["reason"] for event in events] == ["deadline"]
    assert client.calls.count("describe_execution") == 1


async def test_without_any_status_since_the_deadline_the_wait_ends_after_a_grace(monkeypatch):
    monkeypatch.setattr(trigger_module, "DEADLINE_GRACE_SECONDS", 0.2)
    client = FakeSFN([_client_error("ThrottlingException")])
    events = await _collect(_trigger(deadline=time.time(), max_backoff=0.01), client)
    assert [event["reason"] for event in events] == ["deadline"]
    assert client.calls.count("describe_execution") > 1  # it kept trying until then


async def test_an_execution_that_closed_by_the_deadline_is_reported_as_closed():
    client = FakeSFN([{"status": "SUCCEEDED"}])
    events = await _collect(_trigger(deadline=time.time() - 1), client)
    assert [(event["status"], event["execution_status"]) for event in events] == [("success", "SUCCEEDED")]


async def test_pending_redrive_is_waited_on_like_running():
    client = FakeSFN([{"status": "PENDING_REDRIVE"}, {"status": "RUNNING"}, {"status": "SUCCEEDED"}])
    events = await _collect(_trigger(), client)
    assert [(event["status"], event["execution_status"]) for event in events] == [("success", "SUCCEEDED")]
    assert client.calls.count("describe_execution") == 3


async def test_an_unknown_status_is_waited_on_like_running_with_one_warning(capsys):
    client = FakeSFN([{"status": "QUEUED"}, {"status": "QUEUED"}, {"status": "SUCCEEDED"}])
    events = await _collect(_trigger(), client)
    assert [event["execution_status"] for event in events] == ["SUCCEEDED"]
    assert _log_lines(capsys, f"Execution {EXECUTION_ARN} shows status QUEUED") == [
        f"Execution {EXECUTION_ARN} shows status QUEUED, which this provider does not know: waiting for it "
        "as for RUNNING until it shows SUCCEEDED, FAILED, TIMED_OUT or ABORTED"
    ]


async def test_a_closed_status_from_before_the_redrive_is_not_the_end():
    """RedriveExecution is eventually consistent: DescribeExecution may still show the failed attempt."""
    client = FakeSFN(
        [
            {"status": "FAILED", "redriveCount": 0},
            {"status": "RUNNING", "redriveCount": 1},
            {"status": "SUCCEEDED", "redriveCount": 1},
        ]
    )
    events = await _collect(_trigger(min_redrive_count=1), client)
    assert [event["execution_status"] for event in events] == ["SUCCEEDED"]
    assert client.calls.count("describe_execution") == 3


async def test_a_redrive_that_never_shows_ends_with_the_status_seen(monkeypatch):
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(trigger_module, "_now", lambda: float(next(clock)))
    client = FakeSFN([{"status": "FAILED", "redriveCount": 0, "error": "States.TaskFailed"}])
    events = await _collect(_trigger(min_redrive_count=1), client)
    assert [(event["execution_status"], event["error"]) for event in events] == [
        ("FAILED", "States.TaskFailed")
    ]


async def test_throttling_and_transient_errors_are_retried_until_success(capsys):
    client = FakeSFN(
        [
            _client_error("ThrottlingException"),
            _client_error("TooManyRequestsException"),
            _client_error("InternalFailure", 500),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            {"status": "RUNNING"},
            _client_error("ThrottlingException"),
            {"status": "SUCCEEDED"},
        ]
    )
    events = await _collect(_trigger(), client)
    assert [e["status"] for e in events] == ["success"]
    assert client.calls.count("describe_execution") == 7
    assert _log_lines(capsys, "Transient error") == [
        f"Transient error describing {EXECUTION_ARN} (attempt {n}), retrying in 0.0 s"
        for n in (1, 2, 3, 4, 1)
    ]


async def test_a_transient_error_creating_the_client_is_retried(capsys):
    client = FakeSFN([{"status": "SUCCEEDED"}])
    attempts = []

    async def flaky_conn(self):
        attempts.append(1)
        if len(attempts) == 1:
            raise _client_error("Throttling")  # e.g. STS throttling an AssumeRole of the connection
        return client

    with mock.patch.object(DistributedMapHook, "get_async_conn", flaky_conn):
        events = [event.payload async for event in _trigger().run()]
    assert [e["status"] for e in events] == ["success"]
    assert len(attempts) == 2
    assert _log_lines(capsys, "Transient error connecting") == [
        "Transient error connecting to Step Functions (attempt 1), retrying in 0.0 s"
    ]


async def test_a_client_still_unreachable_past_the_deadline_ends_the_wait_as_the_deadline_does():
    async def unreachable(self):
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    past = time.time() - trigger_module.DEADLINE_GRACE_SECONDS - 1
    with mock.patch.object(DistributedMapHook, "get_async_conn", unreachable):
        events = [event.payload async for event in _trigger(deadline=past).run()]
    # "deadline", not "api_error": the operator then stops the execution as for any execution_timeout.
    assert [(e["status"], e["reason"]) for e in events] == [("error", "deadline")]


async def test_a_client_that_cannot_be_made_ends_with_an_error_event_not_a_crash():
    from botocore.exceptions import NoRegionError

    async def no_region(self):
        raise NoRegionError()

    with mock.patch.object(DistributedMapHook, "get_async_conn", no_region):
        events = [event.payload async for event in _trigger().run()]
    assert [(e["status"], e["reason"]) for e in events] == [("error", "api_error")]
    assert events[0]["message"].startswith("NoRegionError: You must specify a region")


def test_backoff_is_exponential_and_capped():
    trigger = DistributedMapTrigger(execution_arn=EXECUTION_ARN, waiter_delay=30, max_backoff=20)
    assert [trigger._backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]


async def test_non_transient_api_error_ends_with_an_error_event():
    client = FakeSFN([_client_error("AccessDeniedException")])
    events = await _collect(_trigger(), client)
    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert events[0]["reason"] == "api_error"
    assert "AccessDeniedException" in events[0]["message"]


async def test_execution_not_visible_yet_is_retried_a_few_times():
    # DescribeExecution is eventually consistent right after StartExecution.
    client = FakeSFN([_client_error("ExecutionDoesNotExist")] * 2 + [{"status": "SUCCEEDED"}])
    assert [e["status"] for e in await _collect(_trigger(), client)] == ["success"]
    missing = FakeSFN([_client_error("ExecutionDoesNotExist")])
    events = await _collect(_trigger(), missing)
    assert [e["reason"] for e in events] == ["api_error"]
    assert missing.calls.count("describe_execution") == 6


async def test_progress_is_logged_only_when_counts_change(capsys, monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(trigger_module, "_now", lambda: next(clock))  # one second per poll
    client = FakeSFN(
        [{"status": "RUNNING"}] * 4 + [{"status": "SUCCEEDED"}],
        [_counts(0, pending=4), _counts(0, pending=4), _counts(2, running=2), _counts(3, 1), _counts(3, 1)],
    )
    events = await _collect(_trigger(), client)
    assert events[0]["status"] == "success"
    assert _log_lines(capsys, "Map Run ") == [
        f"Map Run started: {MAP_RUN_ARN}",
        "Map Run RUNNING: 0 of the 4 items read so far are done: 0 succeeded, 4 pending",
        "Map Run RUNNING: 2 of the 4 items read so far are done: 2 succeeded, 2 running",
        "Map Run RUNNING: 4 of the 4 items read so far are done: 3 succeeded, 1 failed",
    ]
    assert client.calls.count("list_map_runs") == 1


async def test_describe_map_run_respects_one_request_per_second(monkeypatch):
    ticks = iter([i * 0.3 for i in range(100)])
    monkeypatch.setattr(trigger_module, "_now", lambda: next(ticks))
    client = FakeSFN([{"status": "RUNNING"}] * 10 + [{"status": "SUCCEEDED"}])
    await _collect(_trigger(), client)
    # 11 polls over 3 simulated seconds: Map Run reads at t=0, 1.2, 2.4 (>= 1 s apart) only.
    assert client.calls.count("describe_execution") == 11
    assert client.calls.count("list_map_runs") + client.calls.count("describe_map_run") == 4


async def test_runs_as_a_task_on_a_real_loop():
    client = FakeSFN([{"status": "RUNNING"}, {"status": "ABORTED"}])
    task = asyncio.create_task(_collect(_trigger(), client))
    events = await asyncio.wait_for(task, timeout=30)
    assert [e["reason"] for e in events] == ["aborted"]


def test_is_transient():
    assert is_transient(_client_error("ThrottlingException"))
    assert is_transient(_client_error("Whatever", 503))
    assert is_transient(EndpointConnectionError(endpoint_url="x"))
    assert not is_transient(_client_error("ExecutionDoesNotExist"))
    assert not is_transient(ValueError("x"))


def test_a_connection_error_caused_by_the_configuration_is_not_transient():
    assert is_transient(ConnectionClosedError(endpoint_url="x"))  # a dropped connection: retried
    assert is_transient(ConnectionResetError(104, "Connection reset by peer"))
    unreadable_bundle = HTTPClientError(error=FileNotFoundError(2, "No such file or directory"))
    assert not is_transient(unreadable_bundle)
    untrusted = SSLError(endpoint_url="x", error=ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert not is_transient(untrusted)


async def test_a_missing_ca_bundle_ends_the_wait_at_once_with_an_error_event():
    # A real aiobotocore client: the CA bundle is read when the first request goes out.
    trigger = DistributedMapTrigger(
        execution_arn=EXECUTION_ARN,
        waiter_delay=0.001,
        aws_conn_id=None,
        region_name="us-east-1",
        verify="/nonexistent/ca.pem",
        botocore_config={"retries": {"mode": "standard", "max_attempts": 1}},  # botocore's own retries apart
    )
    with mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}):
        events = await asyncio.wait_for(_run(trigger), timeout=30)
    assert [(e["status"], e["reason"]) for e in events] == [("error", "api_error")]
    assert "No such file or directory" in events[0]["message"]


async def _run(trigger: DistributedMapTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


async def test_unreadable_progress_is_a_warning_once_and_never_ends_the_wait(capsys, monkeypatch):
    denied = _client_error("AccessDeniedException")
    client = FakeSFN([{"status": "RUNNING"}] * 3 + [{"status": "SUCCEEDED"}], map_runs=[denied] * 4)
    monkeypatch.setattr(trigger_module, "MIN_MAP_RUN_INTERVAL", 0)
    events = await _collect(_trigger(), client)
    assert [e["status"] for e in events] == ["success"]
    assert client.calls.count("describe_map_run") == 4
    assert len(_log_lines(capsys, "Could not read Map Run progress")) == 1


async def test_on_kill_stops_the_execution():
    client = FakeSFN([{"status": "RUNNING"}])

    async def fake_conn(self):
        return client

    with mock.patch.object(DistributedMapHook, "get_async_conn", fake_conn):
        await _trigger(try_number=2).on_kill()
        await _trigger(stop_on_kill=False).on_kill()
    assert client.calls == ["stop_execution"]
    # The cause names the killed try, so a later try that attached meanwhile knows the stop was not its own.
    assert killing_try({"error": client.stopped["error"], "cause": client.stopped["cause"]}) == 2
    assert client.stopped["executionArn"] == EXECUTION_ARN
    assert client.stopped["error"] == "Airflow.TaskKilled"


async def test_a_slow_stop_goes_through_though_the_triggerer_cancels_on_kill_again(capsys):
    class Throttled(FakeSFN):
        async def stop_execution(self, **kwargs) -> dict:
            await asyncio.sleep(0.3)  # botocore retrying a throttled StopExecution, say
            return await super().stop_execution(**kwargs)

    client = Throttled([])

    async def fake_conn(self):
        return client

    with mock.patch.object(DistributedMapHook, "get_async_conn", fake_conn):
        # Airflow 3's triggerer cancels a killed trigger's task on every loop, on_kill included.
        killing = asyncio.ensure_future(_trigger().on_kill())
        await asyncio.sleep(0.05)
        killing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await killing
        for _ in range(50):  # the shielded stop goes on by itself
            if not trigger_module._STOPS_UNDER_WAY:
                break
            await asyncio.sleep(0.05)
    assert client.calls == ["stop_execution"]
    assert client.stopped["error"] == "Airflow.TaskKilled"
    assert _log_lines(capsys, "Stopped execution") == [f"Stopped execution {EXECUTION_ARN}"]


async def test_on_kill_gives_up_within_its_bound_when_step_functions_does_not_answer(capsys, monkeypatch):
    class Unanswered(FakeSFN):
        async def stop_execution(self, **kwargs) -> dict:
            await asyncio.sleep(3600)  # throttled and retrying, say
            return {}

    async def fake_conn(self):
        return Unanswered([])

    monkeypatch.setattr(trigger_module, "STOP_TIMEOUT_SECONDS", 0.05)
    with mock.patch.object(DistributedMapHook, "get_async_conn", fake_conn):
        await asyncio.wait_for(_trigger().on_kill(), timeout=5)  # Airflow's own bound is 30 s
    assert _log_lines(capsys, "Could not stop execution") == [
        f"Could not stop execution {EXECUTION_ARN}: no answer in 0 s"
    ]


async def test_on_kill_logs_a_connection_error_instead_of_raising(capsys):
    async def unreachable(self):
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    with mock.patch.object(DistributedMapHook, "get_async_conn", unreachable):
        await _trigger().on_kill()
    assert len(_log_lines(capsys, "Could not stop execution")) == 1


async def test_progress_is_not_logged_before_the_map_run_reads_an_item(capsys, monkeypatch):
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(trigger_module, "_now", lambda: next(clock))  # one second per poll
    client = FakeSFN(
        [{"status": "RUNNING"}] * 3 + [{"status": "SUCCEEDED"}],
        [_counts(0, total=0), _counts(0, pending=4), _counts(4), _counts(4)],
    )
    await _collect(_trigger(), client)
    assert _log_lines(capsys, "Map Run ") == [
        f"Map Run started: {MAP_RUN_ARN}",  # not "0 of the 0 items read so far are done"
        "Map Run RUNNING: 0 of the 4 items read so far are done: 0 succeeded, 4 pending",
        "Map Run RUNNING: 4 of the 4 items read so far are done: 4 succeeded",
    ]


async def test_the_synchronous_wait_also_runs_where_an_event_loop_runs_already():
    # deferrable=False under dag.test() in a notebook: the caller's thread has a running loop.
    client = FakeSFN([{"status": "RUNNING"}, {"status": "SUCCEEDED"}])

    async def fake_conn(self):
        return client

    with mock.patch.object(DistributedMapHook, "get_async_conn", fake_conn):
        payload = trigger_module.wait_here(_trigger())
    assert (payload["status"], payload["execution_arn"]) == ("success", EXECUTION_ARN)


def test_a_synchronous_wait_in_a_running_loop_ends_as_soon_as_the_caller_is_interrupted():
    """execution_timeout (a signal in the task's thread) ends the wait at once; the trigger is cancelled."""
    import signal

    class Interrupted(Exception):
        pass

    class Endless:
        cancelled = False

        async def run(self):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                Endless.cancelled = True
                raise
            yield  # pragma: no cover

    def interrupt(*_):
        raise Interrupted

    async def caller() -> float:
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            trigger_module.wait_here(Endless())
        return time.monotonic() - started

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        waited = asyncio.run(caller())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert waited < 5
    for _ in range(50):  # the cancellation runs on the wait's own thread
        if Endless.cancelled:
            break
        time.sleep(0.05)
    assert Endless.cancelled


async def test_a_synchronous_wait_in_a_running_loop_raises_the_triggers_own_error():
    class Broken:
        async def run(self):
            raise ValueError("no route to Step Functions")
            yield  # pragma: no cover

    with pytest.raises(ValueError, match="no route to Step Functions"):
        trigger_module.wait_here(Broken())
