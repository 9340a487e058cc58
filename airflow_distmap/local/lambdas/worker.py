"""Code that runs inside a Lambda worker process: import the handler, run invocations in threads.

Protocol on the worker's pipe (pickled lists, so one message carries many invocations):

- pool -> worker: ``[(invocation_id, request_id, event_json_bytes), ...]``
- worker -> pool: ``(process_cpu_seconds, [(invocation_id, ok, response_json_bytes, cpu_seconds), ...])``;
  ``ok`` is ``False`` when the response is a Lambda error object; ``cpu_seconds`` is the CPU time of the
  invocation's thread (``time.thread_time()``). Both CPU figures feed the pool's concurrency control; while
  invocations run ``process_cpu_seconds`` (``time.process_time()``) also comes alone every
  :data:`HEARTBEAT_SECONDS`. The first message, ``(cpu, [])``, says the handler is imported (ready).

This module is imported in every worker: keep its imports to the standard library, ``json_codec`` and
``gc_tuning``.
"""

from __future__ import annotations

import decimal
import json
import logging
import os
import pickle
import queue
import resource
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from airflow_distmap import json_codec
from airflow_distmap.lambda_runtime import EncodedResult
from airflow_distmap.local.gc_tuning import tune_garbage_collector

#: Stack size of handler threads. Python's default recursion limit needs well under 1 MiB; small stacks keep
#: hundreds of threads cheap in address space (which ``RLIMIT_AS`` counts).
THREAD_STACK_BYTES = 1024 * 1024
#: Address space allowed on top of the worker's own footprint and thread stacks, for the interpreter's arenas.
ADDRESS_SPACE_SLACK_BYTES = 256 * 1024 * 1024

#: Seconds between CPU reports while invocations run without finishing.
HEARTBEAT_SECONDS = 0.05
#: Lambda's limit on a synchronous invocation's response (6 MB as Lambda counts it).
MAX_RESPONSE_BYTES = 6291556

Handler = Callable[[Any, "LambdaContext"], Any]


class CognitoIdentity:
    """``context.identity``: AWS's runtime gives one whose fields are ``None`` outside the mobile SDKs."""

    cognito_identity_id = None
    cognito_identity_pool_id = None


class LambdaContext:
    """The ``context`` argument handlers receive, with the attributes of AWS's Python runtime context.

    :param function_name: the function name.
    :param aws_request_id: this invocation's request id.
    :param memory_limit_in_mb: the function's memory size.
    :param invoked_function_arn: the ARN the function was invoked with.
    :param timeout: the function timeout in seconds, counted from now.
    """

    function_version = "$LATEST"
    identity = CognitoIdentity()
    client_context = None
    tenant_id = None

    def __init__(
        self,
        function_name: str,
        aws_request_id: str,
        memory_limit_in_mb: int,
        invoked_function_arn: str,
        timeout: float,
    ) -> None:
        self.function_name = function_name
        self.aws_request_id = aws_request_id
        # A string, as AWS's runtime reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.invoked_function_arn = invoked_function_arn
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{function_name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_object(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> bytes:
    """A Lambda error object, JSON encoded, as the Python runtime returns it."""
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}
    ).encode()


def _response_body(response: Any) -> bytes:
    """The handler's response as the Lambda runtime serialises it (``json.dumps``), UTF-8 encoded.

    A ``row_handler`` batch answer already carries that text (:class:`EncodedResult`), so it is not encoded
    twice.
    """
    text = response.unchanged_text() if type(response) is EncodedResult else None
    return (json.dumps(_as_aws_encodes(response), default=_decimal) if text is None else text).encode()


def _as_aws_encodes(value: Any) -> Any:
    """A response with namedtuples as objects, as AWS's runtime encoder (simplejson) writes them."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: _as_aws_encodes(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_as_aws_encodes(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_aws_encodes(item) for key, item in value.items()}
    return value


def _decimal(value: Any) -> Any:
    """AWS's runtime writes a ``Decimal`` (DynamoDB's numbers) as a JSON number: here an int or a float."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _handler_error(exc: BaseException, request_id: str) -> bytes:
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    return error_object(type(exc).__name__, str(exc), request_id, stack)


