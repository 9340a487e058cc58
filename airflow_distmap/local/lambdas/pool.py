"""The Lambda worker pool: run registered handlers in worker processes, many invocations per process.

Per function, up to ``processes`` worker processes (fresh interpreters, never a fork of this threaded
process) each run up to ``max_threads`` invocations at once in threads, so I/O-bound handlers
reach high concurrency and CPU-bound handlers use every core. Invocations travel to workers in batches and
results come back in batches (one pipe message for many invocations).

Fault isolation, per invocation:

- the handler raises: its error object (``errorType`` = exception class) comes back, the worker lives on;
- the handler runs past the function timeout: that invocation fails with ``Sandbox.Timedout`` at once; its
  worker takes no new work, finishes what else it runs and is then killed (which stops the hung thread);
- the worker dies (``os._exit``, a signal, the OOM killer): the one invocation it ran fails with
  ``Runtime.ExitError``; when it ran several, none is blamed yet: they are split in halves, each half re-run
  in a fresh quarantine worker, until the invocation that kills a worker alone is found. Others succeed.
- ``MemoryError`` (the function's memory budget, ``RLIMIT_AS``) fails that invocation with
  ``Runtime.OutOfMemory`` and retires the worker, as Lambda discards the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from airflow_distmap import json_codec
from airflow_distmap.local.arns import partition_of
from airflow_distmap.local.lambdas import worker as worker_module
from airflow_distmap.local.lambdas.registry import FunctionNotFound, FunctionRegistry, FunctionSpec

log = logging.getLogger(__name__)

#: Concurrent invocations one worker process runs (threads); AWS's default account concurrency is 1,000.
DEFAULT_MAX_THREADS = 512
#: Seconds allowed past the function timeout for a result to travel back before the pool declares a timeout.
TIMEOUT_GRACE_SECONDS = 0.05
#: Seconds the dispatcher holds queued invocations while a regular worker starts, so work spreads evenly.
STARTUP_WAIT_SECONDS = 2.0
STARTUP_POLL_SECONDS = 0.05
#: Shortest sleep of the dispatcher between deadline checks (timeouts are reported this late at most).
DEADLINE_POLL_SECONDS = 0.01
#: Concurrent invocations per worker a function starts with; it adapts (see ``_adjust_concurrency``). Small,
#: so that a first burst of CPU-heavy invocations cannot run past the function timeout by sharing one GIL.
INITIAL_CONCURRENCY = 2
#: Length of the measurement window of the adaptive limit.
CONCURRENCY_WINDOW_SECONDS = 0.05
#: Share of the function timeout that the invocations a worker runs at once may take together in CPU time.
TIMEOUT_SHARE = 0.25
#: CPU time over wall time per invocation above which a function counts as CPU-heavy: its limit drops back
#: to :data:`INITIAL_CONCURRENCY` when a worker runs dry (see ``_adjust_concurrency``).
HEAVY_CPU_SHARE = 0.1
#: Share of the timeout after which a running CPU-consuming invocation halves the limit (loaded machines).
WALL_SHARE = 0.5
#: Growth of the limit per window while the running invocations only wait.
WAITING_GROWTH = 8
#: CPU seconds per second per running invocation below which invocations count as waiting (I/O-bound).
WAITING_CPU_SHARE = 0.01
#: Seconds to wait before starting workers again after one crashed while importing its handler.
INIT_RETRY_SECONDS = 1.0
#: Seconds a worker may take to start and import its handler before it counts as crashed.
WORKER_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class InvocationResult:
    """What a synchronous Lambda ``Invoke`` returns.

    :param payload: the handler's JSON-able return value, or on error the Lambda error object
        ``{"errorMessage", "errorType", "stackTrace", "requestId"}``.
    :param request_id: the invocation's request id.
    :param function_error: ``None`` on success, ``"Unhandled"`` when the handler raised, crashed, timed out or
        ran out of memory.
    :param executed_version: the function version that ran.
    :param size: bytes of the response as the function's runtime wrote it (``None`` when unknown).
    :param error_text: on a handler's error, the error object as the function's runtime wrote it (JSON text):
        Step Functions gives it unchanged as the Cause. ``None`` for errors Lambda itself reports (a timeout,
        a crash), whose text is :attr:`payload` as compact JSON.
    """

    payload: Any
    request_id: str
    function_error: str | None = None
    executed_version: str = "$LATEST"
    size: int | None = None
    error_text: str | None = None


class LambdaInvoker(Protocol):
    """Anything that invokes Lambda functions synchronously (the pool; fakes in tests)."""

    async def invoke(self, function: str, payload: Any) -> InvocationResult:
        """Invoke ``function`` (name or ARN) with ``payload``; raise ``FunctionNotFound`` if it is unknown."""
        ...


class PoolClosed(RuntimeError):
    """Raised for invocations still waiting when the pool closes."""


def lambda_environment(name: str, handler: str, memory_mb: int | None, code_dir: str) -> dict[str, str]:
    """The runtime environment variables Lambda defines for a Python function (reserved: they win).

    :param name: the function name.
    :param handler: ``module.function``, as Lambda's ``_HANDLER`` names it.
    :param memory_mb: the function's memory size (``None``: unlimited here; Lambda always has one).
    :param code_dir: the folder the code runs in (Lambda's ``LAMBDA_TASK_ROOT``, ``/var/task``).
    """
    started = time.strftime("%Y/%m/%d", time.gmtime())
    return {
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb or 0),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{started}/[$LATEST]{uuid.uuid4().hex}",
        "LAMBDA_TASK_ROOT": code_dir,
        "TZ": "UTC",
        "_HANDLER": handler,
    }


@dataclass(eq=False)
class _Invocation:
    id: int
    request_id: str
    event: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[InvocationResult]
    deadline: float = 0.0
    done: bool = False
    worker: _Worker | None = None


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    quarantine: bool
    inflight: dict[int, _Invocation] = field(default_factory=dict)
    ready: bool = False
    draining: bool = False
    killed: bool = False
    started: float = field(default_factory=time.monotonic)
    window_start: float = 0.0  # concurrency control: start of the current measurement window
    window_cpu: float = 0.0  # the worker's process CPU seconds at that point
    busy_done: int = 0  # invocations finished since the worker last went from idle to busy
    done_cpu: float = 0.0  # ... and the CPU seconds their threads used


def _deliver(items: list[tuple[asyncio.Future[InvocationResult], InvocationResult | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _resolve(items: list[tuple[_Invocation, InvocationResult | BaseException]]) -> None:
    """Complete invocations from any thread, one ``call_soon_threadsafe`` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for invocation, outcome in items:
        by_loop.setdefault(invocation.loop, []).append((invocation.future, outcome))
    for loop, batch in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_deliver, batch)


