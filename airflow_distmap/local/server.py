"""The local endpoint's HTTP front door: one WSGI application, one threaded server on loopback.

Requests carrying ``X-Amz-Target: AWSStepFunctions.<Action>`` are AWS JSON 1.0 calls for the project's
Step Functions service; Lambda's function API goes to the registered functions (``lambda_api``); everything
else (S3 first) goes to moto's server application, exactly as
``moto_server`` would answer it. moto's backends are process-global: a running endpoint and moto's
in-process ``mock_aws`` must not overlap in time (``mock_aws`` would also intercept the HTTP calls
made to the endpoint, and its reset wipes the endpoint's buckets).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import functools
import gc
import io
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from airflow_distmap.local.errors import ServiceError
from airflow_distmap.local.lambda_api import is_lambda_request
from airflow_distmap.local.wsgi import StartResponse, WSGIApp, read_body, status_line

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

log = logging.getLogger(__name__)

#: Prefix of the ``X-Amz-Target`` header of every Step Functions API call.
STEP_FUNCTIONS_TARGET_PREFIX = "AWSStepFunctions."
#: Content type of AWS JSON 1.0 protocol responses (what botocore expects from Step Functions).
AMZ_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"

#: Request body size from which the endpoint gives freed memory back to the OS once moto has answered.
RELEASE_MEMORY_AFTER_BYTES = 64 * 1024 * 1024
#: Request bodies at least this large are read in one call before moto sees them (see ``_preread_body``).
PREREAD_BODY_BYTES = 1024 * 1024


class Dispatcher(Protocol):
    """What the server needs from the Step Functions service (``StepFunctionsService`` provides it)."""

    def dispatch(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one API call; raise :class:`ServiceError` for an AWS error."""
        ...


def _json_default(value: Any) -> Any:
    # AWS JSON 1.0 sends timestamps as epoch seconds; accept datetimes from the service as well.
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(body: dict[str, Any]) -> bytes:
    """Serialise a response body the way AWS JSON 1.0 does (compact, epoch-second timestamps)."""
    return json.dumps(body, separators=(",", ":"), default=_json_default).encode("utf-8")