def _limit_memory(memory_mb: int | None, max_threads: int) -> None:
    # The pool starts workers with MALLOC_ARENA_MAX=2: glibc's default of 8 arenas per core, 64 MiB of address
    # space each, would otherwise eat the budget before the handler allocates anything.
    if memory_mb is None:
        return
    with open("/proc/self/statm", encoding="ascii") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    limit = current + memory_mb * 1024 * 1024 + max_threads * THREAD_STACK_BYTES + ADDRESS_SPACE_SLACK_BYTES
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


#: The request id of the invocation the current thread runs (each invocation runs in a thread of its own).
_INVOCATION = threading.local()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = getattr(_INVOCATION, "request_id", "")
        return True


def install_lambda_logging() -> None:
    """Give the root logger the handler Lambda's Python runtime gives it, writing to the function's log.

    As on Lambda, ``logging.getLogger().setLevel(logging.INFO)`` then shows ``logger.info`` lines, each as
    ``[LEVEL]<tab>time<tab>request id<tab>message`` (AWS, Log and monitor Python Lambda functions). The
    function's log is the endpoint's standard output, as ``print`` output is.
    """
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _load_handler(spec: Mapping[str, Any]) -> Handler:
    import importlib

    if spec["code_dir"]:
        sys.path.insert(0, spec["code_dir"])
    module_name, attr = spec["module"], spec["attr"]
    module = importlib.import_module(module_name)
    try:
        handler: Handler = getattr(module, attr)
    except AttributeError:
        raise _InitError(
            "Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'"
        ) from None
    return handler


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def main(conn: Connection) -> None:
    """Entry point of a worker process: read the function spec, import the handler, serve invocations.

    :param conn: the worker's end of its socket pair to the pool. The first message is the spec: ``name``,
        ``module``, ``attr``, ``code_dir``, ``timeout``, ``memory_mb``, ``arn``, ``max_threads``,
        ``environment``, ``sys_path``, ``cwd``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the endpoint, which then stops its workers
    spec: dict[str, Any] = pickle.loads(conn.recv_bytes())
    for entry in reversed(spec["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if spec["cwd"]:
        os.chdir(spec["cwd"])
    threading.stack_size(THREAD_STACK_BYTES)
    install_lambda_logging()  # before the import: module-level code logs too
    handler: Handler | None = None
    init_error: tuple[str, str] | None = None
    try:
        handler = _load_handler(spec)
    except _InitError as exc:
        init_error = (exc.error_type, exc.message)
    except ImportError as exc:
        init_error = ("Runtime.ImportModuleError", f"Unable to import module '{spec['module']}': {exc}")
    except SyntaxError as exc:
        init_error = ("Runtime.UserCodeSyntaxError", f"Syntax error in module '{spec['module']}': {exc}")
    except Exception as exc:
        init_error = (type(exc).__name__, str(exc))
    _limit_memory(spec["memory_mb"], spec["max_threads"])
    tune_garbage_collector()  # the handler and its imports live as long as the worker

    def run(invocation_id: int, request_id: str, event_json: bytes) -> tuple[int, bool, bytes]:
        try:
            if init_error is not None:
                # An init error belongs to no invocation: AWS's runtime reports it without a request id.
                return (invocation_id, False, error_object(init_error[0], init_error[1], ""))
            assert handler is not None
            context = LambdaContext(
                spec["name"], request_id, spec["memory_mb"] or 0, spec["arn"], spec["timeout"]
            )
            _INVOCATION.request_id = request_id
            try:
                response = handler(json_codec.loads(event_json), context)
            except MemoryError:
                return (invocation_id, False, _out_of_memory(request_id))
            except Exception as exc:
                return (invocation_id, False, _handler_error(exc, request_id))
            except SystemExit as exc:  # on Lambda the runtime process exits: a crash, not a handler error
                return (invocation_id, False, _exit_error(exc, request_id))
            try:
                body = _response_body(response)
            except (TypeError, ValueError) as exc:
                message = f"Unable to marshal response: {exc}"
                return (invocation_id, False, error_object("Runtime.MarshalError", message, request_id))
            if len(body) > MAX_RESPONSE_BYTES:
                message = (
                    f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                    f"({MAX_RESPONSE_BYTES} bytes)."
                )
                return (
                    invocation_id,
                    False,
                    error_object("Function.ResponseSizeTooLarge", message, request_id),
                )
            return (invocation_id, True, body)
        except MemoryError:
            return (invocation_id, False, _out_of_memory(request_id))
        except BaseException as exc:  # SystemExit from sys.exit() in a handler, etc.
            return (invocation_id, False, _handler_error(exc, request_id))

    threads = _HandlerThreads(run, spec["max_threads"], conn)
    conn.send_bytes(pickle.dumps((time.process_time(), [])))
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            break
        threads.submit_many(pickle.loads(message))
    # The pool closed the pipe: stop without waiting for running handlers.
    os._exit(0)


class _HandlerThreads:
    """A minimal thread pool with a sender thread that returns results in batches.

    Work waits in a ``SimpleQueue``; threads start on demand up to ``max_threads``.

    Hand-written instead of ``concurrent.futures.ThreadPoolExecutor``: at tens of thousands of invocations
    per second the executor's per-task future and work-item objects were half of the worker's CPU per
    invocation (measured on 2 vCPUs: 112 us with the executor, 60 us without). A finished invocation only
    wakes the sender when it is not already awake.
    """

    def __init__(
        self, run: Callable[[int, str, bytes], tuple[int, bool, bytes]], max_threads: int, conn: Connection
    ) -> None:
        self.run = run
        self.max_threads = max_threads
        self.conn = conn
        self.work: queue.SimpleQueue[tuple[int, str, bytes]] = queue.SimpleQueue()
        self.results: deque[tuple[int, bool, bytes, float]] = deque()
        self.wake = threading.Event()
        self.threads = 0
        self.submitted = 0  # written by the main thread only
        self.sent = 0  # written by the sender thread only
        threading.Thread(target=self._send_loop, name="lambda-results", daemon=True).start()

    def submit_many(self, items: list[tuple[int, str, bytes]]) -> None:
        self.submitted += len(items)
        wanted = min(self.submitted - self.sent, self.max_threads) - self.threads
        for item in items:
            self.work.put(item)
        for _ in range(wanted):
            self.threads += 1
            threading.Thread(target=self._loop, name="lambda-handler", daemon=True).start()

    def _loop(self) -> None:
        get, run, append, wake = self.work.get, self.run, self.results.append, self.wake
        clock = time.thread_time
        while True:
            item = get()
            started = clock()
            invocation_id, ok, body = run(*item)
            append((invocation_id, ok, body, clock() - started))
            if not wake.is_set():
                wake.set()

    def _send_loop(self) -> None:
        wake, popleft = self.wake, self.results.popleft
        try:
            while True:
                woken = wake.wait(HEARTBEAT_SECONDS)
                wake.clear()
                batch = []
                try:
                    while True:
                        batch.append(popleft())
                except IndexError:
                    pass
                # Results, or while invocations run a heartbeat: the pool's concurrency control reads the
                # process CPU time either way.
                if batch or (not woken and self.submitted > self.sent):
                    message = (time.process_time(), batch)
                    self.conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
                    self.sent += len(batch)
        except BaseException:
            # The pool is gone (or this process is out of memory): nothing useful is left to do.
            os._exit(1)


def _exit_error(exc: SystemExit, request_id: str) -> bytes:
    """``sys.exit()`` in a handler, reported as Lambda reports its runtime exiting (the worker lives on)."""
    status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return error_object(
        "Runtime.ExitError",
        f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}",
        request_id,
    )


def _out_of_memory(request_id: str) -> bytes:
    return error_object(
        "Runtime.OutOfMemory",
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
        request_id,
    )


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])))
