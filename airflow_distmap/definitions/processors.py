"""Typed ItemProcessor builders: what each child execution of a Distributed Map runs."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_distmap.definitions._checks import check_choice, check_int
from airflow_distmap.definitions.partitions import integration_api
from airflow_distmap.definitions.states import iter_states

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
EXECUTION_TYPES = ("STANDARD", "EXPRESS")

LAMBDA_RETRY: list[dict[str, Any]] = [
    {
        "ErrorEquals": [
            "Lambda.ClientExecutionTimeoutException",
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2,
        "JitterStrategy": "FULL",
    }
]
"""The retrier the spec recommends (§4): transient Lambda service errors and throttling, with full jitter.

It is the Best-practices retrier (2 s, 6 attempts, backoff 2) plus ``Lambda.TooManyRequestsException``
as the batching tutorials do, plus ``JitterStrategy: FULL`` so thousands of throttled children do not retry
in lockstep. Errors raised by the handler itself are not retried: they are the row's own failure."""

# The FunctionName formats of the Lambda Invoke API, each with an optional version or alias.
# As botocore's model of Lambda's Invoke writes them (GovCloud, ISO and European Sovereign Cloud regions too).
_REGION = r"(eusc-)?[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d"
_NAME_AND_QUALIFIER = r"[a-zA-Z0-9_.-]{1,64}(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9_-]+))?"
#: Lambda's name formats: a name (optionally qualified) or a partial ARN (``123456789012:function:name``)...
_FUNCTION = re.compile(rf"^({_REGION}:)?(\d{{12}}:)?(function:)?{_NAME_AND_QUALIFIER}$")
#: ...or a full ARN. Text that starts as an ARN must be a whole one (a lenient pattern would read
#: ``arn:aws:lambda:us-east-1:12:function`` as function ``12``, version ``function``).
_FULL_FUNCTION_ARN = re.compile(
    rf"^arn:aws[a-zA-Z-]*:lambda:{_REGION}:\d{{12}}:function:{_NAME_AND_QUALIFIER}$"
)


# A Task's bare Lambda ARN Resource (the legacy integration), optionally qualified.
_LAMBDA_RESOURCE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9_-]{1,64}(:[$\w-]+)?$"
)


def invoked_functions(definition: dict[str, Any]) -> dict[str, list[str]]:
    """The Lambda functions that Task states name literally, each with the names of the states invoking it.

    Covers ``lambda:invoke`` (and ``.waitForTaskToken``), in any partition, with a literal ``FunctionName`` in
    ``Parameters`` or ``Arguments``, and bare Lambda ARNs as ``Resource``. Left out: a name chosen at run time
    (``FunctionName.$``, a JSONata expression), and Task states with ``Credentials`` (they invoke as a role of
    another account, where a lookup with Airflow's own credentials says nothing).

    :param definition: A state machine definition.
    """
    found: dict[str, list[str]] = {}
    for name, state, _language in iter_states(definition):
        resource = state.get("Resource")
        if state.get("Type") != "Task" or not isinstance(resource, str) or "Credentials" in state:
            continue
        if integration_api(resource) in ("lambda:invoke", "lambda:invoke.waitForTaskToken"):
            arguments = state.get("Parameters", state.get("Arguments"))
            function = arguments.get("FunctionName") if isinstance(arguments, dict) else None
            if not isinstance(function, str) or function.lstrip().startswith("{%"):
                continue
        elif _LAMBDA_RESOURCE.match(resource):
            function = resource
        else:
            continue
        found.setdefault(function, []).append(name)
    return found


def is_function_reference(text: object) -> bool:
    """Whether ``text`` is a Lambda function name, partial ARN or ARN (as Lambda's ``FunctionName`` takes).

    :param text: The value to check.
    """
    if not isinstance(text, str):
        return False
    pattern = _FULL_FUNCTION_ARN if text.startswith("arn:") else _FUNCTION
    return pattern.match(text) is not None


def check_function_name(function_name: str) -> str:
    """Return ``function_name`` if it is a Lambda function name or ARN, else raise ``ValueError``.

    :param function_name: The Lambda function name or ARN.
    """
    if not is_function_reference(function_name):
        raise ValueError(
            f"function_name={function_name!r} is not a Lambda function name or ARN. To fix this, pass a name "
            "such as 'process-row' (1 to 64 letters, digits, '-' or '_') or an ARN such as "
            "'arn:aws:lambda:us-east-1:123456789012:function:process-row'."
        )
    return function_name


def check_timeout(seconds: Any, execution_type: str, what: str) -> int:
    """Return ``seconds`` if a child of ``execution_type`` may run that long, else raise ``ValueError``.

    :param seconds: The Task's ``TimeoutSeconds``.
    :param execution_type: ``STANDARD`` (up to a year) or ``EXPRESS`` (up to 5 minutes).
    :param what: The argument's name, for the error.
    """
    limit = 300 if execution_type == "EXPRESS" else 31_536_000
    return check_int(seconds, what, 1, limit, hint=" (EXPRESS children stop at 300 s)")


