"""Task resources the local runtime implements: ``lambda:invoke`` and a bare Lambda function ARN."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_distmap.local.asl.io import OUTPUT_TOO_LARGE_CAUSE, PAYLOAD_LIMIT, http_date
from airflow_distmap.local.asl.paths import to_json
from airflow_distmap.local.errors import StatesError

if TYPE_CHECKING:
    from airflow_distmap.local.asl.protocols import InvocationResultLike, Services

LAMBDA_INVOKE_RE = re.compile(r"^arn:aws[a-z-]*:states:::lambda:invoke$")
LAMBDA_FUNCTION_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]+))?$"
)
_NOT_TRUNCATED = {"truncated": False}


class History(Protocol):
    """The engine's event recorder (see ``machine._History``)."""

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> int:
        """Record one event and return its id."""

    def replayed_result(self) -> tuple[str, str] | None:
        """The first attempt's next Lambda result ``(event type, output JSON)`` during a redrive's replay.

        ``None`` outside a replay, once it reached the state that failed, or when results cannot be paired.
        """


class TaskResource(Protocol):
    """A compiled Task ``Resource``."""

    async def invoke(self, effective: Any, services: Services, history: History | None) -> Any:
        """Run the task on its effective input and return the raw result, or raise ``StatesError``."""

    def timed_out(self, history: History | None) -> None:
        """Record that the task hit its TimeoutSeconds."""


def is_supported_resource(resource: str) -> bool:
    """Whether the local runtime implements a Task resource.

    :param resource: the Task's ``Resource``.
    """
    return bool(LAMBDA_INVOKE_RE.match(resource) or LAMBDA_FUNCTION_ARN_RE.match(resource))


def compile_task_resource(resource: str) -> TaskResource:
    """Compile a Task ``Resource``.

    :param resource: ``arn:aws:states:::lambda:invoke`` or a Lambda function ARN.
    :raises ValueError: for any other resource (not implemented by the local runtime).
    """
    if LAMBDA_INVOKE_RE.match(resource):
        return LambdaInvokeIntegration()
    match = LAMBDA_FUNCTION_ARN_RE.match(resource)
    if match:
        return LambdaFunctionResource(resource, match.group("region"))
    raise ValueError(f"The Task resource {resource} is not supported by the local runtime")


@dataclass(frozen=True)
class _ReplayedResult:
    """A successful Lambda result of a redriven execution's first attempt (not invoked again)."""

    payload: Any
    request_id: str
    function_error: str | None = None
    executed_version: str = "$LATEST"
    error_text: str | None = None


def _replayed(history: History | None) -> _ReplayedResult | None:
    """On redrive, AWS resumes at the state that failed: a Task that succeeded before it is not run again."""
    recorded = history.replayed_result() if history is not None else None
    if recorded is None:
        return None
    event_type, output = recorded
    value = json.loads(output)
    if event_type == "TaskSucceeded" and isinstance(value, dict):  # lambda:invoke: the Invoke response
        request_id = str((value.get("SdkResponseMetadata") or {}).get("RequestId", ""))
        return _ReplayedResult(value.get("Payload"), request_id, None, str(value.get("ExecutedVersion")))
    return _ReplayedResult(value, "")


async def _call(
    services: Services, function: str, payload: Any, history: History | None = None
) -> InvocationResultLike:
    """Invoke and map the invoker's exceptions to the States errors AWS reports."""
    replayed = _replayed(history)
    if replayed is not None:
        return replayed
    try:
        return await services.lambdas.invoke(function, payload)
    except StatesError:
        raise
    except Exception as exc:
        # Matched by name so the engine does not import the Lambda pool (another package, and a process pool).
        if type(exc).__name__ == "FunctionNotFound":
            name = getattr(exc, "name", function)
            raise StatesError(
                "Lambda.ResourceNotFoundException",
                f"Function not found: {name} (Service: AWSLambda; Status Code: 404; "
                f"Error Code: ResourceNotFoundException; Request ID: {uuid.uuid4()}; Proxy: null)",
            ) from None
        raise StatesError("Lambda.ServiceException", f"{type(exc).__name__}: {exc}") from None


def _check_result_size(result: InvocationResultLike, task_result: Any, envelope: int = 0) -> None:
    """Fail the Task when its result is over the payload quota, before ResultSelector can trim it.

    "States.DataLimitExceeded: ... output, post-Parameters input or connector output exceeds the payload
    quota" (spec). The invoker's ``size`` (the response as the function's runtime wrote it, never smaller than
    its compact UTF-8 JSON) spares measuring every result well below the quota.

    :param result: the invocation's result.
    :param task_result: what the Task state receives (the payload, or the Invoke response around it).
    :param envelope: at most how many bytes ``task_result`` adds around the payload.
    """
    upper_bound = getattr(result, "size", None)
    if isinstance(upper_bound, int) and upper_bound + envelope <= PAYLOAD_LIMIT:
        return
    if len(to_json(task_result).encode()) > PAYLOAD_LIMIT:
        raise StatesError("States.DataLimitExceeded", OUTPUT_TOO_LARGE_CAUSE)


