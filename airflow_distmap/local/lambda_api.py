"""Lambda's API for the registered functions: GetFunction, GetFunctionConfiguration, ListFunctions, Invoke.

The functions the local endpoint knows are the ones a state machine can invoke (``lambda_functions/`` and
``--function``), so these answers come from the same registry and worker pool, never from moto's Lambda
(which would know none of them, and would need Docker to run one). That lets a pre-flight check
(``lambda:GetFunction``) and ``aws lambda invoke`` work against the endpoint as against AWS. The other
operations on ``/2015-03-31/functions`` (creating, changing, aliases, policies...) are refused with a message
saying how functions are registered. A name resolves as the pool resolves it: any qualifier, account or
region in an ARN answers for the registered function of that name.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import math
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import botocore.session

from airflow_distmap.local.arns import partition_of
from airflow_distmap.local.errors import ServiceError
from airflow_distmap.local.lambdas.pool import PoolClosed
from airflow_distmap.local.lambdas.registry import FunctionNotFound, FunctionRegistry, FunctionSpec
from airflow_distmap.local.wsgi import StartResponse, read_body, status_line

if TYPE_CHECKING:
    from airflow_distmap.local.lambdas.pool import LambdaPool

log = logging.getLogger(__name__)

#: Asynchronous (``Event``) invocations run at once; more wait in a queue, as Lambda's do.
EVENT_INVOKERS = 4
#: ListFunctions' largest ``MaxItems``.
MAX_LIST_ITEMS = 10000
#: Lambda's limit on a synchronous invocation's request payload.
MAX_REQUEST_BYTES = 6291456
#: Lambda's limit on an asynchronous (``Event``) invocation's payload: "1 MB" (API reference, Invoke).
MAX_EVENT_REQUEST_BYTES = 1048576
#: When the endpoint's functions were "deployed", as Lambda's ``LastModified`` reports it.
_LAST_MODIFIED = "2024-01-01T00:00:00.000+0000"
#: The execution role reported for local functions (the endpoint checks no permissions).
_ROLE = "arn:{partition}:iam::{account}:role/local-lambda"
#: The service a SigV4 signature is for, in an ``Authorization`` header or a presigned URL's query.
_SIGNING_SERVICE = re.compile(r"Credential=[^/&]+/[^/&]+/[^/&]+/([^/&]+)/")
_ROUTE = re.compile(r"^/2015-03-31/functions(?:/(?P<name>[^/]+)?(?P<rest>/.*)?)?$")

#: GetFunction's ``Code``: a local function has no deployment package to download.
_NO_CODE = {"RepositoryType": "S3", "Location": ""}
_REGISTER_HINT = (
    "The local endpoint's functions are Python handlers registered with `airflow-distmap local --function "
    "NAME=module:callable` or found in lambda_functions/<name>/handler.py; it serves only GetFunction, "
    "GetFunctionConfiguration, ListFunctions and Invoke."
)


def is_lambda_request(environ: dict[str, Any]) -> bool:
    """Whether a request is a call of Lambda's function API (and not, say, S3 in a bucket of that name).

    :param environ: the WSGI environment.
    """
    if _ROUTE.match(environ.get("PATH_INFO", "")) is None:
        return False
    query = urllib.parse.unquote(environ.get("QUERY_STRING", ""))
    # A header, or a presigned URL's query (SigV4 X-Amz-Signature; SigV2 Signature names no service).
    signature = environ.get("HTTP_AUTHORIZATION") or (query if "Signature=" in query else "")
    if not signature:
        return True  # unsigned: the path decides
    signed_for = _SIGNING_SERVICE.search(signature)
    return signed_for is not None and signed_for.group(1) == "lambda"


class LambdaApi:
    """WSGI application answering Lambda's function API from the endpoint's registry and worker pool.

    :param registry: the registered functions.
    :param pool: the worker pool that runs them.
    """

    def __init__(self, registry: FunctionRegistry, pool: LambdaPool) -> None:
        self.registry = registry
        self.pool = pool
        self._queued = ThreadPoolExecutor(max_workers=EVENT_INVOKERS, thread_name_prefix="lambda-event")

    def close(self) -> None:
        """Drop asynchronous invocations still queued (the endpoint is stopping)."""
        self._queued.shutdown(wait=False, cancel_futures=True)

    def _invoke_queued(self, function: str, payload: Any) -> None:
        try:
            result = asyncio.run(self.pool.invoke(function, payload))
        except PoolClosed:
            return
        except Exception:
            log.exception("Asynchronous invocation of %s failed", function)
            return
        if result.function_error is not None:
            log.warning("Asynchronous invocation of %s failed: %s", function, result.payload)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one Lambda API request."""
        headers: list[tuple[str, str]] = []
        try:
            status, body, headers = self._route(environ)
        except ServiceError as error:
            status, body, headers = _error(error.code, error.message, error.status)
        except Exception as error:  # never a stack trace to the client: Lambda answers a fault with a 500
            log.exception("Lambda API request %s failed", environ.get("PATH_INFO"))
            status, body, headers = _error("ServiceException", f"{type(error).__name__}: {error}", 500)
        if not any(name == "x-amzn-RequestId" for name, _ in headers):
            headers = [("x-amzn-RequestId", str(uuid.uuid4())), *headers]
        start_response(
            status_line(status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    def _route(self, environ: dict[str, Any]) -> tuple[int, bytes, list[tuple[str, str]]]:
        match = _ROUTE.match(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        name = urllib.parse.unquote(match.group("name") or "") if match else ""
        operation = (method, bool(name), (match.group("rest") or "").rstrip("/")) if match else None
        if operation == ("GET", False, ""):  # ListFunctions
            return 200, json.dumps(self._list(environ)).encode(), []
        if operation == ("GET", True, ""):  # GetFunction
            answer = {"Configuration": self._configuration(self._resolve(name)), "Code": _NO_CODE}
            return 200, json.dumps(answer).encode(), []
        if operation == ("GET", True, "/configuration"):  # GetFunctionConfiguration
            return 200, json.dumps(self._configuration(self._resolve(name))).encode(), []
        if operation == ("POST", True, "/invocations"):  # Invoke
            return self._invoke(name, environ)
        raise ServiceError(
            "InvalidParameterValueException",
            f"{method} {environ.get('PATH_INFO', '')} is not supported locally. {_REGISTER_HINT}",
        )

    def _list(self, environ: dict[str, Any]) -> dict[str, Any]:
        """ListFunctions: a page of ``MaxItems`` (1 to 10,000; default 50) after ``Marker``."""
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        raw = query.get("MaxItems", ["50"])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST_ITEMS:
            raise ServiceError(
                "ValidationException",
                f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy constraint: "
                f"Member must have value less than or equal to {MAX_LIST_ITEMS}",
            )
        names = self.registry.names()
        marker = query.get("Marker", [""])[0]
        start = names.index(marker) + 1 if marker in names else 0
        page = names[start : start + int(raw)]
        answer: dict[str, Any] = {"Functions": [self._configuration(self.registry.resolve(n)) for n in page]}
        if start + len(page) < len(names):
            answer["NextMarker"] = page[-1]
        return answer

    def _resolve(self, function: str) -> FunctionSpec:
        pattern = _function_name_pattern()
        if not 1 <= len(function) <= 256 or not re.fullmatch(pattern, function):
            raise ServiceError(
                "ValidationException",
                f"1 validation error detected: Value '{function}' at 'functionName' failed to satisfy "
                f"constraint: Member must satisfy regular expression pattern: {pattern}",
                400,
            )
        try:
            return self.registry.resolve(function)
        except FunctionNotFound:
            message = f"Function not found: {self.pool.function_arn(function)}"
            raise ServiceError("ResourceNotFoundException", message, 404) from None

    def _configuration(self, spec: FunctionSpec) -> dict[str, Any]:
        """``FunctionConfiguration`` with Lambda's field names, for a local function."""
        module, attr = spec.module_and_attr()
        return {
            "FunctionName": spec.name,
            "FunctionArn": self.pool.function_arn(spec.name),
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Role": _ROLE.format(partition=partition_of(self.pool.region), account=self.pool.account_id),
            "Handler": f"{module}.{attr}",
            "CodeSize": 0,
            "Description": f"Local function {spec.handler}",
            # Lambda's Timeout is whole seconds; a local timeout may be fractional.
            "Timeout": max(1, math.ceil(spec.timeout)),
            "MemorySize": spec.memory_mb or 128,
            "LastModified": _LAST_MODIFIED,
            "CodeSha256": "",
            "Version": "$LATEST",
            "Environment": {"Variables": dict(spec.environment)},
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
        }

    def _invoke(self, function: str, environ: dict[str, Any]) -> tuple[int, bytes, list[tuple[str, str]]]:
        self._resolve(function)
        raw = read_body(environ)
        if len(raw) > MAX_REQUEST_BYTES:
            raise ServiceError(
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation",
                413,
            )
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            raise ServiceError(
                "InvalidRequestContentException", f"Could not parse request body into json: {error}"
            ) from None
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if invocation_type == "DryRun":
            return 204, b"", []
        if invocation_type == "Event":
            if len(raw) > MAX_EVENT_REQUEST_BYTES:
                # UNCONFIRMED: the message's wording for the asynchronous limit.
                raise ServiceError(
                    "RequestTooLargeException",
                    f"Request must be smaller than {MAX_EVENT_REQUEST_BYTES} bytes for an asynchronous "
                    "(Event) invocation",
                    413,
                )
            # Lambda queues an asynchronous invocation; its result goes nowhere without a destination.
            self._queued.submit(self._invoke_queued, function, payload)
            return 202, b"", []
        if invocation_type != "RequestResponse":
            raise ServiceError(
                "InvalidParameterValueException",
                f"Invalid InvocationType {invocation_type!r}: use RequestResponse, Event or DryRun.",
            )
        started = time.monotonic()
        result = asyncio.run(self.pool.invoke(function, payload))
        # An invocation's request id is the one its context object and error objects carry (Lambda's
        # aws_request_id: "the ID returned to the client that called the invoke method").
        headers = [
            ("x-amzn-RequestId", result.request_id),
            ("X-Amz-Executed-Version", result.executed_version),
        ]
        if result.function_error is not None:
            headers.append(("X-Amz-Function-Error", result.function_error))
        if environ.get("HTTP_X_AMZ_LOG_TYPE") == "Tail":
            # The runtime's own lines; the handler's output goes to the endpoint's log, not into LogResult.
            milliseconds = (time.monotonic() - started) * 1000
            request = result.request_id
            tail = (
                f"START RequestId: {request} Version: {result.executed_version}\n"
                f"END RequestId: {request}\n"
                f"REPORT RequestId: {request}\tDuration: {milliseconds:.2f} ms\n"
            )
            headers.append(("X-Amz-Log-Result", base64.b64encode(tail.encode()).decode()))
        return 200, json.dumps(result.payload).encode(), headers


@functools.cache
def _function_name_pattern() -> str:
    """Lambda's pattern for a function name, partial ARN or ARN (from the API model botocore ships)."""
    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.operation_model("Invoke").input_shape
    assert shape is not None
    return str(shape.members["FunctionName"].metadata["pattern"])


def _error(code: str, message: str, status: int) -> tuple[int, bytes, list[tuple[str, str]]]:
    kind = "User" if status < 500 else "Service"
    return status, json.dumps({"Type": kind, "message": message}).encode(), [("x-amzn-ErrorType", code)]