#: The Invoke API's request fields, which the lambda:invoke integration takes as its parameters.
LAMBDA_INVOKE_PARAMETERS = frozenset(
    {"FunctionName", "Payload", "ClientContext", "InvocationType", "LogType", "Qualifier"}
)
#: Those a :class:`LambdaItemProcessor` takes in ``extra_parameters`` (its own arguments set the others).
_EXTRA_INVOKE_PARAMETERS = LAMBDA_INVOKE_PARAMETERS - {"FunctionName", "Payload"}


@dataclass(frozen=True)
class LambdaItemProcessor:
    """Each child invokes one Lambda function with its item (or batch) and returns the function's result.

    :param function_name: Lambda function name, partial ARN or ARN (``:version`` / ``:alias`` allowed).
    :param execution_type: ``STANDARD`` children (exactly once, redrivable, up to a year) or ``EXPRESS``
        (cheaper, at least once, at most 5 minutes).
    :param payload: Payload template sent to the function (``key.$`` paths on the item); default: the item.
    :param timeout_seconds: Fail the Task (``States.Timeout``) after this many seconds.
    :param retry: Task retriers; default :data:`LAMBDA_RETRY`. Pass ``[]`` for none.
    :param state_name: Name of the Task state inside the processor.
    :param extra_parameters: More ``lambda:invoke`` Parameters (``InvocationType``, ``Qualifier``,
        ``ClientContext``, ``LogType``, or their ``.$`` paths), merged after ``FunctionName``.
    """

    #: Fields an operator renders as Jinja templates (into a copy: the processor is frozen).
    template_fields: ClassVar[tuple[str, ...]] = ("function_name", "payload", "extra_parameters")

    function_name: str
    execution_type: str = "STANDARD"
    payload: dict[str, Any] | None = None
    timeout_seconds: int | None = None
    retry: list[dict[str, Any]] | None = None
    state_name: str = "InvokeFunction"
    extra_parameters: dict[str, Any] = field(default_factory=dict)

    def to_asl(self) -> dict[str, Any]:
        """Render the ``ItemProcessor`` field."""
        function = check_function_name(self.function_name)
        execution_type = check_choice(self.execution_type, "execution_type", EXECUTION_TYPES)
        unknown = sorted({key.removesuffix(".$") for key in self.extra_parameters} - _EXTRA_INVOKE_PARAMETERS)
        if unknown:
            raise ValueError(
                f"extra_parameters holds {', '.join(map(repr, unknown))}, which lambda:invoke does not take. "
                f"To fix this, keep to {', '.join(sorted(_EXTRA_INVOKE_PARAMETERS))} (function_name and "
                "payload set FunctionName and Payload)."
            )
        parameters: dict[str, Any] = {"FunctionName": function, **self.extra_parameters}
        if self.payload is None:
            parameters["Payload.$"] = "$"
        else:
            parameters["Payload"] = copy.deepcopy(self.payload)
        task: dict[str, Any] = {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": parameters,
            "OutputPath": "$.Payload",
            "Retry": copy.deepcopy(LAMBDA_RETRY if self.retry is None else self.retry),
            "End": True,
        }
        if self.timeout_seconds is not None:
            task["TimeoutSeconds"] = check_timeout(self.timeout_seconds, execution_type, "timeout_seconds")
        if not task["Retry"]:
            del task["Retry"]
        return {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": self.state_name,
            "States": {self.state_name: task},
        }


def distributed_processor(processor: dict[str, Any], execution_type: str | None = None) -> dict[str, Any]:
    """Turn a user's ASL ``ItemProcessor`` (``StartAt`` + ``States``) into a DISTRIBUTED one.

    :param processor: The ItemProcessor; its ``ProcessorConfig`` is completed, never silently changed.
    :param execution_type: ``STANDARD``/``EXPRESS`` when the processor does not say.
    """
    if not isinstance(processor, dict) or "StartAt" not in processor or "States" not in processor:
        raise ValueError(
            "item_processor must be an ASL ItemProcessor with 'StartAt' and 'States'. To fix this, pass "
            "{'StartAt': 'Work', 'States': {'Work': {...}}} or use LambdaItemProcessor(function_name=...)."
        )
    result = copy.deepcopy(processor)
    config = result.setdefault("ProcessorConfig", {})
    if execution_type is not None and config.get("ExecutionType", execution_type) != execution_type:
        raise ValueError(
            f"item_processor's ProcessorConfig.ExecutionType is {config['ExecutionType']!r} but "
            f"execution_type={execution_type!r}. To fix this, set the execution type in one place."
        )
    mode = config.setdefault("Mode", "DISTRIBUTED")
    if mode != "DISTRIBUTED":
        raise ValueError(
            f"item_processor has ProcessorConfig.Mode={mode!r}. To fix this, set it to 'DISTRIBUTED' "
            "(or drop it): this operator runs Distributed Maps."
        )
    config.setdefault(
        "ExecutionType", check_choice(execution_type or "STANDARD", "execution_type", EXECUTION_TYPES)
    )
    check_choice(config["ExecutionType"], "ProcessorConfig.ExecutionType", EXECUTION_TYPES)
    return result
