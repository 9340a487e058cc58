"""One Map Run: dispatch items to child executions, count them, tolerate failures, write results, redrive.

Per child the run keeps one small :class:`Child` record (status, dates, error, a spool reference); inputs and
outputs of finished children live in the on-disk :class:`~airflow_distmap.local.runtime.spool.ResultSpool`.
Counters move as children start and finish, so ``DescribeMapRun`` is O(1) and moves while the run progresses.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from airflow_distmap.json_codec import EncodedObject, dumps, dumps_bytes
from airflow_distmap.local import arns
from airflow_distmap.local.asl.io import OUTPUT_TOO_LARGE_CAUSE, PAYLOAD_LIMIT, iso_fraction
from airflow_distmap.local.asl.machine import ResumePoint, resume_point
from airflow_distmap.local.errors import StatesError
from airflow_distmap.local.runtime.batcher import Batch, ItemBatcher, utf8_size
from airflow_distmap.local.runtime.config import BatchLimits, Tolerance, effective_concurrency
from airflow_distmap.local.runtime.readers import (
    ITEM_READER_FAILED,
    ObjectPin,
    SourceChangedError,
    refuse_other_region,
)
from airflow_distmap.local.runtime.results import (
    RESULT_WRITER_FAILED,
    WriterConfig,
    transform_entry,
    write_result_files,
)
from airflow_distmap.local.runtime.spool import ResultSpool

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

PENDING: Final = "PENDING"
RUNNING: Final = "RUNNING"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
TIMED_OUT: Final = "TIMED_OUT"
ABORTED: Final = "ABORTED"
PENDING_REDRIVE: Final = "PENDING_REDRIVE"
UNSUCCESSFUL: Final = (FAILED, TIMED_OUT, ABORTED)
COUNT_KEYS: Final = {
    PENDING: "pending",
    RUNNING: "running",
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    TIMED_OUT: "timedOut",
    ABORTED: "aborted",
    PENDING_REDRIVE: "pendingRedrive",
}
THRESHOLD_ERROR: Final = "States.ExceedToleratedFailureThreshold"
THRESHOLD_CAUSE: Final = "The specified tolerated failure threshold was exceeded"
#: EXPRESS children stop after 5 minutes with States.Timeout (a module attribute so tests can shorten it).
EXPRESS_TIMEOUT_SECONDS: float = 300.0
#: Items handed from the reader thread per queue slot, and queue slots: bounds what is read ahead.
READ_CHUNK: Final = 256
READ_AHEAD_CHUNKS: Final = 8
#: Bytes of child input (JSON text) allowed in running children before dispatch waits (memory guard).
IN_FLIGHT_INPUT_BYTES: Final = 32 * 1024 * 1024
#: Most bytes of consecutive spooled entries read at once when writing the result files.
SPOOL_READ_BYTES: Final = 1024 * 1024
_SUCCEEDED_REDRIVE: Final = (
    b',"RedriveStatus":"NOT_REDRIVABLE","RedriveStatusReason":"Execution is SUCCEEDED and cannot be redriven"'
)
_REDRIVABLE: Final = b',"RedriveStatus":"REDRIVABLE_BY_MAP_RUN"'
#: A string as a quoted JSON string in UTF-8 (msgspec: several times faster than json's C quoting of a long
#: non-ASCII text plus encoding the entry to UTF-8 afterwards).
_quote: Final = dumps_bytes


#: The context object of children whose processor never reads it (``CompiledStateMachine.reads_context``).
_NO_CONTEXT: Final[Mapping[str, Any]] = MappingProxyType({})
_SECOND_CACHE: tuple[int, str] = (-1, "")
_MILLISECOND_CACHE: tuple[int, int, str] = (-1, -1, "")


def iso_ms(timestamp: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as result files and the context object show dates.

    A zero fraction is left out (``2025-02-03T04:05:06Z``), as Step Functions trims it (AWS, Context object).

    Called several times per child, so the formatted second and the last result are cached (children mostly
    share a second, and a Pass child starts and stops within one millisecond).
    """
    global _SECOND_CACHE, _MILLISECOND_CACHE
    second = int(timestamp)
    millisecond = int((timestamp - second) * 1000)
    cached_second, cached_millisecond, text = _MILLISECOND_CACHE
    if cached_second == second and cached_millisecond == millisecond:
        return text
    cached_second, seconds_text = _SECOND_CACHE
    if cached_second != second:
        seconds_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND_CACHE = (second, seconds_text)
    text = f"{seconds_text}{iso_fraction(millisecond)}Z"  # as the context object's timestamps
    _MILLISECOND_CACHE = (second, millisecond, text)
    return text


class Child:
    """A child execution's compact record."""

    __slots__ = (
        "cause",
        "error",
        "first_item",
        "index",
        "input_text",
        "item_count",
        "redrive_count",
        "redrive_date",
        "ref",
        "resume",
        "start",
        "status",
        "stop",
    )

    def __init__(self, index: int, first_item: int, item_count: int, input_text: str) -> None:
        self.index = index
        self.first_item = first_item
        self.item_count = item_count
        self.status = PENDING
        self.start: float | None = None
        self.stop: float | None = None
        self.redrive_count = 0
        self.redrive_date: float | None = None
        self.error: str | None = None
        self.cause: str | None = None
        self.input_text: str | None = input_text
        self.ref: tuple[int, int] | None = None
        #: A STANDARD child that failed or was aborted: the state a redrive goes on from.
        self.resume: ResumePoint | None = None


