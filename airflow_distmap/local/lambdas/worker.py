"""Code that runs inside a Lambda worker process: import the handler, run invocations in threads.

Protocol on the worker's pipe (pickled lists, so one message carries many invocations):

- pool -> worker: ``[(invocation_id, request_id, event_json_bytes), ...]``
- worker -> pool: ``[(invocation_id, ok, response_json_bytes), ...]``; ``ok`` is ``False`` when the response
  is a Lambda error object. The first message is ``[]`` once the handler is imported (the worker is ready).

This module is imported in the forkserver and in every worker: keep its imports to the standard library.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

#: Stack size of handler threads. Python's default recursion limit needs well under 1 MiB; small stacks keep
#: hundreds of threads cheap in address space (which ``RLIMIT_AS`` counts).
THREAD_STACK_BYTES = 1024 * 1024
#: Address space allowed on top of the worker's own footprint and thread stacks, for the interpreter's arenas.
ADDRESS_SPACE_SLACK_BYTES = 256 * 1024 * 1024

Handler = Callable[[Any, "LambdaContext"], Any]


class LambdaContext:
    """The ``context`` argument handlers receive, with the attributes of AWS's Python runtime context.

    :param function_name: the function name.
    :param aws_request_id: this invocation's request id.
    :param memory_limit_in_mb: the function's memory size.
    :param invoked_function_arn: the ARN the function was invoked with.
    :param timeout: the function timeout in seconds, counted from now.
    """

    function_version = "$LATEST"
    log_group_name = ""
    log_stream_name = ""
    identity = None
    client_context = None

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
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = invoked_function_arn
        self.log_group_name = f"/aws/lambda/{function_name}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def error_object(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> bytes:
    """A Lambda error object, JSON encoded, as the Python runtime returns it."""
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}
    ).encode()


def _handler_error(exc: BaseException, request_id: str) -> bytes:
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    return error_object(type(exc).__name__, str(exc), request_id, [line.rstrip("\n") for line in stack])


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

    results: queue.SimpleQueue[tuple[int, bool, bytes] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_results, args=(conn, results), name="lambda-results", daemon=True)
    sender.start()
    conn.send_bytes(pickle.dumps([]))

    def run(invocation_id: int, request_id: str, event_json: bytes) -> None:
        try:
            if init_error is not None:
                results.put((invocation_id, False, error_object(init_error[0], init_error[1], request_id)))
                return
            assert handler is not None
            context = LambdaContext(
                spec["name"], request_id, spec["memory_mb"] or 0, spec["arn"], spec["timeout"]
            )
            try:
                response = handler(json.loads(event_json), context)
            except MemoryError:
                results.put((invocation_id, False, _out_of_memory(request_id)))
                return
            except Exception as exc:
                results.put((invocation_id, False, _handler_error(exc, request_id)))
                return
            try:
                body = json.dumps(response).encode()
            except (TypeError, ValueError) as exc:
                message = f"Unable to marshal response: {exc}"
                results.put((invocation_id, False, error_object("Runtime.MarshalError", message, request_id)))
                return
            results.put((invocation_id, True, body))
        except MemoryError:
            results.put((invocation_id, False, _out_of_memory(request_id)))
        except BaseException as exc:  # SystemExit from sys.exit() in a handler, etc.
            results.put((invocation_id, False, _handler_error(exc, request_id)))

    threads = _HandlerThreads(run, spec["max_threads"])
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            break
        threads.submit_many(pickle.loads(message))
    # The pool closed the pipe: stop without waiting for running handlers.
    os._exit(0)


class _HandlerThreads:
    """A minimal thread pool: ``SimpleQueue`` of work, threads started on demand up to ``max_threads``.

    Hand-written instead of ``concurrent.futures.ThreadPoolExecutor``: the executor's per-task future and
    work-item objects were half of the worker's per-invocation CPU (measured: 112 -> 60 us) at tens of
    thousands of invocations per second, and results travel back through our own queue anyway.
    """

    def __init__(self, run: Callable[[int, str, bytes], None], max_threads: int) -> None:
        self.run = run
        self.max_threads = max_threads
        self.work: queue.SimpleQueue[tuple[int, str, bytes]] = queue.SimpleQueue()
        self.threads = 0
        self.busy = 0
        self.lock = threading.Lock()

    def submit_many(self, items: list[tuple[int, str, bytes]]) -> None:
        with self.lock:
            self.busy += len(items)
            wanted = min(self.busy, self.max_threads) - self.threads
            self.threads += max(0, wanted)
        for item in items:
            self.work.put(item)
        for _ in range(wanted):
            threading.Thread(target=self._loop, name="lambda-handler", daemon=True).start()

    def _loop(self) -> None:
        get, run, lock = self.work.get, self.run, self.lock
        while True:
            item = get()
            run(*item)
            with lock:
                self.busy -= 1


def _out_of_memory(request_id: str) -> bytes:
    return error_object(
        "Runtime.OutOfMemory",
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
        request_id,
    )


def _send_results(conn: Connection, results: queue.SimpleQueue[tuple[int, bool, bytes] | None]) -> None:
    while True:
        first = results.get()
        batch = [first]
        try:
            while len(batch) < 4096:
                batch.append(results.get_nowait())
        except queue.Empty:
            pass
        items = [item for item in batch if item is not None]
        try:
            conn.send_bytes(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError):
            os._exit(0)


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])))
