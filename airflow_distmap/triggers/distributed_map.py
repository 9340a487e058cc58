"""Deferrable trigger that waits for a Step Functions execution running a Distributed Map."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from enum import Enum
from typing import Any, Final, Protocol, cast

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from airflow_distmap.hooks.distributed_map import (
    EXECUTION_FAILURE_STATES,
    EXECUTION_RUNNING_STATES,
    EXECUTION_SUCCESS_STATES,
    DistributedMapHook,
    awaits_redrive,
    error_code,
    latest_map_run_arn,
)
from airflow_distmap.results import counts_from_map_run, progress_message

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""API error codes that are transient: retried with backoff, never a task failure."""

EVENTUALLY_CONSISTENT_CODES = frozenset({"ExecutionDoesNotExist"})
"""DescribeExecution is eventually consistent: right after StartExecution it may not see the execution yet."""

MAX_NOT_FOUND_RETRIES = 5
"""How many ``ExecutionDoesNotExist`` answers are retried (with backoff) before the wait ends in an error."""

MAX_REDRIVE_WAIT_SECONDS = 120.0
"""How long a closed status from before this task's redrive (``awaits_redrive``) counts as not updated yet."""

MIN_MAP_RUN_INTERVAL = 1.0
"""DescribeMapRun and ListMapRuns refill at 1 request per second per account (spec §6)."""

MAX_CAUSE_CHARS = 1000
"""Causes can be 32 KiB; events stay small, the operator re-reads the full execution."""

#: StopExecution calls going on after their ``on_kill`` was cancelled (``DistributedMapTrigger.on_kill``).
_STOPS_UNDER_WAY: set[asyncio.Future[None]] = set()

STOP_TIMEOUT_SECONDS = 25.0
"""Seconds a stop on kill may take; it goes on shielded from the triggerer's cancellations (``on_kill``)."""

DEADLINE_GRACE_SECONDS = 300.0
"""Seconds past its deadline a trigger that gets no status (throttled, unreachable) keeps trying."""


class DistributedMapEventReason(str, Enum):
    """Why the trigger fired: the ``reason`` of every event."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABORTED = "aborted"
    API_ERROR = "api_error"
    DEADLINE = "deadline"


#: The error a stop by a killed Airflow task gives its execution.
KILLED_ERROR: Final = "Airflow.TaskKilled"
_KILLED_TRY = re.compile(r"\(try (\d+)\)$")


def kill_cause(waiting: bool, try_number: int | None) -> str:
    """The cause of a stop by a killed Airflow task, naming the try: a later try knows it was not its own.

    :param waiting: whether the trigger (waiting) or the operator (running) was killed.
    :param try_number: the killed try.
    """
    what = "waiting for" if waiting else "running"
    suffix = f" (try {try_number})" if try_number else ""
    return f"The Airflow task {what} this execution was killed.{suffix}"


def killing_try(execution: Mapping[str, Any]) -> int | None:
    """The try whose kill stopped ``execution``, if a killed task stopped it.

    :param execution: A DescribeExecution answer.
    """
    if execution.get("error") != KILLED_ERROR:
        return None
    found = _KILLED_TRY.search(str(execution.get("cause") or ""))
    return int(found.group(1)) if found else None


#: Causes no retry mends: a file that is missing or cannot be read (a ``verify`` CA bundle, say) and a server
#: certificate that does not verify. A connection error wrapping one of them is configuration, not an outage.
_CONFIGURATION_CAUSES = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ssl.SSLCertVerificationError,
)


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: botocore's ``error`` argument, aiohttp's certificate and OS errors."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending and len(found) < 10:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is seen for seen in found):
            continue
        found.append(current)
        wrapped = getattr(current, "kwargs", None)
        pending += [
            wrapped.get("error") if isinstance(wrapped, dict) else None,
            getattr(current, "certificate_error", None),
            getattr(current, "os_error", None),
            current.__cause__,  # explicit chaining only: an unrelated error being handled is no cause
        ]
    return found


def is_transient(error: BaseException) -> bool:
    """Whether an API error is throttling, a 5xx or a connection problem (worth retrying).

    A connection error caused by the configuration (a missing CA bundle, a certificate that does not verify)
    is not: retrying it would only hold the task until its deadline.

    :param error: The exception a call raised.
    """
    if isinstance(error, ClientError):
        code = error_code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in THROTTLING_CODES or status >= 500 or status == 429
    if any(isinstance(cause, _CONFIGURATION_CAUSES) for cause in _causes(error)):
        return False
    if isinstance(error, (ConnectionError, HTTPClientError, asyncio.TimeoutError, OSError)):
        return True
    # aiohttp's connection errors (aiobotocore's transport) without importing aiohttp here.
    return type(error).__module__.startswith("aiohttp")


def progress_line(map_run: Mapping[str, Any]) -> str | None:
    """The progress log line of a DescribeMapRun answer; ``None`` while a running Map Run has read no item.

    A line such as "0 of the 0 items read so far are done" would say nothing ("Map Run started" was logged).

    :param map_run: The DescribeMapRun response.
    """
    status, counts = str(map_run.get("status", "")), counts_from_map_run(dict(map_run))
    if status == "RUNNING" and not counts["total"]:
        return None
    return progress_message(status, counts)


def _now() -> float:
    return time.monotonic()


class _Log(Protocol):
    """What RedriveWatch logs to: a stdlib logger or Airflow's task/trigger logger."""

    def info(self, message: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, message: Any, /, *args: Any, **kwargs: Any) -> Any: ...