ChunkSelector = Callable[[int, list[Any], str], tuple[list[Any], Exception | None]]
"""Applies ``ItemSelector`` to ``(index of the first item, items, $$.Map.Item.Source)``: returns the selected
values and, when an item's selection failed, the error (the values then stop before that item)."""

ItemStream = Callable[[int, ObjectPin], Iterator[tuple[str, Iterator[Any]]]]
"""Opens the item source skipping the first ``n`` items: returns ``($$.Map.Item.Source, items)`` segments (one
per object of a flattened listing, else one). An S3 object is read at the version the pin holds (the Map Run's
first read sets it)."""


def skip_items(
    segments: Iterator[tuple[str, Iterator[Any]]], count: int
) -> Iterator[tuple[str, Iterator[Any]]]:
    """``segments`` without their first ``count`` items (read and dropped, across segments)."""
    for source, items in segments:
        if count:
            count -= sum(1 for _ in itertools.islice(items, count))
            if count:  # this segment held fewer items
                continue
        yield source, items


#: Map Run or Map state failures after which a redrive starts a new Map Run (spec, Redrive).
STARTS_ANEW: Final = frozenset({"States.DataLimitExceeded", "States.Runtime"})


class RuntimeFault(StatesError):
    """``States.Runtime`` for a fault of this runtime, not of the definition: a redrive goes on in place."""