def _preread_body(environ: dict[str, Any]) -> None:
    """Read a large request body (an S3 object or part) in one call and hand it to moto as it is.

    werkzeug's request reads a body 64 KiB at a time into a growing buffer, then copies it: for uploads of
    hundreds of MB that was a third of the endpoint's time. One ``read`` of the whole body (the socket reads
    run without the GIL), given as a terminated stream, reaches moto without another copy.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if length < PREREAD_BODY_BYTES or environ.get("wsgi.input_terminated"):
        return
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    # A body cut short (the client went away) stays bounded by its Content-Length, so werkzeug reports it.
    environ["wsgi.input_terminated"] = len(body) == length


class LocalEndpointApp:
    """WSGI application routing Step Functions calls to ``service`` and everything else to moto.

    :param service: the Step Functions service (anything with ``dispatch(action, request)``).
    :param fallback: the WSGI application for every other request; moto's server application when omitted.
    :param lambda_api: the WSGI application for Lambda's function API (``/2015-03-31/functions``); those
        requests go to ``fallback`` when omitted.
    """

    def __init__(
        self, service: Dispatcher, fallback: WSGIApp | None = None, lambda_api: WSGIApp | None = None
    ) -> None:
        self.service = service
        self.fallback = fallback if fallback is not None else moto_app()
        self.lambda_api = lambda_api

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route one request."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(STEP_FUNCTIONS_TARGET_PREFIX):
            return self._step_functions(target[len(STEP_FUNCTIONS_TARGET_PREFIX) :], environ, start_response)
        if _signed_for_step_functions(environ):  # with another target: an unknown operation, never moto's
            return self._step_functions(None, environ, start_response, target)
        if self.lambda_api is not None and is_lambda_request(environ):
            return self.lambda_api(environ, start_response)
        _preread_body(environ)
        response = self.fallback(environ, start_response)
        if _holds_big_body(environ):
            release_memory()
        return response

    def _step_functions(
        self, action: str | None, environ: dict[str, Any], start_response: StartResponse, target: str = ""
    ) -> Iterable[bytes]:
        """Answer a Step Functions call.

        :param action: the operation, or ``None`` for a ``target`` without the service's prefix.
        :param environ: the WSGI environment of the request.
        :param start_response: the WSGI callable.
        :param target: the request's ``X-Amz-Target``, named when it is unknown.
        """
        request_id = str(uuid.uuid4())
        try:
            if action is None:
                raise ServiceError("UnknownOperationException", f"Unknown operation {target!r}")
            raw = read_body(environ)
            try:
                request = json.loads(raw) if raw.strip() else {}
            except RecursionError:
                raise ServiceError(
                    "SerializationException", "Malformed request body: nested too deeply"
                ) from None
            except ValueError as exc:
                raise ServiceError("SerializationException", f"Malformed request body: {exc}") from None
            if not isinstance(request, dict):
                raise ServiceError("SerializationException", "Request body must be a JSON object")
            status, body = 200, self.service.dispatch(action, request)
        except ServiceError as exc:
            status, body = exc.status, {"__type": exc.code, "message": exc.message, **exc.members}
        except Exception as exc:
            # Never hand a stack trace to the client: AWS answers an internal fault with a 500.
            log.exception("Step Functions action %s failed", action)
            status, body = 500, {"__type": "InternalFailure", "message": f"{type(exc).__name__}: {exc}"}
        payload = encode_json(body)
        start_response(
            status_line(status),
            [
                ("Content-Type", AMZ_JSON_CONTENT_TYPE),
                ("Content-Length", str(len(payload))),
                ("x-amzn-RequestId", request_id),
            ],
        )
        return [payload]


def _signed_for_step_functions(environ: dict[str, Any]) -> bool:
    """Whether a request's SigV4 credential scope names Step Functions' signing name, ``states``."""
    return "/states/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")


def _holds_big_body(environ: dict[str, Any]) -> bool:
    """Whether moto just held a large body in memory: a big request, or CompleteMultipartUpload.

    moto joins every part of a multipart upload in memory when it completes (a 1 GB upload_file costs the
    endpoint GBs for a moment); the allocator keeps those pages unless told to give them back.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length >= RELEASE_MEMORY_AFTER_BYTES:
        return True
    return environ.get("REQUEST_METHOD") == "POST" and "uploadId=" in environ.get("QUERY_STRING", "")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_memory() -> None:
    """Collect garbage and return the freed heap to the OS (glibc's ``malloc_trim``; elsewhere only gc)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def moto_app() -> WSGIApp:
    """The server-mode application (the one ``moto_server`` serves), built in this process.

    Its multipart uploads complete without joining the parts in memory
    (:func:`~airflow_distmap.local.moto_s3.stream_multipart_completions`).
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from airflow_distmap.local.moto_s3 import stream_multipart_completions

    stream_multipart_completions()
    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    return app


def _request_handler_class() -> type[Any]:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):  # type: ignore[misc]
        """moto's handler (keeps S3 metadata header spellings) with per-request lines at DEBUG level."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.debug("%s %s %s", self.command, self.path, code)

    return QuietRequestHandler


class EndpointServer:
    """A threaded werkzeug server for ``app`` on ``host:port`` (``port=0`` picks a free port).

    :param app: the WSGI application to serve.
    :param host: interface to bind; loopback by default.
    :param port: TCP port; 0 lets the OS choose a free one.
    """

    def __init__(self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (only after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("The server is not started")
        return int(self._server.server_address[1])

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Looked up per request so the application can be swapped once the services behind it are ready.
        return self.app(environ, start_response)

    def start(self) -> None:
        """Bind the socket and serve in a daemon thread; returns once requests are accepted."""
        from werkzeug.serving import make_server

        # Bind here rather than in werkzeug: on a busy port werkzeug prints and calls sys.exit(1), while
        # callers (the CLI, tests, the demo) want an OSError they can report.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.requested_port), family=family, backlog=128)
        try:
            self._server = make_server(
                self.host,
                self.requested_port,
                self._serve,
                threaded=True,
                request_handler=_request_handler_class(),
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug serves a duplicate of the descriptor
        # Request threads must not keep the process alive after stop().
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="local-endpoint-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("Local endpoint listening on http://%s:%s", self.host, self.port)

    def stop(self) -> None:
        """Stop accepting requests, close the socket and join the serving thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