def report_unknown_status(log: _Log, execution_arn: str, status: str, reported: set[str]) -> None:
    """Warn once per status when a wait sees a status none of the known sets holds (a status AWS adds later).

    The wait goes on as for ``RUNNING``: only a known closed status ends it.

    :param log: The waiting operator's or trigger's logger.
    :param execution_arn: The execution waited for.
    :param status: The status it shows.
    :param reported: The statuses already warned about during this wait (updated).
    """
    known = EXECUTION_RUNNING_STATES | EXECUTION_SUCCESS_STATES | EXECUTION_FAILURE_STATES
    if status in known or status in reported:
        return
    reported.add(status)
    log.warning(
        "Execution %s shows status %s, which this provider does not know: waiting for it as for RUNNING "
        "until it shows SUCCEEDED, FAILED, TIMED_OUT or ABORTED",
        execution_arn,
        status,
    )


class RedriveWatch:
    """Tells, answer by answer, whether DescribeExecution still shows the attempt before this task's redrive.

    RedriveExecution is eventually consistent (``awaits_redrive``): a closed status whose ``redriveCount`` is
    below ``min_redrive_count`` is the previous attempt's, for at most :data:`MAX_REDRIVE_WAIT_SECONDS`.

    :param execution_arn: the execution waited for (for the log).
    :param min_redrive_count: the ``redriveCount`` once the redrive shows; 0 when the task did not redrive.
    :param log: where to say it.
    """

    def __init__(self, execution_arn: str, min_redrive_count: int, log: _Log) -> None:
        self.execution_arn = execution_arn
        self.min_redrive_count = min_redrive_count
        self.log = log
        self._since: float | None = None

    def still_shows_old_attempt(self, execution: Mapping[str, Any]) -> bool:
        """Whether ``execution`` (a DescribeExecution answer) is to be polled again rather than believed.

        :param execution: The DescribeExecution answer.
        """
        if not awaits_redrive(execution, self.min_redrive_count):
            return False
        now = _now()
        if self._since is None:
            self._since = now
        status = execution.get("status")
        if now - self._since < MAX_REDRIVE_WAIT_SECONDS:
            self.log.info("Execution %s still shows %s from before the redrive", self.execution_arn, status)
            return True
        self.log.warning("The redrive of %s never showed: taking its status %s", self.execution_arn, status)
        return False