class MapRun:
    """A Distributed Map run and its children.

    :param parent_arn: the execution that ran the Map state.
    :param state_machine_name: the parent's state machine name (first segment of child ARNs).
    :param label: the Map's ``Label``, or :func:`~airflow_distmap.local.arns.generated_map_label`'s.
    :param processor: the compiled ``ItemProcessor`` (:mod:`airflow_distmap.local.asl`).
    :param services: the ``Services`` object children run with.
    :param express: whether children are EXPRESS.
    :param max_concurrency: declared ``MaxConcurrency`` (0 = unlimited).
    :param tolerance: tolerated failures.
    :param writer: the resolved ResultWriter.
    :param s3_factory: creates an S3 client (for result files).
    :param role_arn: the parent's role (children's context).
    :param region: ARN region.
    :param account: ARN account.
    :param processor_definition: the ``ItemProcessor`` as JSON text: the children's state machine definition.
    """

    def __init__(
        self,
        *,
        parent_arn: str,
        state_machine_name: str,
        label: str,
        processor: Any,
        services: Any,
        express: bool,
        max_concurrency: int,
        tolerance: Tolerance,
        writer: WriterConfig,
        s3_factory: Callable[[], S3Client],
        role_arn: str = "",
        region: str = arns.DEFAULT_REGION,
        account: str = arns.DEFAULT_ACCOUNT_ID,
        processor_definition: str = "{}",
    ) -> None:
        self.run_id = str(uuid.uuid4())
        # Child names are UUID-shaped and derived from the run id: its first 24 characters, then its last 48
        # bits XOR a random mask with the top bit set XOR the child index (so no child is named like the Map
        # Run). Unique per child, stable across redrives, computed with one format call and reversible, so no
        # per-child name is stored (AWS's scheme is UNCONFIRMED).
        self._name_prefix = self.run_id[:24]
        self._name_bits = int(self.run_id[24:], 16) ^ (1 << 47 | int(uuid.uuid4().hex[:12], 16))
        #: The Map state failed after this run succeeded (its output over the quota, a path error): see
        #: :attr:`starts_anew_on_redrive`; set by the service when the parent is redriven.
        self.state_failed_after_run = False
        self.label = label
        self.state_machine_name = state_machine_name
        self.arn = arns.map_run_arn(state_machine_name, self.label, self.run_id, region, account)
        self._arn_head = arns.child_execution_arn(state_machine_name, self.label, "", region, account)
        self._machine_label = f"{state_machine_name}/{self.label}"
        self.state_machine_arn = arns.state_machine_arn(f"{state_machine_name}/{self.label}", region, account)
        self._quoted_machine_arn = _quote(self.state_machine_arn)
        self._quoted_arn_head = b'{"ExecutionArn":' + _quote(self._arn_head)[:-1]
        self.parent_arn = parent_arn
        self.region = region
        self.account = account
        self.processor = processor
        self.processor_definition = processor_definition
        self._immediate = bool(getattr(processor, "immediate", False))
        self.services = services
        self.express = express
        #: Set when the parent is stopped or times out: running EXPRESS children are waited for, not cancelled
        #: (they "can't be stopped"); any other cancellation (the endpoint shutting down) cancels them.
        self.parent_closed = False
        self.max_concurrency = max_concurrency
        self.tolerance = tolerance
        self.writer = writer
        self.s3_factory = s3_factory
        self.role_arn = role_arn
        self.status = RUNNING
        self.start_date = time.time()
        self.stop_date: float | None = None
        self.redrive_count = 0
        self.redrive_date: float | None = None
        self.children: list[Child] = []
        self.executions = dict.fromkeys(COUNT_KEYS.values(), 0)
        self.items = dict.fromkeys(COUNT_KEYS.values(), 0)
        self.results_written = [0, 0]  # executions, items
        self._results_written_before = [0, 0]  # at the start of the current attempt
        self._results_unwritten = False  # an attempt's results could not be written (ResultWriterFailed)
        self.failed_items = 0
        self.items_read = 0
        self.reader_done = False
        self.spool = ResultSpool()
        self.result: Any = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slot_free: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: StatesError | None = None
        self._running = 0
        self._inflight_bytes = 0
        # set per execute() call
        self._open_items: ItemStream | None = None
        self._source_pin = ObjectPin()
        self._state_item_count: int | None = None
        self._context: dict[str, Any] = {}
        self._select: ChunkSelector | None = None
        self._batching: tuple[BatchLimits, Any] | None = None
        self._max_items: int | None = None

    # ------------------------------------------------------------------ names and ARNs
    def child_name(self, index: int) -> str:
        """The child's execution name: a UUID-shaped name derived from the run (stable across redrives)."""
        return f"{self._name_prefix}{self._name_bits ^ index:012x}"

    def child_arn(self, index: int) -> str:
        """The child's execution ARN ``execution:<sm>/<label>:<name>``."""
        return f"{self._arn_head}{self._name_prefix}{self._name_bits ^ index:012x}"

    def find_child(self, name: str) -> Child | None:
        """The child with execution name ``name``."""
        if len(name) != 36 or not name.startswith(self._name_prefix):
            return None
        try:
            index = int(name[24:], 16) ^ self._name_bits
        except ValueError:
            return None
        with self._lock:
            return self.children[index] if 0 <= index < len(self.children) else None

    # ------------------------------------------------------------------ bookkeeping
    def _move(self, child: Child, status: str) -> None:
        old = COUNT_KEYS[child.status]
        new = COUNT_KEYS[status]
        self.executions[old] -= 1
        self.executions[new] += 1
        self.items[old] -= child.item_count
        self.items[new] += child.item_count
        child.status = status

    def _add_child(self, first_item: int, item_count: int, input_text: str) -> Child:
        with self._lock:
            child = Child(len(self.children), first_item, item_count, input_text)
            self.children.append(child)
        self.executions["pending"] += 1
        self.items["pending"] += item_count
        return child

    def describe(self) -> dict[str, Any]:
        """``DescribeMapRun`` response."""

        def counts(values: dict[str, int], total: int, written: int, unstarted: int) -> dict[str, int]:
            return {
                "pending": values["pending"] + unstarted,
                "running": values["running"],
                "succeeded": values["succeeded"],
                "failed": values["failed"],
                "timedOut": values["timedOut"],
                "aborted": values["aborted"],
                "total": total + unstarted,
                "resultsWritten": written,
                "failuresNotRedrivable": 0,
                "pendingRedrive": values["pendingRedrive"],
            }

        # The state input's items are known from the start ("pending = items not yet started"): those not yet
        # given to a child count as pending. Batches of them are not formed yet, so they count as executions
        # only without an ItemBatcher. An ItemReader's unread items are not counted (not read, not known).
        unread = 0
        if self._state_item_count is not None and not self.reader_done:
            unread = max(self._state_item_count - self.items_read, 0)
        response: dict[str, Any] = {
            "mapRunArn": self.arn,
            "executionArn": self.parent_arn,
            "status": self.status,
            "startDate": self.start_date,
            "maxConcurrency": self.max_concurrency,
            "toleratedFailurePercentage": float(self.tolerance.percentage or 0.0),
            "toleratedFailureCount": int(self.tolerance.count or 0),
            "itemCounts": counts(self.items, self.items_total(), self.results_written[1], unread),
            "executionCounts": counts(
                self.executions, len(self.children), self.results_written[0], 0 if self._batching else unread
            ),
            "redriveCount": self.redrive_count,
        }
        if self.stop_date is not None:
            response["stopDate"] = self.stop_date
        if self.redrive_date is not None:
            response["redriveDate"] = self.redrive_date
        return response

    @property
    def starts_anew_on_redrive(self) -> bool:
        """Whether a redrive starts a new Map Run instead of redriving this one (then every item runs again).

        "If the Map state failed with States.DataLimitExceeded, or a JSON-interpolation States.Runtime, a new
        Map Run is started instead" (spec, Redrive).
        """
        failure = self._failure
        return self.state_failed_after_run or (
            self.status == FAILED
            and failure is not None
            and failure.error in STARTS_ANEW
            and not isinstance(failure, RuntimeFault)
        )

    def items_total(self) -> int:
        """Items in children so far."""
        return sum(self.items.values())

    def _most_items(self) -> int | None:
        """The run's item count once read; before, the most it can be, or ``None`` when nothing bounds it.

        Failures over the tolerated percentage of this bound are over it of the real total too: a run over the
        state input or under a ``MaxItems`` fails as soon as they pass it, not once every item has run.
        An ItemReader's object is not counted ahead of the children (a 1 GB CSV would be read twice): without
        ``MaxItems`` its percentage is checked once it is read to the end. AWS "may continue to run child
        workflows ... after the tolerated failure threshold is exceeded" (spec); how far is UNCONFIRMED.
        """
        if self.reader_done:
            return self.items_total()
        if self._max_items is not None and self._max_items > 0:
            return min(self._max_items, self._state_item_count or self._max_items)
        return self._state_item_count

    def list_entry(self) -> dict[str, Any]:
        """``ListMapRuns`` entry."""
        entry: dict[str, Any] = {
            "executionArn": self.parent_arn,
            "mapRunArn": self.arn,
            "stateMachineArn": self.state_machine_arn,
            "startDate": self.start_date,
        }
        if self.stop_date is not None:
            entry["stopDate"] = self.stop_date
        return entry

    def update(self, max_concurrency: int | None, count: int | None, percentage: float | None) -> None:
        """``UpdateMapRun``: change concurrency and tolerance of the run (thread-safe)."""
        if max_concurrency is not None:
            self.max_concurrency = max_concurrency
            if self._loop is not None and self._slot_free is not None:
                self._loop.call_soon_threadsafe(self._slot_free.set)
        if count is not None or percentage is not None:
            self.tolerance = Tolerance(
                count if count is not None else self.tolerance.count,
                percentage if percentage is not None else self.tolerance.percentage,
            )

    # ------------------------------------------------------------------ child entries
    def entry(self, child: Child) -> dict[str, Any]:
        """The child's result entry (AWS's ``Transformation: NONE`` shape)."""
        if child.ref is not None and child.status not in (PENDING, PENDING_REDRIVE, RUNNING):
            return dict(json.loads(self.spool.read(child.ref)))
        entry: dict[str, Any] = {
            "ExecutionArn": self.child_arn(child.index),
            "Input": child.input_text if child.input_text is not None else self._input_from_spool(child),
            "InputDetails": {"Included": True},
            "Name": self.child_name(child.index),
            "RedriveCount": child.redrive_count,
            "StateMachineArn": self.state_machine_arn,
            # PENDING entry shape is UNCONFIRMED: the NONE shape without dates or output.
            "Status": PENDING if child.status == PENDING_REDRIVE else child.status,
        }
        if child.start is not None and child.status == RUNNING:
            entry["StartDate"] = iso_ms(child.start)
        return entry

    def _input_from_spool(self, child: Child) -> str:
        if child.ref is None:
            return "{}"
        return str(json.loads(self.spool.read(child.ref))["Input"])

    def _finish(
        self, child: Child, status: str, output_text: str | None, error: str | None, cause: str | None
    ) -> None:
        child.stop = time.time()
        child.error = error
        child.cause = cause
        input_text = child.input_text if child.input_text is not None else self._input_from_spool(child)
        name = self.child_name(child.index).encode()
        # The entry's JSON (UTF-8) is assembled from pre-quoted parts: this runs once per child and json.dumps
        # of a dict was the largest cost of a Pass-state Map Run. Keys and order are AWS's (spec section 3.5).
        # The name (UUID-shaped) needs no JSON escaping, so the quoted ARN is the quoted head plus the name.
        output = b"" if output_text is None else b',"Output":' + _quote(output_text)
        redrive = _SUCCEEDED_REDRIVE if status == SUCCEEDED else _REDRIVABLE
        failure = b"" if error is None else b',"Error":' + _quote(error) + b',"Cause":' + _quote(cause or "")
        entry = b"".join(
            (
                self._quoted_arn_head,
                name,
                b'","Input":',
                _quote(input_text),
                b',"InputDetails":{"Included":true},"Name":"',
                name,
                b'"',
                output,
                b',"OutputDetails":{"Included":true},"RedriveCount":',
                b"%d" % child.redrive_count,
                redrive,
                b',"StartDate":"%s","StateMachineArn":' % iso_ms(child.start or child.stop).encode(),
                self._quoted_machine_arn,
                b',"Status":"%s","StopDate":"%s"' % (status.encode(), iso_ms(child.stop).encode()),
                failure,
                b"}",
            )
        )
        first_result = child.ref is None  # a redriven child's new result replaces its earlier one
        child.ref = self.spool.append(entry)
        child.input_text = None
        self._move(child, status)
        if first_result:
            self.results_written[0] += 1
            self.results_written[1] += child.item_count

    # ------------------------------------------------------------------ running
    def configure(
        self,
        *,
        open_items: ItemStream,
        select: ChunkSelector | None,
        batching: tuple[BatchLimits, Any] | None,
        max_items: int | None,
        state_item_count: int | None = None,
    ) -> None:
        """Set how items are produced and shaped (kept for redrives).

        :param open_items: opens the item source, skipping already-read items.
        :param select: applies ``ItemSelector`` to a chunk of items, or ``None`` (see :data:`ChunkSelector`).
        :param batching: ``(limits, evaluated BatchInput)`` or ``None``.
        :param max_items: ``MaxItems`` limit (``None`` = all).
        :param state_item_count: how many items the state input holds (in memory); ``None`` for an ItemReader.
        """
        self._open_items = open_items
        self._select = select
        self._batching = batching
        self._max_items = max_items
        self._state_item_count = state_item_count

    async def execute(self, redrive: bool = False) -> Any:
        """Run (or redrive) the Map Run; return the Map's raw result or raise ``StatesError``.

        :param redrive: re-run only unsuccessful and never-started children, then continue reading.
        """
        self._loop = asyncio.get_running_loop()
        self._slot_free = asyncio.Event()
        self._failure = None
        self._results_written_before = list(self.results_written)
        self.parent_closed = False
        self.status = RUNNING
        self.stop_date = None
        try:
            try:
                if redrive:
                    await self._redrive_children()
                if not self.reader_done and self._failure is None:
                    await self._read_and_dispatch()
                await self._wait_children()
                if self._failure is None and self.tolerance.breached(self.failed_items, self.items_total()):
                    self._failure = StatesError(THRESHOLD_ERROR, THRESHOLD_CAUSE)
            except Exception as error:
                if isinstance(error, StatesError):
                    self._failure = error
                    if error.error == ITEM_READER_FAILED and not isinstance(error, SourceChangedError):
                        self._source_pin = ObjectPin()  # a redrive "re-reads S3" then (spec, Redrive)
                else:  # a fault of this runtime: the Map Run still ends, and ends FAILED
                    log.exception("Map Run %s failed unexpectedly", self.arn)
                    self._failure = RuntimeFault("States.Runtime", f"{type(error).__name__}: {error}")
                await self._abort_children()
            if self._failure is not None:
                self._add_unread_as_pending()
            self._settle_pending_redrive()
            result = await self._write_results()
        except asyncio.CancelledError:
            # The parent was stopped: abort running children, keep the results written so far.
            await self._abort_children()
            self._add_unread_as_pending()
            self._settle_pending_redrive()
            self.status = ABORTED
            self.stop_date = time.time()
            await self._write_results_quietly()
            self.spool.release()
            raise
        self.stop_date = time.time()
        self.spool.release()
        if self._failure is not None:
            self.status = FAILED
            raise self._failure
        self.status = SUCCEEDED
        self.result = result
        for child in self.children:  # a Map state that succeeded is never redriven
            child.resume = None
        return result

    async def _redrive_children(self) -> None:
        self.redrive_count += 1
        self.redrive_date = time.time()
        self.failed_items = 0
        again = [c for c in self.children if c.status in (*UNSUCCESSFUL, PENDING)]
        for child in again:
            if child.status != PENDING:  # never-started children stay pending: only unsuccessful ones wait
                self._move(child, PENDING_REDRIVE)
        for child in again:
            if self._failure is not None:
                break
            text = child.input_text if child.input_text is not None else self._input_from_spool(child)
            await self._start_child(child, json.loads(text))

    def _add_unread_as_pending(self) -> None:
        """After a failure or a stop, make the state input's items that were never read PENDING children.

        The state input's items are all in memory and counted from the start (``MapStateStarted`` gives their
        ``length``), so ``total`` counts every one, and those never started go to PENDING_n.json ("children
        that weren't started because the Map Run failed or aborted", spec). Items read from S3 are left
        unread: reading the rest of a large object only to list it is not done (how AWS counts them is
        UNCONFIRMED).
        """
        if self.reader_done or self._open_items is None or self._state_item_count is None:
            return  # an ItemReader's source is not opened again (its failure may be why the run failed)
        first = self.items_read
        source, items = next(self._open_items(first, self._source_pin))  # the state input: one segment
        if self._max_items is not None:
            items = itertools.islice(items, max(self._max_items - first, 0))
        chunk = list(items)
        values, error = (chunk, None) if self._select is None else self._select(first, chunk, source)
        if error is not None:  # AWS would not have selected these items; nothing to list
            return
        if self._batching is None:
            for index, value in enumerate(values, first):
                self._add_child(index, 1, dumps(value))
        else:
            limits, batch_input = self._batching
            batcher = ItemBatcher(limits.max_items, limits.max_bytes, batch_input)
            batches = batcher.add_many(first, list(map(dumps_bytes, values)), values)
            last = batcher.flush()
            for batch in [*batches, *([last] if last is not None else [])]:
                text = batch.input_json(batcher.batch_input_json).decode()
                self._add_child(batch.first_index, len(batch.texts), text)
        self.items_read = first + len(values)
        self.reader_done = True

    def _settle_pending_redrive(self) -> None:
        """Make the children a redrive did not reach pending again.

        "``pendingRedrive`` is reset to 0 when the Map Run completes or aborts" (spec, Redrive Map Run).
        """
        for child in self.children:
            if child.status == PENDING_REDRIVE:
                self._move(child, PENDING)

    async def _items(self) -> AsyncIterator[tuple[str, list[Any]]]:
        """Yield chunks of items from the source, read ahead in a thread through a bounded queue."""
        assert self._open_items is not None
        limit = self._max_items
        skip = self.items_read
        if limit is not None and skip >= limit:
            return
        loop = asyncio.get_running_loop()
        # Unbounded asyncio queue, bounded by a semaphore the reader thread takes before each chunk and the
        # consumer gives back after it: at most READ_AHEAD_CHUNKS chunks are read ahead of the dispatcher.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        slots = threading.Semaphore(READ_AHEAD_CHUNKS)
        stop = threading.Event()
        done = object()

        def put(value: Any) -> bool:
            while not slots.acquire(timeout=0.2):
                if stop.is_set():
                    return False
            if stop.is_set():
                return False
            try:
                loop.call_soon_threadsafe(queue.put_nowait, value)
            except RuntimeError:  # the loop is closed: the service is shutting down
                return False
            return True

        def produce() -> None:
            try:
                left = None if limit is None else limit - skip  # items MaxItems still allows
                for source, items in self._open_items(skip, self._source_pin):  # type: ignore[misc]
                    while left != 0 and not stop.is_set():
                        chunk = list(
                            itertools.islice(items, READ_CHUNK if left is None else min(READ_CHUNK, left))
                        )
                        if not chunk:
                            break
                        if not put((source, chunk)):
                            return
                        left = None if left is None else left - len(chunk)
                    if left == 0 or stop.is_set():
                        break
                put(done)
            except BaseException as error:  # handed to the consumer, raised there
                put(error)

        thread = threading.Thread(target=produce, name="distmap-item-reader", daemon=True)
        thread.start()
        try:
            while True:
                value = await queue.get()
                slots.release()
                if value is done:
                    self.reader_done = True
                    return
                if isinstance(value, BaseException):
                    raise value
                yield value
        finally:
            stop.set()

    async def _read_and_dispatch(self) -> None:
        batcher: ItemBatcher | None = None
        if self._batching is not None:
            limits, batch_input = self._batching
            batcher = ItemBatcher(limits.max_items, limits.max_bytes, batch_input)
        select = self._select
        # items_read counts the items handed to children (a child exists as soon as _dispatch starts): a
        # redrive after a failure or a stop reads on from there, so a batch still being filled is read again.
        next_index = self.items_read
        async for source, chunk in self._items():
            first, next_index = next_index, next_index + len(chunk)
            values, error = (chunk, None) if select is None else select(first, chunk, source)
            if batcher is None:
                for index, value in enumerate(values, first):
                    if self._failure is not None:
                        return
                    self.items_read = index + 1
                    await self._dispatch(index, 1, dumps(value), value)
            else:
                for batch in batcher.add_many(first, list(map(dumps_bytes, values)), values):
                    if self._failure is not None:
                        return
                    self.items_read = batch.first_index + len(batch.texts)
                    await self._dispatch_batch(batch, batcher)
            if error is not None:
                raise error
            if self._failure is not None:
                return
        if batcher is not None:
            last = batcher.flush()
            if last is not None:
                self.items_read = last.first_index + len(last.texts)
                await self._dispatch_batch(last, batcher)

    async def _dispatch_batch(self, batch: Batch, batcher: ItemBatcher) -> None:
        data = batch.input_json(batcher.batch_input_json)
        value = EncodedObject(batch.input_value(batcher.batch_input), data)  # a Lambda task sends data as is
        await self._dispatch(batch.first_index, len(batch.texts), data.decode(), value, len(data))

    async def _dispatch(
        self, first_item: int, item_count: int, input_text: str, value: Any, size: int | None = None
    ) -> None:
        child = self._add_child(first_item, item_count, input_text)
        size = utf8_size(input_text) if size is None else size
        if size > PAYLOAD_LIMIT:
            # AWS: a child's input must be <= 256 KiB (an item may be larger only if ItemSelector shrinks it).
            # The exact error is UNCONFIRMED; States.DataLimitExceeded is AWS's payload-quota error, terminal.
            self._failure = StatesError(
                "States.DataLimitExceeded",
                f"The input of the child workflow execution for item {first_item} has "
                f"{size} bytes, which exceeds the limit of {PAYLOAD_LIMIT} bytes.",
            )
            return
        await self._start_child(child, value if value is not None else json.loads(input_text))

    def _saturated(self, size: int) -> bool:
        if self._running >= effective_concurrency(self.max_concurrency):
            return True
        # Memory guard (local-only): the inputs of running children stay in memory, so with large batches
        # and up to 10,000 children in flight they could take GBs. Past IN_FLIGHT_INPUT_BYTES the next child
        # waits for a running one to finish; there is always at least one child running.
        return self._running > 0 and self._inflight_bytes + size > IN_FLIGHT_INPUT_BYTES

    async def _start_child(self, child: Child, value: Any) -> None:
        assert self._slot_free is not None
        size = len(child.input_text) if child.input_text is not None else 0
        while self._saturated(size) and self._failure is None:
            self._slot_free.clear()
            await self._slot_free.wait()
        if self._failure is not None:
            return
        if child.status == PENDING_REDRIVE:
            # Counted when it runs again: one a stopped redrive never reached keeps its count and date.
            # Counted for EXPRESS children too; their redrives "cannot be told apart", and whether AWS shows
            # them a RedriveCount is UNCONFIRMED.
            child.redrive_count += 1
            if not self.express:  # "DescribeExecution.redriveDate is unavailable for Express children"
                child.redrive_date = self.redrive_date
        if child.start is None or self.express:
            # A redriven STANDARD child is the same execution going on: it keeps its start (spec, Redrive).
            # EXPRESS children are started again.
            child.start = time.time()
        if self._immediate:
            # Pass/Choice/Succeed/Fail children finish in one step: run them here, without a task each.
            self._move(child, RUNNING)
            self._run_child_now(child, value)
            return
        self._running += 1
        self._inflight_bytes += size
        self._move(child, RUNNING)
        task = asyncio.get_running_loop().create_task(self._run_child(child, value))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._child_done, child, size))

    def _child_done(self, child: Child, size: int, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        self._inflight_bytes -= size
        if self._slot_free is not None:
            self._slot_free.set()
        if child.status == RUNNING:  # cancelled (a threshold breach, a stop) before its coroutine ever ran
            self._finish(child, ABORTED, None, None, None)

    def _child_context(self, child: Child, value: Any) -> dict[str, Any]:
        name = self.child_name(child.index)
        execution = {
            "Id": self._arn_head + name,
            "Name": name,
            "Input": value,
            "StartTime": iso_ms(child.start or time.time()),
            "RoleArn": self.role_arn,
            "RedriveCount": child.redrive_count,
        }
        if child.redrive_date is not None:  # "available only for Standard children of a redriven Map Run"
            execution["RedriveTime"] = iso_ms(child.redrive_date)
        return {
            "Execution": execution,
            "StateMachine": {"Id": self.state_machine_arn, "Name": self._machine_label},
        }

    def _run_child_now(self, child: Child, value: Any) -> None:
        """Run an immediate child (see ``CompiledStateMachine.run_now``) to its end and record the outcome."""
        try:
            context = self._child_context(child, value) if self.processor.reads_context else _NO_CONTEXT
            output = self.processor.run_now(value, context, self.services)
        except Exception as error:
            self._child_raised(child, error)
            return
        self._child_succeeded(child, value, output)

    async def _run_child(self, child: Child, value: Any) -> None:
        # A redriven STANDARD child goes on "from the failing state": steps that succeeded do not run again.
        resume, child.resume = child.resume, None
        try:
            run = self.processor.run(value, self._child_context(child, value), self.services, None, resume)
            if self.express:
                output = await asyncio.wait_for(run, EXPRESS_TIMEOUT_SECONDS)
            else:
                output = await run
        except asyncio.CancelledError as error:
            # Points exist past StartAt only: a one-Task child keeps none. EXPRESS children start again.
            child.resume = None if self.express else resume_point(error)
            self._finish(child, ABORTED, None, None, None)
            return
        except TimeoutError:
            self._child_failed(child, TIMED_OUT, "States.Timeout", "The execution timed out.")
            return
        except Exception as error:
            child.resume = None if self.express else resume_point(error)
            self._child_raised(child, error)
            return
        try:
            self._child_succeeded(child, value, output)
        except Exception as error:  # never leave a child RUNNING: a bug here fails that child alone
            self._child_raised(child, error)

    def _child_succeeded(self, child: Child, value: Any, output: Any) -> None:
        # A Pass-like processor returns its input object: reuse the input's text instead of re-encoding it.
        output_text = child.input_text if output is value and child.input_text is not None else dumps(output)
        if utf8_size(output_text) > PAYLOAD_LIMIT:
            # A child execution's output is held to the payload quota too (spec: States.DataLimitExceeded).
            self._child_failed(child, FAILED, "States.DataLimitExceeded", OUTPUT_TOO_LARGE_CAUSE)
            return
        self._finish(child, SUCCEEDED, output_text, None, None)

    def _child_raised(self, child: Child, error: Exception) -> None:
        """Record a child that ended with ``error``."""
        if isinstance(error, StatesError):
            # A state's States.Timeout (a Task's TimeoutSeconds) fails the child as it fails an execution;
            # TIMED_OUT is for the execution's own time limit (EXPRESS children's 5 minutes, see _run_child).
            # How AWS counts such a child is UNCONFIRMED; this is how it closes a standalone execution.
            self._child_failed(child, FAILED, error.error, error.cause)
        else:  # an engine bug must fail one child, not the run
            log.error("Child execution %s crashed", self.child_arn(child.index), exc_info=error)
            self._child_failed(child, FAILED, "States.Runtime", f"{type(error).__name__}: {error}")

    def _child_failed(self, child: Child, status: str, error: str, cause: str) -> None:
        self._finish(child, status, None, error, cause)
        self.failed_items += child.item_count
        if self._failure is None and self.tolerance.breached(self.failed_items, self._most_items()):
            self._failure = StatesError(THRESHOLD_ERROR, THRESHOLD_CAUSE)
            if not self.express:  # EXPRESS children can't be stopped: the Map Run waits for them (spec)
                for task in list(self._tasks):
                    task.cancel()
            if self._slot_free is not None:
                self._slot_free.set()

    async def _wait_children(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _abort_children(self) -> None:
        """Cancel the running children; a stopped or timed-out parent waits for EXPRESS ones instead.

        "A Map Run can continue to run after the parent workflow is stopped or timed out ... canceling in
        progress child workflow executions of type Standard, or waiting for child workflow executions of type
        Express to complete" (spec, Redrive Map Run).
        """
        if not (self.express and self.parent_closed):
            for task in list(self._tasks):
                task.cancel()
        while self._tasks:
            await asyncio.shield(asyncio.gather(*list(self._tasks), return_exceptions=True))

    # ------------------------------------------------------------------ results
    def _entries(self, statuses: tuple[str, ...]) -> Iterator[dict[str, Any] | bytes]:
        """Entries in child order: spooled JSON bytes for finished children, dicts for pending ones.

        Children that finished in order sit next to each other in the spool: such runs are read with one
        read of up to :data:`SPOOL_READ_BYTES` and cut into entries (one read per entry was a per-child cost).
        """
        run: list[tuple[int, int]] = []  # refs of consecutive spool entries not yet read

        def read_run() -> Iterator[bytes]:
            start = run[0][0]
            block = self.spool.read((start, run[-1][0] + run[-1][1] - start))
            for offset, length in run:
                yield block[offset - start : offset - start + length]
            run.clear()

        for child in self.children:
            if child.status not in statuses:
                continue
            ref = child.ref
            if ref is not None and child.status not in (PENDING, PENDING_REDRIVE, RUNNING):
                if run and (
                    ref[0] != run[-1][0] + run[-1][1] or ref[0] + ref[1] - run[0][0] > SPOOL_READ_BYTES
                ):
                    yield from read_run()
                run.append(ref)
                continue
            if run:
                yield from read_run()
            yield self.entry(child)
        if run:
            yield from read_run()

    def _write_files(self) -> dict[str, Any]:
        groups = {
            "SUCCEEDED": self._entries((SUCCEEDED,)),
            "FAILED": self._entries(UNSUCCESSFUL),
            "PENDING": self._entries((PENDING, PENDING_REDRIVE)),
        }
        refuse_other_region(self.writer.bucket, self.region, RESULT_WRITER_FAILED, "writing to")
        return write_result_files(self.s3_factory(), self.writer, self.run_id, self.arn, groups)

    async def _write_results(self) -> Any:
        if self.writer.bucket is not None:
            try:
                details = await asyncio.to_thread(self._write_files)
            except StatesError as error:
                self._failure = error
                self.results_written = list(self._results_written_before)  # this attempt's never reached S3
                self._results_unwritten = True
                return None
            if self._results_unwritten:  # a redrive wrote what an earlier attempt could not: every result
                written = [child for child in self.children if child.ref is not None]
                self.results_written = [len(written), sum(child.item_count for child in written)]
                self._results_unwritten = False
            return {"MapRunArn": self.arn, "ResultWriterDetails": details}
        if self._failure is not None:
            return None
        output: list[Any] = []
        for child in self.children:
            output.extend(transform_entry(self.entry(child), self.writer.transformation))
        return output

    async def _write_results_quietly(self) -> None:
        if self.writer.bucket is None:
            return
        try:
            await asyncio.shield(asyncio.to_thread(self._write_files))
        except (StatesError, asyncio.CancelledError):
            log.warning("Could not write the results of aborted Map Run %s", self.arn)

    def execution_status(self, child: Child) -> str | None:
        """The child's status as an execution (DescribeExecution, ListExecutions); ``None`` if never started.

        A child no item has started yet is no execution at all (AWS's ``ExecutionStatus`` has no PENDING), and
        one a redrive left pending (the Map Run stopped before reaching it) is still as its last run ended.

        :param child: The child.
        """
        if child.status != PENDING:
            return child.status
        if child.ref is None:
            return None
        return str(json.loads(self.spool.read(child.ref))["Status"])

    def child_description(self, child: Child) -> dict[str, Any]:
        """``DescribeExecution`` fields of a started child execution (see :meth:`execution_status`).

        :param child: The child.
        """
        entry = self.entry(child)
        status = self.execution_status(child) or PENDING
        response: dict[str, Any] = {
            "executionArn": self.child_arn(child.index),
            "stateMachineArn": self.state_machine_arn,
            "name": self.child_name(child.index),
            "status": status,
            "startDate": child.start if child.start is not None else self.start_date,
            "input": entry.get("Input", "{}"),
            "inputDetails": {"included": True},
            "mapRunArn": self.arn,
            "redriveCount": child.redrive_count,
        }
        if child.stop is not None and status not in (RUNNING, PENDING, PENDING_REDRIVE):
            response["stopDate"] = child.stop
        if status == SUCCEEDED:
            response["output"] = entry.get("Output")
            response["outputDetails"] = {"included": True}
            response["redriveStatus"] = "NOT_REDRIVABLE"
            response["redriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
        elif status in UNSUCCESSFUL:
            # An aborted child has neither: left out rather than "", as AWS does for executions (UNCONFIRMED
            # for Map Run children).
            if child.error:
                response["error"] = child.error
            if child.cause:
                response["cause"] = child.cause
            response["redriveStatus"] = "REDRIVABLE_BY_MAP_RUN"
        else:
            response["redriveStatus"] = "NOT_REDRIVABLE"
            response["redriveStatusReason"] = "Execution is RUNNING and cannot be redriven"
        if child.redrive_date is not None:
            response["redriveDate"] = child.redrive_date
        return response

    def close(self) -> None:
        """Release the spool."""
        self.spool.close()