#: At most how many bytes a ``lambda:invoke`` task result adds around its ``Payload`` (version, request id,
#: HTTP metadata: about 500).
_INVOKE_ENVELOPE_BYTES = 1024


def _invoke_response(result: InvocationResultLike) -> dict[str, Any]:
    """The ``lambda:invoke`` task result: the Invoke API response around the function's payload.

    The headers are those AWS's recorded results show (``X-Amzn-Trace-Id`` left out: nothing is traced here).
    """
    size = getattr(result, "size", None)
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(size if isinstance(size, int) else len(to_json(result.payload).encode())),
        "Content-Type": "application/json",
        "Date": http_date(),
        "X-Amz-Executed-Version": result.executed_version,
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": result.request_id,
    }
    return {
        "ExecutedVersion": result.executed_version,
        "Payload": result.payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": result.request_id},
        "StatusCode": 200,
    }


def _function_error(result: InvocationResultLike) -> StatesError:
    """How Step Functions surfaces a function error.

    The ``errorType`` is the error name and the whole Lambda error object, as JSON text, is the cause
    (``Lambda.Unknown`` when the function gave no ``errorType``): the text the function's runtime wrote, as
    it wrote it, when there is one.
    """
    payload = result.payload
    error = payload.get("errorType") if isinstance(payload, dict) else None
    cause = result.error_text if result.error_text is not None else to_json(payload)
    return StatesError(error if isinstance(error, str) and error else "Lambda.Unknown", cause)


class LambdaInvokeIntegration:
    """``arn:aws:states:::lambda:invoke``.

    Parameters carry ``FunctionName`` and ``Payload``; the result is the Invoke API response
    (``ExecutedVersion``, ``Payload``, ``SdkHttpMetadata``, ``SdkResponseMetadata``, ``StatusCode``).
    """

    async def invoke(self, effective: Any, services: Services, history: History | None) -> Any:
        """Invoke the function named by the effective Parameters."""
        if not isinstance(effective, dict) or not isinstance(effective.get("FunctionName"), str):
            raise StatesError(
                "States.Runtime", "The lambda:invoke integration needs Parameters with a FunctionName string"
            )
        function: str = effective["FunctionName"]
        qualifier = effective.get("Qualifier")
        if isinstance(qualifier, str) and qualifier:
            function = f"{function}:{qualifier}"
        # Without "Payload" Lambda receives an empty event, as the Invoke API does with no payload.
        payload = effective.get("Payload", {})
        if history is not None:
            history.record(
                "TaskScheduled",
                {
                    "resourceType": "lambda",
                    "resource": "invoke",
                    "region": _region_of(function),
                    "parameters": to_json(effective),
                },
            )
            history.record("TaskStarted", {"resourceType": "lambda", "resource": "invoke"})
        try:
            result = await _call(services, function, payload, history)
            if result.function_error:
                raise _function_error(result)
            output = _invoke_response(result)
            _check_result_size(result, output, _INVOKE_ENVELOPE_BYTES)
        except StatesError as error:
            if history is not None:
                history.record(
                    "TaskFailed",
                    {
                        "resourceType": "lambda",
                        "resource": "invoke",
                        "error": error.error,
                        "cause": error.cause,
                    },
                )
            raise
        if history is not None:
            history.record(
                "TaskSucceeded",
                {
                    "resourceType": "lambda",
                    "resource": "invoke",
                    "output": to_json(output),
                    "outputDetails": _NOT_TRUNCATED,
                },
            )
        return output

    def timed_out(self, history: History | None) -> None:
        """Record ``TaskTimedOut``."""
        if history is not None:
            history.record(
                "TaskTimedOut",
                {"resourceType": "lambda", "resource": "invoke", "error": "States.Timeout", "cause": ""},
            )


class LambdaFunctionResource:
    """A bare Lambda function ARN as the Task resource.

    The effective input is the event and the function's return value is the task result.

    :param arn: the function ARN.
    :param region: its region.
    """

    def __init__(self, arn: str, region: str) -> None:
        self.arn = arn
        self.region = region

    async def invoke(self, effective: Any, services: Services, history: History | None) -> Any:
        """Invoke the function with the effective input."""
        if history is not None:
            history.record(
                "LambdaFunctionScheduled",
                {"resource": self.arn, "input": to_json(effective), "inputDetails": _NOT_TRUNCATED},
            )
            history.record("LambdaFunctionStarted")
        try:
            result = await _call(services, self.arn, effective, history)
            if result.function_error:
                raise _function_error(result)
            _check_result_size(result, result.payload)
        except StatesError as error:
            if history is not None:
                history.record("LambdaFunctionFailed", {"error": error.error, "cause": error.cause})
            raise
        if history is not None:
            history.record(
                "LambdaFunctionSucceeded",
                {"output": to_json(result.payload), "outputDetails": _NOT_TRUNCATED},
            )
        return result.payload

    def timed_out(self, history: History | None) -> None:
        """Record ``LambdaFunctionTimedOut``."""
        if history is not None:
            history.record("LambdaFunctionTimedOut", {"error": "States.Timeout", "cause": ""})


def _region_of(function: str) -> str:
    parts = function.split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" else "us-east-1"
