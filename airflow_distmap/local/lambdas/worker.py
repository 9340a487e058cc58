"""Code that runs inside a Lambda worker process: import the handler, run invocations in threads.

Protocol on the worker's pipe (pickled lists, so one message carries many invocations):

- pool -> worker: ``[(invocation_id, request_id, event_json_bytes), ...]``
- worker -> pool: ``[(invocation_id, ok, response_json_bytes), ...]``; ``ok`` is ``False`` when the response is
  a Lambda error object. The first message is ``[]`` once the handler is imported (the worker is ready).

This module is imported in the forkserver and in every worker: keep its imports to the standard library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import pickle
import queue
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

#: Stack size of handler threads. Python's default recursion limit needs well under 1 MiB; keeping stacks small
#: keeps hundreds of threads cheap in address space (which ``RLIMIT_AS`` counts).
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
    if memory_mb is None:
        return
    # glibc gives each thread up to 8 * cores malloc arenas of 64 MiB address space each: with hundreds of
    # handler threads that alone would exhaust RLIMIT_AS, so cap the arenas (M_ARENA_MAX = -8).
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        try:
            ctypes.CDLL(libc_name).mallopt(-8, 2)
        except (OSError, AttributeError):
            pass
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


def main(conn: Connection, spec: dict[str, Any]) -> None:
    """Entry point of a worker process.

    :param conn: the worker's end of its pipe to the pool.
    :param spec: ``name``, ``module``, ``attr``, ``code_dir``, ``timeout``, ``memory_mb``, ``arn``,
        ``max_threads``, ``environment``, ``sys_path``, ``cwd``.
    """
    os.environ.update(spec["environment"])
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

    with ThreadPoolExecutor(max_workers=spec["max_threads"], thread_name_prefix="lambda") as executor:
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):
                break
            for invocation_id, request_id, event_json in pickle.loads(message):
                executor.submit(run, invocation_id, request_id, event_json)
    # The pool closed the pipe: stop without waiting for running handlers.
    os._exit(0)


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