class _FunctionPool:
    """Workers and queue of one function."""

    def __init__(self, spec: FunctionSpec, owner: LambdaPool) -> None:
        self.spec = spec
        self.owner = owner
        self.lock = threading.Condition()
        self.pending: deque[_Invocation] = deque()
        self.workers: list[_Worker] = []
        self.flush_scheduled: set[asyncio.AbstractEventLoop] = set()
        self.wake_at = math.inf  # when the dispatcher thread next wakes by itself
        self.restart_after = 0.0  # no regular worker starts before this (back-off after an init crash)
        self.concurrency = min(INITIAL_CONCURRENCY, owner.max_threads)  # invocations at once per worker
        self.cpu_per_invocation = 0.0  # CPU seconds per invocation, as last measured
        self.wall_per_invocation = 0.0  # seconds from send to result per invocation (moving average)
        self.closed = False
        module, attr = spec.module_and_attr()
        code_dir = spec.code_dir or os.getcwd()
        self.worker_spec: dict[str, Any] = {
            "name": spec.name,
            "module": module,
            "attr": attr,
            "code_dir": spec.code_dir,
            "timeout": spec.timeout,
            "memory_mb": spec.memory_mb,
            "arn": owner.function_arn(spec.name),
            "max_threads": owner.max_threads,
            "environment": {
                **owner.environment,
                **spec.environment,
                **lambda_environment(spec.name, f"{module}.{attr}", spec.memory_mb, code_dir),
            },
            # The endpoint's import path, with its working folder for '': imports work as they do there.
            "sys_path": [entry or os.getcwd() for entry in sys.path],
            # Lambda runs a handler in its code's folder (/var/task); a module:callable has none of its own.
            "cwd": code_dir,
        }
        # glibc's per-thread malloc arenas would reserve gigabytes of address space across hundreds of handler
        # threads (and trip RLIMIT_AS): two arenas are plenty for handlers that mostly wait.
        self.process_env = {**os.environ, "MALLOC_ARENA_MAX": "2", **self.worker_spec["environment"]}
        for _ in range(owner.processes):
            self._start_worker(quarantine=False)
        self.dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"lambda-dispatch-{spec.name}", daemon=True
        )
        self.dispatcher.start()

    # -- workers -----------------------------------------------------------------------------------

    def _start_worker(self, quarantine: bool) -> _Worker:
        # A fresh interpreter per worker (never a fork of this threaded process, and unlike multiprocessing's
        # spawn/forkserver it does not re-import the caller's __main__ module). It talks over a socket pair.
        parent_sock, child_sock = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", worker_module.__name__, str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                env=self.process_env,
                cwd=self.worker_spec["cwd"],
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_sock.close()
        conn = Connection(parent_sock.detach())
        worker = _Worker(process=process, conn=conn, quarantine=quarantine)
        with contextlib.suppress(OSError):  # a worker that died at once is handled by its receive loop
            conn.send_bytes(pickle.dumps(self.worker_spec))
        self.workers.append(worker)
        threading.Thread(
            target=self._receive_loop, args=(worker,), name=f"lambda-recv-{self.spec.name}", daemon=True
        ).start()
        return worker

    def _receive_loop(self, worker: _Worker) -> None:
        while True:
            try:
                message = worker.conn.recv_bytes()
            except (EOFError, OSError):
                break
            process_cpu, raw = pickle.loads(message)
            items = [(invocation_id, ok, body, json_codec.loads(body)) for invocation_id, ok, body, _ in raw]
            finished: list[tuple[_Invocation, InvocationResult | BaseException]] = []
            with self.lock:
                now = time.monotonic()
                wake_dispatcher = bool(self.pending) or worker.draining or worker.quarantine
                if self._adjust_concurrency(worker, process_cpu, len(items), sum(item[3] for item in raw)):
                    wake_dispatcher = True
                if not worker.ready:
                    worker.ready = wake_dispatcher = True
                    # Invocations sent before the worker was ready (quarantine) start their clock now.
                    for invocation in worker.inflight.values():
                        self._arm_deadline(invocation)
                for invocation_id, ok, body, payload in items:
                    found = worker.inflight.pop(invocation_id, None)
                    if found is None or found.done:
                        continue
                    invocation = found
                    invocation.done = True
                    if invocation.deadline != math.inf:
                        wall = now - (invocation.deadline - self.spec.timeout - TIMEOUT_GRACE_SECONDS)
                        self.wall_per_invocation += (wall - self.wall_per_invocation) * 0.05
                    if not ok and payload.get("errorType") == "Runtime.OutOfMemory":
                        self._retire(worker)  # Lambda discards a sandbox that ran out of memory
                        wake_dispatcher = True
                    finished.append(
                        (
                            invocation,
                            InvocationResult(
                                payload=payload,
                                request_id=invocation.request_id,
                                function_error=None if ok else "Unhandled",
                                size=len(body),
                                error_text=None if ok else body.decode(),
                            ),
                        )
                    )
                heavy = self.cpu_per_invocation > HEAVY_CPU_SHARE * self.wall_per_invocation
                if not worker.inflight and heavy:
                    self.concurrency = min(self.concurrency, INITIAL_CONCURRENCY)
                if wake_dispatcher:  # it has work to send or a worker to retire
                    self.lock.notify_all()
            _resolve(finished)
        self._worker_exited(worker)

    def _adjust_concurrency(
        self, worker: _Worker, process_cpu: float, finished: int, finished_cpu: float
    ) -> bool:
        """Adapt how many invocations a worker runs at once to the CPU time each needs (lock held).

        Handlers share their worker's GIL. Hundreds of waiting (I/O-bound) invocations per worker cost little,
        but many CPU-heavy ones would each take many times longer than alone and run past the function
        timeout, where on AWS each has its own CPU. Per window of :data:`CONCURRENCY_WINDOW_SECONDS`, from the
        worker's CPU time (which, unlike wall time, does not depend on what else the machine runs): when
        invocations finished, allow as many at once as fit in :data:`TIMEOUT_SHARE` of the timeout at the CPU
        time each needs (growing at most twofold per window); when none finished but those running use almost
        no CPU (they wait) and work is queued, grow it :data:`WAITING_GROWTH`-fold. Bounds: 1 and
        ``max_threads``. When a worker of a CPU-heavy function (:data:`HEAVY_CPU_SHARE`) runs dry the limit
        drops back to :data:`INITIAL_CONCURRENCY`, so the next burst, perhaps of costlier invocations, starts
        carefully again. Returns whether the limit grew.
        """
        now = time.monotonic()
        worker.busy_done += finished
        worker.done_cpu += finished_cpu
        if not worker.window_start:
            worker.window_start, worker.window_cpu = now, process_cpu
            return False
        elapsed = now - worker.window_start
        if elapsed < CONCURRENCY_WINDOW_SECONDS:
            return False
        used = process_cpu - worker.window_cpu
        worker.window_start, worker.window_cpu = now, process_cpu
        ceiling, before = self.owner.max_threads, self.concurrency
        if worker.busy_done:
            # CPU each invocation needs: the mean of those finished since the worker last became busy, from
            # their threads' CPU as the worker measured it. Not the process's CPU over the finished count:
            # when the first of hundreds of waiting invocations finished, that counted every running one's
            # CPU (and the worker's own) against those few, and cut the limit to a handful. Costlier
            # invocations still running are the wall-time rule's to catch (below).
            self.cpu_per_invocation = max(worker.done_cpu / worker.busy_done, 1e-6)
            fits = max(1, min(ceiling, int(TIMEOUT_SHARE * self.spec.timeout / self.cpu_per_invocation)))
            # Down at once; up at most twice per window, so one cheap stretch cannot open the gates wide.
            self.concurrency = min(fits, before * 2)
        elif self.pending and used / elapsed / max(1, len(worker.inflight)) < WAITING_CPU_SHARE:
            self.concurrency = min(ceiling, self.concurrency * WAITING_GROWTH)
        # On a loaded machine a worker gets less than a core, and CPU time alone underestimates how long
        # invocations take: when the oldest running one (not merely waiting) has used half its timeout,
        # halve the limit, whatever the CPU figures said.
        oldest = next((inv for inv in worker.inflight.values() if not inv.done), None)
        if oldest is not None and oldest.deadline != math.inf:
            age = now - (oldest.deadline - self.spec.timeout - TIMEOUT_GRACE_SECONDS)
            waiting = used / elapsed / max(1, len(worker.inflight)) < WAITING_CPU_SHARE
            if age > WALL_SHARE * self.spec.timeout and not waiting:
                self.concurrency = max(1, min(self.concurrency, len(worker.inflight)) // 2)
        if self.concurrency != before:
            log.debug("Lambda %s: %d concurrent invocations per worker", self.spec.name, self.concurrency)
        return self.concurrency > before

    def _retire(self, worker: _Worker) -> None:
        """Send ``worker`` no more work and start its replacement; it is killed once idle (lock held)."""
        if worker.draining:
            return
        worker.draining = True
        if not worker.quarantine and not self.closed:
            self._start_worker(quarantine=False)

    def _arm_deadline(self, invocation: _Invocation) -> None:
        # Every invocation of a function has the same timeout and is armed when sent (or, for a worker that
        # was not ready yet, all at once when it is), so each worker's in-flight dict is in deadline order.
        invocation.deadline = time.monotonic() + self.spec.timeout + TIMEOUT_GRACE_SECONDS
        if invocation.deadline < self.wake_at:  # the dispatcher sleeps past this deadline: wake it
            self.wake_at = invocation.deadline
            self.lock.notify_all()

    def _worker_exited(self, worker: _Worker) -> None:
        try:
            exitcode: int | None = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            exitcode = worker.process.wait()
        finished: list[tuple[_Invocation, InvocationResult | BaseException]] = []
        with self.lock:
            # Closed under the lock the dispatcher sends under: a send must never be mid-write when the
            # descriptor is closed, or the rest of the message would land in whatever file reuses that number.
            worker.conn.close()
            if worker in self.workers:
                self.workers.remove(worker)
            suspects = [inv for inv in worker.inflight.values() if not inv.done]
            worker.inflight.clear()
            if self.closed:
                finished = [(inv, PoolClosed("The Lambda pool is closed")) for inv in suspects]
            elif len(suspects) == 1:
                (guilty,) = suspects
                guilty.done = True
                finished.append((guilty, self._exit_error(guilty, exitcode)))
            elif suspects:
                log.warning(
                    "Lambda worker of %s died (exit code %s) running %d invocations: re-running them in "
                    "quarantine to find the culprit",
                    self.spec.name,
                    exitcode,
                    len(suspects),
                )
                half = len(suspects) // 2
                for group in (suspects[:half], suspects[half:]):
                    quarantine_worker = self._start_worker(quarantine=True)
                    self._send(quarantine_worker, group)
            if not self.closed and not worker.ready and not worker.killed and not worker.quarantine:
                # It died before its handler was imported (module-level crash): restarting at once would
                # loop. Fail what waits, as Lambda fails invocations whose init crashes, and back off.
                log.error("Lambda worker of %s exited during init (exit code %s)", self.spec.name, exitcode)
                self.restart_after = time.monotonic() + INIT_RETRY_SECONDS
                waiting = list(self.pending)
                self.pending.clear()
                finished += [(inv, self._exit_error(inv, exitcode)) for inv in waiting]
            elif not self.closed and not worker.quarantine and not worker.draining:
                self._start_worker(quarantine=False)  # a draining worker was replaced when it began draining
            self.lock.notify_all()
        _resolve(finished)

    def _ensure_workers(self) -> None:
        """Start regular workers up to ``processes`` (after an init crash, once the back-off has passed)."""
        if time.monotonic() < self.restart_after:
            return
        regular = [w for w in self.workers if not w.quarantine and not w.draining and not w.killed]
        for _ in range(self.owner.processes - len(regular)):
            self._start_worker(quarantine=False)

    def _exit_error(self, invocation: _Invocation, exitcode: int | None) -> InvocationResult:
        if exitcode is not None and exitcode < 0:
            try:
                reason = f"signal: {signal.Signals(-exitcode).name[3:].lower()}"
            except ValueError:
                reason = f"signal: {-exitcode}"
            if exitcode == -signal.SIGKILL:
                reason = "signal: killed"
        else:
            reason = f"exit status {exitcode}"
        message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: {reason}"
        return InvocationResult(
            payload=json.loads(
                worker_module.error_object("Runtime.ExitError", message, invocation.request_id)
            ),
            request_id=invocation.request_id,
            function_error="Unhandled",
        )

    # -- dispatch ----------------------------------------------------------------------------------

    def submit(self, invocation: _Invocation) -> None:
        """Queue ``invocation``; it is sent at the end of the caller's event-loop iteration with its peers."""
        with self.lock:
            if self.closed:
                raise PoolClosed("The Lambda pool is closed")
            self.pending.append(invocation)
            loop = invocation.loop
            if loop not in self.flush_scheduled:
                self.flush_scheduled.add(loop)
                loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on the caller's loop: sending from here saves a dispatcher-thread wake-up per batch. What
        # cannot be sent now (workers full or starting) is left to the dispatcher thread.
        with self.lock:
            self.flush_scheduled.discard(loop)
            if self.closed:
                return
            self._dispatch_pending()
            if self.pending:
                self.lock.notify_all()

    def _send(self, worker: _Worker, batch: list[_Invocation]) -> None:
        """Send ``batch`` to ``worker`` (caller holds the lock)."""
        if not worker.inflight:  # idle -> busy: start measuring CPU per invocation afresh
            worker.busy_done, worker.done_cpu = 0, 0.0
        for invocation in batch:
            invocation.worker = worker
            worker.inflight[invocation.id] = invocation
            if worker.ready:
                self._arm_deadline(invocation)
            else:
                invocation.deadline = math.inf  # armed when the worker reports ready
        message = pickle.dumps(
            [(inv.id, inv.request_id, inv.event) for inv in batch], protocol=pickle.HIGHEST_PROTOCOL
        )
        # A dead worker's receive loop re-runs or fails what it held.
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send_bytes(message)

    def _dispatch_loop(self) -> None:
        with self.lock:
            while not self.closed:
                self._dispatch_pending()
                timeout = self._expire()
                if self.pending and (self._starting() or time.monotonic() < self.restart_after):
                    timeout = STARTUP_POLL_SECONDS if timeout is None else min(timeout, STARTUP_POLL_SECONDS)
                self.wake_at = math.inf if timeout is None else time.monotonic() + timeout
                self.lock.wait(timeout)

    def _starting(self) -> bool:
        """Whether a regular worker is still starting (and recently enough to be worth waiting for)."""
        now = time.monotonic()
        return any(
            not w.ready and not w.quarantine and not w.killed and now - w.started < STARTUP_WAIT_SECONDS
            for w in self.workers
        )

    def _dispatch_pending(self) -> None:
        capacity = self.concurrency
        if self.pending:
            self._ensure_workers()
        if self.pending and self._starting():
            # Wait for every worker before the first dispatch, or the first one ready takes the whole queue
            # and CPU-bound handlers run in one process.
            return
        while self.pending:
            # Until workers report ready their deadlines would count import time: wait for them.
            open_workers = sorted(
                (w for w in self.workers if w.ready and not w.quarantine and not w.draining and not w.killed),
                key=lambda w: len(w.inflight),
            )
            taken = 0
            # Share what is pending evenly (one message per worker) so CPU-bound work spreads over every
            # process; the least busy workers first, in case there is not enough for all.
            for position, worker in enumerate(open_workers):
                room = capacity - len(worker.inflight)
                if room <= 0 or not self.pending:
                    continue
                share = max(1, min(room, -(-len(self.pending) // (len(open_workers) - position))))
                batch: list[_Invocation] = []
                while self.pending and len(batch) < share:
                    invocation = self.pending.popleft()
                    taken += 1
                    if not invocation.future.cancelled():
                        batch.append(invocation)
                if batch:
                    self._send(worker, batch)
            if not taken:
                return

    def _expire(self) -> float | None:
        """Fail invocations past their deadline; return seconds until the next deadline."""
        now = time.monotonic()
        next_deadline = math.inf
        timed_out: list[tuple[_Invocation, InvocationResult | BaseException]] = []
        for worker in list(self.workers):
            for invocation in worker.inflight.values():  # not changed in this loop: no copy needed
                if invocation.done:
                    continue  # timed out already; the worker is draining
                if invocation.deadline > now:
                    next_deadline = min(next_deadline, invocation.deadline)
                    break  # the rest of this worker's invocations were sent later
                invocation.done = True
                request_id, limit = invocation.request_id, self.spec.timeout
                message = f"RequestId: {request_id} Error: Task timed out after {limit:.2f} seconds"
                error = worker_module.error_object("Sandbox.Timedout", message, request_id)
                result = InvocationResult(
                    payload=json.loads(error), request_id=request_id, function_error="Unhandled"
                )
                timed_out.append((invocation, result))
                self._retire(worker)
        for worker in list(self.workers):
            idle_draining = worker.draining and all(inv.done for inv in worker.inflight.values())
            stuck_starting = not worker.ready and time.monotonic() - worker.started > WORKER_START_TIMEOUT
            if (idle_draining or stuck_starting) and not worker.killed:
                worker.killed = True
                worker.process.kill()
        # A quarantine worker whose invocations all finished has served its purpose.
        for worker in list(self.workers):
            if worker.quarantine and worker.ready and not worker.inflight and not worker.killed:
                worker.killed = True
                worker.process.kill()
        _resolve(timed_out)
        if next_deadline == math.inf:
            return None
        return max(DEADLINE_POLL_SECONDS, next_deadline - now)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            pending = list(self.pending)
            self.pending.clear()
            workers = list(self.workers)
            self.lock.notify_all()
        _resolve([(inv, PoolClosed("The Lambda pool is closed")) for inv in pending])
        for worker in workers:
            worker.killed = True
            worker.process.kill()
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
        self.dispatcher.join(timeout=5)


class LambdaPool:
    """Runs registered Lambda functions in worker processes; implements :class:`LambdaInvoker`.

    ``invoke`` may be awaited from any asyncio event loop, in any thread. Workers of a function start on its
    first invocation.

    :param registry: the functions.
    :param processes: worker processes per function (default: the number of CPUs).
    :param max_threads: concurrent invocations per worker process.
    :param environment: environment variables for handlers (e.g. ``AWS_ENDPOINT_URL``).
    :param region: region in the function ARNs handlers see.
    :param account_id: account in those ARNs.
    """

    def __init__(
        self,
        registry: FunctionRegistry,
        processes: int | None = None,
        max_threads: int = DEFAULT_MAX_THREADS,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.registry = registry
        self.processes = max(1, processes or os.cpu_count() or 1)
        self.max_threads = max_threads
        self.environment = dict(environment or {})
        self.region = region
        self.account_id = account_id
        self._pools: dict[str, _FunctionPool] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # Request ids look like AWS's (UUIDs): a random prefix per pool plus a counter. uuid4() per invocation
        # costs a getrandom() syscall, which is slow enough on some VMs to cap throughput.
        self._id_prefix = str(uuid.uuid4())[:24]
        self._request_ids = itertools.count(1)
        self._closed = False

    def _pool(self, spec: FunctionSpec) -> _FunctionPool:
        pool = self._pools.get(spec.name)
        if pool is not None and pool.spec is spec:
            return pool
        with self._lock:
            if self._closed:
                raise PoolClosed("The Lambda pool is closed")
            pool = self._pools.get(spec.name)
            if pool is None or pool.spec is not spec:
                stale = pool
                pool = _FunctionPool(spec, self)
                self._pools[spec.name] = pool
                if stale is not None:  # the function was re-registered: retire the old workers
                    threading.Thread(target=stale.close, daemon=True).start()
            return pool

    def function_arn(self, function: str) -> str:
        """The full ARN of a function name or partial ARN (``[REGION:]ACCOUNT:function:NAME``); an ARN as is.

        :param function: the name or ARN.
        """
        if function.startswith("arn:"):
            return function
        if ":function:" in function and not function[0].isdigit():  # REGION:ACCOUNT:function:NAME
            return f"arn:{partition_of(function.split(':')[0])}:lambda:{function}"
        prefix = f"arn:{partition_of(self.region)}:lambda:{self.region}"
        if ":function:" in function:  # ACCOUNT:function:NAME
            return f"{prefix}:{function}"
        return f"{prefix}:{self.account_id}:function:{function}"

    def _request_id(self) -> str:
        return f"{self._id_prefix}{next(self._request_ids) & 0xFFFFFFFFFFFF:012x}"

    async def invoke(self, function: str, payload: Any) -> InvocationResult:
        """Invoke ``function`` synchronously (``RequestResponse``) with ``payload``.

        :param function: a function name, partial ARN or full ARN (a qualifier is accepted and ignored).
        :param payload: the event; must be JSON-serialisable.
        :raises FunctionNotFound: when no function is registered under that name.
        """
        try:
            spec = self.registry.resolve(function)
        except FunctionNotFound:
            # Lambda's message names the full function ARN, whatever the caller passed.
            raise FunctionNotFound(self.function_arn(function)) from None
        pool = self._pool(spec)
        loop = asyncio.get_running_loop()
        invocation = _Invocation(
            id=next(self._ids),
            request_id=self._request_id(),
            event=json_codec.dumps_bytes(payload),
            loop=loop,
            future=loop.create_future(),
        )
        pool.submit(invocation)
        return await invocation.future

    def worker_pids(self, function: str) -> list[int]:
        """Process ids of the regular workers of ``function`` that take new work (diagnostics and tests).

        Workers being retired (after a timeout) and temporary quarantine workers are not listed.
        """
        pool = self._pools.get(self.registry.resolve(function).name)
        if pool is None:
            return []
        with pool.lock:
            return [w.process.pid for w in pool.workers if not (w.killed or w.quarantine or w.draining)]

    def close(self) -> None:
        """Stop every worker; invocations still running fail with :class:`PoolClosed`."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def __enter__(self) -> LambdaPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