class DistributedMapTrigger(BaseTrigger):
    """Poll DescribeExecution until the execution is closed and yield exactly one event.

    Map Run progress (items done of those read so far, by status) is logged when it changes, reading
    DescribeMapRun at most once per ``max(waiter_delay, 1)`` seconds. Throttling and transient errors are
    retried with capped exponential backoff and end the wait only past the deadline (and its grace); any
    other API error ends it with an ``error`` event (``reason: api_error``) rather than an exception, so the
    operator reports it.

    Events: ``{"status": "success"|"error", "execution_arn", "execution_status", "reason", "message",
    "map_run_arn", "error", "cause"}`` (``cause`` cut to 1000 characters); a ``deadline`` event adds
    ``execution_timeout_at``.

    :param execution_arn: ARN of the execution to wait for.
    :param waiter_delay: Seconds between DescribeExecution calls.
    :param waiter_max_attempts: Polls before the trigger gives up with a ``deadline`` event, as the amazon
        provider's triggers count them: a ``deadline`` of ``waiter_delay * waiter_max_attempts`` seconds from
        when the trigger is created (serialised as such, so a triggerer restart keeps it). Ignored when
        ``deadline`` is given; ``None`` sets none.
    :param max_backoff: Longest wait, in seconds, between retries of a throttled or failing call.
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: AWS region name; overrides the connection's.
    :param verify: Whether to verify SSL certificates.
    :param botocore_config: botocore client configuration (a dict).
    :param stop_on_kill: Stop the execution when a user kills the deferred task (mark failed, clear).
    :param min_redrive_count: The ``redriveCount`` the execution has once the redrive this task asked for
        shows; until then (at most :data:`MAX_REDRIVE_WAIT_SECONDS`) a closed status is the last attempt's.
        0 when the task did not redrive.
    :param try_number: The task try waiting; a stop on kill names it (see :func:`killing_try`).
    :param deadline: When to stop waiting (seconds since the epoch, so a triggerer restart keeps it): the
        trigger then yields a ``deadline`` event while the execution keeps running. The deadline is checked
        after each status, so an execution that closed meanwhile is reported as closed; when no status comes
        (the API keeps failing), the event comes :data:`DEADLINE_GRACE_SECONDS` after it. ``None`` waits until
        the execution closes (or the task's defer timeout ends the wait).
    :param execution_timeout_at: When the task's ``execution_timeout`` ends the try (seconds since the epoch),
        if it has one: the ``deadline`` event carries it, so the task knows the deadline was its timeout even
        where the resume arguments are lost (``dag.test()`` replaces them with the event).
    """

    def __init__(
        self,
        *,
        execution_arn: str,
        waiter_delay: float = 30,
        waiter_max_attempts: int | None = None,
        max_backoff: float = 300,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        stop_on_kill: bool = True,
        min_redrive_count: int = 0,
        try_number: int | None = None,
        deadline: float | None = None,
        execution_timeout_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.try_number = try_number
        if deadline is None and waiter_max_attempts is not None:
            deadline = time.time() + waiter_delay * waiter_max_attempts
        self.deadline = deadline
        self.waiter_max_attempts = waiter_max_attempts
        self.execution_timeout_at = execution_timeout_at
        self.execution_arn = execution_arn
        self.waiter_delay = waiter_delay
        self.max_backoff = max_backoff
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.stop_on_kill = stop_on_kill
        self.min_redrive_count = min_redrive_count
        self._map_run_arn: str | None = None
        self._last_counts: dict[str, int] | None = None
        self._progress_unreadable = False
        self._last_map_run_call: float | None = None
        self._redrive = RedriveWatch(execution_arn, min_redrive_count, self.log)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's arguments (the classpath comes from the class)."""
        cls = type(self)
        return (
            f"{cls.__module__}.{cls.__qualname__}",
            {
                "execution_arn": self.execution_arn,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
                "max_backoff": self.max_backoff,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "stop_on_kill": self.stop_on_kill,
                "min_redrive_count": self.min_redrive_count,
                "try_number": self.try_number,
                "deadline": self.deadline,
                "execution_timeout_at": self.execution_timeout_at,
            },
        )

    def hook(self) -> DistributedMapHook:
        """The hook whose async client the trigger polls with."""
        return DistributedMapHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _backoff(self, attempt: int) -> float:
        base = min(float(self.waiter_delay), 1.0)
        return float(min(max(self.max_backoff, base), base * 2 ** (attempt - 1)))

    async def _connect(self, hook: DistributedMapHook, stack: contextlib.AsyncExitStack) -> Any:
        """The async Step Functions client; transient errors (from STS, say) are retried with backoff."""
        attempt = 0
        while True:
            try:
                return await stack.enter_async_context(await hook.get_async_conn())  # type: ignore[no-untyped-call]
            except Exception as error:
                if not is_transient(error) or self._past_deadline(DEADLINE_GRACE_SECONDS):
                    raise
                attempt += 1
                delay = self._backoff(attempt)
                self.log.warning(
                    "Transient error connecting to Step Functions (attempt %d), retrying in %.1f s: %s",
                    attempt,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the execution closes; yield one event."""
        hook = self.hook()
        failures = 0
        not_found = 0
        unknown_statuses: set[str] = set()
        async with contextlib.AsyncExitStack() as stack:
            try:
                client = await self._connect(hook, stack)
            except Exception as error:
                if is_transient(error):  # given up on only at the deadline: end as any wait does there
                    yield TriggerEvent(self._deadline_event())  # type: ignore[no-untyped-call]
                    return
                # Not transient: no region, no credentials, a bad endpoint URL...
                self.log.error("Connecting to Step Functions failed: %s", error)
                message = f"{type(error).__name__}: {error}"
                yield TriggerEvent(self._event(DistributedMapEventReason.API_ERROR, None, message))  # type: ignore[no-untyped-call]
                return
            while True:
                if self._past_deadline(DEADLINE_GRACE_SECONDS):  # no status came since the deadline
                    yield TriggerEvent(self._deadline_event())  # type: ignore[no-untyped-call]
                    return
                try:
                    execution = await hook.async_describe_execution(client, self.execution_arn)
                except Exception as error:
                    if error_code(error) in EVENTUALLY_CONSISTENT_CODES and not_found < MAX_NOT_FOUND_RETRIES:
                        not_found += 1
                        await asyncio.sleep(self._backoff(not_found))
                        continue
                    if not is_transient(error):
                        self.log.error("Describing execution %s failed: %s", self.execution_arn, error)
                        event = self._event(DistributedMapEventReason.API_ERROR, None, str(error))
                        yield TriggerEvent(event)  # type: ignore[no-untyped-call]
                        return
                    failures += 1
                    delay = self._backoff(failures)
                    self.log.warning(
                        "Transient error describing %s (attempt %d), retrying in %.1f s: %s",
                        self.execution_arn,
                        failures,
                        delay,
                        error,
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                status = str(execution.get("status"))
                if self._redrive.still_shows_old_attempt(execution):
                    await asyncio.sleep(self._backoff(1))
                    continue
                await self._log_progress(hook, client)
                if status in EXECUTION_SUCCESS_STATES:
                    yield TriggerEvent(self._event(DistributedMapEventReason.SUCCEEDED, execution))  # type: ignore[no-untyped-call]
                    return
                if status in EXECUTION_FAILURE_STATES:
                    reason = DistributedMapEventReason(status.lower())
                    yield TriggerEvent(self._event(reason, execution))  # type: ignore[no-untyped-call]
                    return
                report_unknown_status(self.log, self.execution_arn, status, unknown_statuses)
                if self._past_deadline():  # checked after a poll: a closed execution is reported as closed
                    yield TriggerEvent(self._deadline_event())  # type: ignore[no-untyped-call]
                    return
                await asyncio.sleep(self.waiter_delay)

    def _past_deadline(self, grace: float = 0.0) -> bool:
        return self.deadline is not None and time.time() >= self.deadline + grace

    def _deadline_event(self) -> dict[str, Any]:
        message = f"Execution {self.execution_arn} is still running at the task's deadline"
        event = self._event(DistributedMapEventReason.DEADLINE, None, message)
        event["execution_timeout_at"] = self.execution_timeout_at
        return event

    async def on_kill(self) -> None:
        """Stop the execution when a user kills the deferred task (not on triggerer restarts).

        Airflow's triggerer cancels a killed trigger again on each of its loops (about every second) while
        ``on_kill`` runs, so the stop runs shielded in a task of its own: a throttled or slow StopExecution
        still goes through (within :data:`STOP_TIMEOUT_SECONDS`) and logs its outcome.
        """
        if not self.stop_on_kill:
            return
        stop = asyncio.ensure_future(self._stop_and_log())
        _STOPS_UNDER_WAY.add(stop)  # the event loop keeps only a weak reference to a task
        stop.add_done_callback(_STOPS_UNDER_WAY.discard)
        await asyncio.shield(stop)

    async def _stop_and_log(self) -> None:
        try:
            await asyncio.wait_for(self._stop_execution(), STOP_TIMEOUT_SECONDS)
        except (ClientError, BotoCoreError, TimeoutError) as error:
            problem = str(error) or f"no answer in {STOP_TIMEOUT_SECONDS:.0f} s"
            self.log.warning("Could not stop execution %s: %s", self.execution_arn, problem)
            return
        self.log.info("Stopped execution %s", self.execution_arn)

    async def _stop_execution(self) -> None:
        async with await self.hook().get_async_conn() as client:  # type: ignore[no-untyped-call]
            await client.stop_execution(
                executionArn=self.execution_arn, error=KILLED_ERROR, cause=kill_cause(True, self.try_number)
            )

    async def _log_progress(self, hook: DistributedMapHook, client: Any) -> None:
        """Log Map Run item counts when they changed, within DescribeMapRun's 1 request/s quota."""
        now = _now()
        interval = max(float(self.waiter_delay), MIN_MAP_RUN_INTERVAL)
        if self._last_map_run_call is not None and now - self._last_map_run_call < interval:
            return
        self._last_map_run_call = now
        try:
            if self._map_run_arn is None:
                runs = await hook.async_list_map_runs(client, self.execution_arn)
                if not runs:
                    return
                self._map_run_arn = latest_map_run_arn(runs)
                self.log.info("Map Run started: %s", self._map_run_arn)
            map_run = await hook.async_describe_map_run(client, self._map_run_arn)
        except Exception as error:
            # Progress is informational: it never ends or fails the wait. Said once (a missing
            # states:DescribeMapRun permission would fail every call), then only in the debug log.
            report = self.log.debug if self._progress_unreadable else self.log.warning
            self._progress_unreadable = True
            report("Could not read Map Run progress of %s: %s", self.execution_arn, error)
            return
        counts = counts_from_map_run(map_run)
        line = progress_line(map_run)
        if counts == self._last_counts or line is None:
            return
        self._last_counts = counts
        self.log.info("%s", line)

    def _event(
        self,
        reason: DistributedMapEventReason,
        execution: dict[str, Any] | None,
        message: str | None = None,
    ) -> dict[str, Any]:
        execution = execution or {}
        status = execution.get("status")
        success = reason is DistributedMapEventReason.SUCCEEDED
        return {
            "status": "success" if success else "error",
            "execution_arn": self.execution_arn,
            "execution_status": status,
            "reason": reason.value,
            "message": message or f"Execution {self.execution_arn} is {status}",
            "map_run_arn": self._map_run_arn,
            "error": execution.get("error"),
            "cause": (execution.get("cause") or "")[:MAX_CAUSE_CHARS] or None,
        }


async def _first_event(trigger: DistributedMapTrigger) -> dict[str, Any]:
    async with contextlib.aclosing(cast("AsyncGenerator[TriggerEvent, None]", trigger.run())) as events:
        event = await anext(events)
    return dict(event.payload)


def wait_here(trigger: DistributedMapTrigger) -> dict[str, Any]:
    """Run ``trigger`` in this process until its one event; return the event's payload.

    The synchronous wait of ``deferrable=False`` uses it, so it follows the deferred wait's rules exactly.
    Called where an event loop already runs (``dag.test()`` in a notebook), the trigger runs in a thread of
    its own.

    :param trigger: the trigger to run.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_first_event(trigger))
    loop = asyncio.new_event_loop()
    task = loop.create_task(_first_event(trigger))

    def run_to_the_event() -> dict[str, Any]:
        try:
            return loop.run_until_complete(task)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="distmap-wait")
    try:
        return pool.submit(contextvars.copy_context().run, run_to_the_event).result()
    except BaseException:
        # execution_timeout or an interrupt in the caller's thread: end the wait now, not when the run ends.
        # (A wait that failed by itself has closed its loop already.)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(task.cancel)
        raise
    finally:
        pool.shutdown(wait=False)
