"""``StepFunctionsService``: the Step Functions API of the local endpoint, with AWS's shapes and errors.

``dispatch(action, request)`` is called from the HTTP server's threads; executions run on an asyncio loop in a
background thread the service owns. Request/response field names and error codes follow the AWS API reference
(``docs/distributed-map-spec.md`` sections 5 and 7).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from airflow_distmap.json_codec import dumps
from airflow_distmap.local import arns
from airflow_distmap.local.asl.io import OUTPUT_TOO_LARGE_CAUSE, PAYLOAD_LIMIT
from airflow_distmap.local.errors import ServiceError, StatesError
from airflow_distmap.local.runtime import engine
from airflow_distmap.local.runtime.batcher import utf8_size
from airflow_distmap.local.runtime.history import detail_key
from airflow_distmap.local.runtime.map_run import STARTS_ANEW, SUCCEEDED, MapRun, iso_ms
from airflow_distmap.local.runtime.request_model import check_request, is_operation
from airflow_distmap.local.runtime.services import RuntimeServices
from airflow_distmap.local.runtime.store import (
    ExecutionRecord,
    StateMachineRecord,
    Store,
    new_revision_id,
    now,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

#: StartExecution's input limit in UTF-8 bytes (``check_request`` checks the API model's other limits).
MAX_INPUT_LENGTH: Final = 262_144
_INVALID_NAME = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ufffe\uffff]|[\ud800-\udfff]")
#: ``RedriveExecution`` answers a repeated client token with its first answer for this long (spec: 15
#: minutes), for the last :data:`REDRIVE_TOKENS_KEPT` tokens of an execution.
REDRIVE_TOKEN_SECONDS: Final = 15 * 60
REDRIVE_TOKENS_KEPT: Final = 10
_CLIENT_TOKEN = re.compile(r"^[!-~]{1,64}$")
_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:states:([a-z0-9-]+):(\d{12}):(stateMachine|execution|express|mapRun):(.+)$"
)
#: Tags "may only contain Unicode letters, digits, white space, or these symbols: _ . : / = + - @".
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")
#: Step Functions' quota of tags per resource.
MAX_TAGS: Final = 50
_LOG_GROUP_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:logs:[a-z0-9-]+:\d{12}:log-group:[\w#/.-]+:\*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def _invalid(field: str, value: Any, constraint: str) -> ServiceError:
    """AWS's model-constraint error: ``ValidationException``, ``1 validation error detected: ...``."""
    shown = "" if value is None else f" '{value}'"
    return ServiceError(
        "ValidationException",
        f"1 validation error detected: Value{shown} at '{field}' failed to satisfy constraint: {constraint}",
    )


def _check_name(name: str) -> str:
    """A state machine or execution name (the API model checked its type and length)."""
    if _INVALID_NAME.search(name):
        raise ServiceError("InvalidName", f"Invalid Name: '{name}'")
    return name


def _strict_json(text: str) -> Any:
    """``json.loads`` without the ``NaN``/``Infinity`` literals JSON lacks (AWS's parser refuses them)."""

    def refuse(literal: str) -> Any:
        raise ValueError(f"Unrecognized token '{literal}': was expecting a JSON value")

    try:
        return json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise ValueError("the JSON nests too deeply") from None


def _parse_arn(arn: Any, kind: str) -> str:
    """Return the resource part of a ``states`` ARN of ``kind``, or raise ``InvalidArn``."""
    match = _ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        reason = arn if str(arn).startswith("arn:") else f"Invalid ARN prefix: {arn}"  # AWS's recorded text
        raise ServiceError("InvalidArn", f"Invalid Arn: '{reason}'")
    if match.group(3) != kind:
        raise ServiceError(
            "InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {match.group(3)}'"
        )
    return match.group(4)


_Item = TypeVar("_Item")


def _parse_machine_arn(arn: Any) -> str:
    """The resource part of a state machine's ARN; a Distributed Map's (``<machine>/<label>``) is refused."""
    resource = _parse_arn(arn, "stateMachine")
    if "/" in resource and ":" not in resource:
        raise ServiceError(
            "ValidationException", f"Invalid Arn: a Map Run's state machine cannot be used here: '{arn}'"
        )
    return resource


def _page(
    items: Sequence[_Item], request: dict[str, Any], identity: Callable[[_Item], Any], default: int = 100
) -> dict[str, Any]:
    """Slice ``items`` by ``maxResults``/``nextToken``; return ``{"items", "nextToken"?}``.

    A token names the last item given (by ``identity``) and the request it belongs to (every member but
    ``nextToken`` and ``maxResults``): a page goes on after that item even when newer ones were listed first
    since, and a token of another request is an ``InvalidToken``. The model checked ``maxResults`` (0: the
    default).
    """
    size = request.get("maxResults") or default
    asked = _request_digest(request)
    start = 0
    token = request.get("nextToken")
    if token:
        try:
            state = json.loads(base64.b64decode(token, validate=True))
            if state["request"] != asked:
                raise ValueError("the token belongs to another request")
            offset = int(state["offset"])
            if 0 < offset <= len(items) and identity(items[offset - 1]) == state["after"]:
                start = offset  # nothing moved since the last page
            else:
                start = next(
                    (n + 1 for n, item in enumerate(items) if identity(item) == state["after"]), offset
                )
            if start < 0:
                raise ValueError("negative offset")
        except (ValueError, KeyError, TypeError):
            raise ServiceError("InvalidToken", f"Invalid Token: '{token}'") from None
    result: dict[str, Any] = {"items": list(items[start : start + size])}
    if start + size < len(items):
        state = {"request": asked, "after": identity(items[start + size - 1]), "offset": start + size}
        result["nextToken"] = base64.b64encode(json.dumps(state).encode()).decode()
    return result


def _request_digest(request: dict[str, Any]) -> str:
    asked = {key: value for key, value in request.items() if key not in ("nextToken", "maxResults")}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tags(value: Any) -> dict[str, str]:
    """A request's ``[{"key", "value"}]`` tag list as a dict (the API model checked types and lengths)."""
    tags: dict[str, str] = {}
    for number, tag in enumerate(value or [], 1):
        key, text = tag.get("key"), tag.get("value", "")
        if key is None:  # optional in the model, yet a tag is named by its key (AWS's wording is UNCONFIRMED)
            raise _invalid(f"tags.{number}.member.key", None, "Member must not be null")
        if not _TAG_TEXT.match(key) or not _TAG_TEXT.match(text):
            # AWS's wording for this refusal is UNCONFIRMED; the rule is the API reference's.
            raise ServiceError(
                "ValidationException",
                f"Invalid tag {key!r}: tags may only contain Unicode letters, digits, white space, or these "
                "symbols: _ . : / = + - @",
            )
        tags[key] = text
    return tags


def _too_many_tags(arn: str, count: int) -> ServiceError:
    return ServiceError(
        "TooManyTags",
        f"The resource would have {count} tags; at most {MAX_TAGS} are allowed",
        members={"resourceName": arn},
    )


def _without_execution_data(event: dict[str, Any]) -> dict[str, Any]:
    """A history event without its details' ``input`` and ``output`` (its other details stay)."""
    return {
        key: {k: v for k, v in value.items() if k not in ("input", "output")}
        if key.endswith("EventDetails") and isinstance(value, dict)
        else value
        for key, value in event.items()
    }


def _settled(run: asyncio.Future[Any]) -> None:
    if not run.cancelled() and run.exception() is not None:
        log.debug("An execution's run ended with %r", run.exception())


def _listing_time(running: bool, start: float | None, redrive: float | None, stop: float | None) -> float:
    """The time ListExecutions sorts an execution (or a Map Run child) by, most recent first.

    "Running executions are sorted by their startDate or redriveDate, and other executions are sorted by their
    stopDate" (the API reference). A child not started yet sorts last.

    :param running: whether the execution runs (or waits to be redriven).
    :param start: its start date.
    :param redrive: its last redrive date.
    :param stop: its stop date.
    """
    if running or stop is None:
        return float(redrive or start or 0.0)
    return float(stop)


def _execution_timeout(definition_text: str) -> float | None:
    """The definition's top-level ``TimeoutSeconds`` (``None`` when absent)."""
    try:
        value = json.loads(definition_text).get("TimeoutSeconds")
    except (ValueError, AttributeError):
        return None
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def _logging_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """A ``loggingConfiguration`` as stored and described, defaults (``OFF``, no execution data) filled in.

    Requests that differ only by a default ask for the same settings, so CreateStateMachine's idempotency
    check sees them as equal. That AWS describes the defaults it filled in is UNCONFIRMED (the API reference
    gives both defaults); it is what DescribeStateMachine shows for a machine created without the field.
    """
    config = config or {}
    settings: dict[str, Any] = {
        "level": config.get("level", "OFF"),
        "includeExecutionData": bool(config.get("includeExecutionData", False)),
    }
    if config.get("destinations"):
        settings["destinations"] = config["destinations"]
    return settings


def _tracing_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """A ``tracingConfiguration`` as stored and described (``enabled`` defaults to false)."""
    return {"enabled": bool((config or {}).get("enabled", False))}


def _check_settings(request: dict[str, Any]) -> None:
    """Check the settings of Create/UpdateStateMachine besides definition and role."""
    encryption = request.get("encryptionConfiguration") or {}
    if encryption.get("type") == "CUSTOMER_MANAGED_KMS_KEY":
        # Refused rather than ignored: the endpoint has no KMS keys to encrypt with or to check access to.
        raise ServiceError(
            "ValidationException",
            "encryptionConfiguration: customer managed KMS keys are not supported by the local endpoint. To "
            "fix this, leave encryptionConfiguration out (or use type AWS_OWNED_KEY) when deploying locally.",
        )
    if request.get("versionDescription") is not None and not request.get("publish"):
        raise ServiceError("ValidationException", "Version description can only be set when publish is true")
    if request.get("publish"):
        # Refused rather than ignored: AWS would answer with a stateMachineVersionArn to start executions on.
        raise ServiceError(
            "ValidationException",
            "publish: state machine versions are not supported by the local endpoint. To fix this, deploy "
            "without publish; executions run the state machine's latest revision.",
        )
    config = request.get("loggingConfiguration")
    if not config:
        return
    level = config.get("level", "OFF")
    destinations = config.get("destinations") or []
    # "Limited to size 1. Required, if your log level is not set to OFF."
    if len(destinations) > 1 or (level != "OFF" and not destinations):
        raise ServiceError(
            "InvalidLoggingConfiguration",
            "Invalid Logging Configuration: Must specify exactly one Log Destination.",
        )
    for destination in destinations:
        group = (destination.get("cloudWatchLogsLogGroup") or {}).get("logGroupArn")
        if not isinstance(group, str) or not _LOG_GROUP_ARN.match(group):
            # AWS's recorded answer for a missing log group (whether one exists is not checked here).
            raise ServiceError(
                "InvalidLoggingConfiguration", "Invalid Logging Configuration: Log Destination not found."
            )


class StepFunctionsService:
    """The local Step Functions service.

    :param s3_client_factory: creates S3 clients pointed at the endpoint (ItemReader, ResultWriter).
    :param lambdas: the Lambda invoker (``LambdaInvoker``).
    :param region: region in ARNs.
    :param account_id: account in ARNs.
    """

    def __init__(
        self,
        *,
        s3_client_factory: Callable[[], S3Client],
        lambdas: Any,
        region: str = arns.DEFAULT_REGION,
        account_id: str = arns.DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.store = Store()
        self.services = RuntimeServices(self.store, s3_client_factory, lambdas, region, account_id)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="distmap-sfn-loop", daemon=True)
        self._thread.start()
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def dispatch(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one API call (``action`` = ``X-Amz-Target`` suffix); raise ``ServiceError`` on errors."""
        handler = getattr(self, "_" + action, None) if action[:1].isupper() else None
        if handler is None:
            if is_operation(action):
                raise ServiceError(
                    "UnknownOperationException",
                    f"The Step Functions operation {action} is not supported by the local endpoint. To fix "
                    "this, run this call against AWS; the local endpoint answers the state machine, "
                    "execution and Map Run operations the provider uses (see the README).",
                )
            raise ServiceError("UnknownOperationException", f"Unknown operation {action}")
        request = request if isinstance(request, dict) else {}
        check_request(action, request)
        with self.store.lock:
            result: dict[str, Any] = handler(request)
            return result

    def close(self) -> None:
        """Stop running executions and the event-loop thread."""
        if self._closed:
            return
        self._closed = True

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(timeout=30)
        except Exception:
            log.warning("Executions did not stop cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        for map_run in list(self.store.map_runs.values()):
            map_run.close()

    def _state_machine(self, arn: Any) -> StateMachineRecord:
        _parse_machine_arn(arn)
        record = self._live_state_machine(str(arn))
        if record is None:
            raise ServiceError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return record

    def _live_state_machine(self, arn: str) -> StateMachineRecord | None:
        """The state machine at ``arn``, unless it is gone (a deleted one goes once its executions closed)."""
        record = self.store.state_machines.get(arn)
        if record is not None and record.deleting and not self._runs_executions(record):
            del self.store.state_machines[arn]
            return None
        return record

    def _runs_executions(self, machine: StateMachineRecord) -> bool:
        executions = self.store.executions.values()
        return any(e.state_machine is machine and e.status == "RUNNING" for e in executions)

    @staticmethod
    def _refuse_if_deleting(machine: StateMachineRecord) -> None:
        if machine.deleting:
            raise ServiceError("StateMachineDeleting", f"State machine is being deleted: '{machine.arn}'")

    def _execution(self, arn: Any) -> ExecutionRecord:
        _parse_arn(arn, "execution")
        record = self.store.executions.get(arn)
        if record is None:
            raise ServiceError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return record

    def _child(self, arn: Any) -> tuple[MapRun, Any] | None:
        """Find a started Map Run child execution by ARN (``execution:<sm>/<label>:<name>``)."""
        resource = _parse_arn(arn, "execution")
        head, _, name = resource.rpartition(":")
        for map_run in self.store.map_runs_by_label.get(head, []):
            child = map_run.find_child(name)
            if child is not None:
                return (map_run, child) if map_run.execution_status(child) is not None else None
        return None

    def _map_run(self, arn: Any) -> MapRun:
        _parse_arn(arn, "mapRun")
        map_run = self.store.map_runs.get(arn)
        if map_run is None:
            raise ServiceError("ResourceNotFound", f"Resource not found: '{arn}'")
        return map_run

    def _validate(self, definition: Any, machine_type: str) -> None:
        errors = [d for d in engine.validate_definition(definition, machine_type) if d.severity == "ERROR"]
        if errors:
            text = ", ".join(f"{d.code}: {d.message} at {d.location}" for d in errors)
            raise ServiceError("InvalidDefinition", f"Invalid State Machine Definition: '{text}'")

    # ------------------------------------------------------------------ state machines
    def _CreateStateMachine(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _check_name(request["name"])
        role_arn = request.get("roleArn")
        if not isinstance(role_arn, str) or not _ROLE_ARN.match(role_arn):
            raise ServiceError("InvalidArn", f"Invalid Role Arn: '{role_arn}'")
        machine_type = request.get("type") or "STANDARD"
        definition = request.get("definition")
        self._validate(definition, machine_type)
        _check_settings(request)
        arn = arns.state_machine_arn(name, self.region, self.account_id)
        tags = _tags(request["tags"]) if request.get("tags") is not None else {}
        if len(tags) > MAX_TAGS:
            raise _too_many_tags(arn, len(tags))
        logging_configuration = _logging_settings(request.get("loggingConfiguration"))
        tracing_configuration = _tracing_settings(request.get("tracingConfiguration"))
        existing = self._live_state_machine(arn)
        if existing is not None:
            self._refuse_if_deleting(existing)
            # Idempotency compares name, definition, type, logging and tracing; "a different roleArn or tags"
            # is ignored and not updated (spec, CreateStateMachine).
            if (
                existing.definition == definition
                and existing.type == machine_type
                and existing.logging_configuration == logging_configuration
                and existing.tracing_configuration == tracing_configuration
            ):
                return {"stateMachineArn": arn, "creationDate": existing.creation_date}
            raise ServiceError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
        record = StateMachineRecord(
            arn=arn,
            name=name,
            definition=str(definition),
            role_arn=role_arn,
            type=machine_type,
            creation_date=now(),
            logging_configuration=logging_configuration,
            tracing_configuration=tracing_configuration,
            tags=tags,
        )
        self.store.state_machines[arn] = record
        return {"stateMachineArn": arn, "creationDate": record.creation_date}

    def _UpdateStateMachine(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._state_machine(request.get("stateMachineArn"))
        self._refuse_if_deleting(record)
        definition = request.get("definition")
        role_arn = request.get("roleArn")
        if (
            definition is None
            and role_arn is None
            and not request.get("loggingConfiguration")
            and not request.get("tracingConfiguration")
        ):
            raise ServiceError(
                "MissingRequiredParameter",
                "Either the definition, the role ARN, the LoggingConfiguration, or the TracingConfiguration "
                "must be specified",
            )
        if definition is not None:
            self._validate(definition, record.type)
        _check_settings(request)
        if role_arn is not None and (not isinstance(role_arn, str) or not _ROLE_ARN.match(role_arn)):
            raise ServiceError("InvalidArn", f"Invalid Role Arn: '{role_arn}'")
        if definition is not None:
            record.definition = str(definition)
            record._compiled = None
        if role_arn is not None:
            record.role_arn = role_arn
        if request.get("loggingConfiguration"):
            record.logging_configuration = _logging_settings(request["loggingConfiguration"])
        if request.get("tracingConfiguration"):
            record.tracing_configuration = _tracing_settings(request["tracingConfiguration"])
        record.update_date = now()
        record.revision_id = new_revision_id()
        return {"updateDate": record.update_date, "revisionId": record.revision_id}

    def _DescribeStateMachine(self, request: dict[str, Any]) -> dict[str, Any]:
        described = self._state_machine(request.get("stateMachineArn")).describe()
        if request.get("includedData") == "METADATA_ONLY":
            # "If called with includedData = METADATA_ONLY, the returned definition will be {}" (API docs).
            # The other Describe calls document no such change; with customer managed keys refused, nothing
            # is encrypted with one, so they answer in full.
            described["definition"] = "{}"
        return described

    def _DescribeStateMachineForExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("executionArn")
        if isinstance(arn, str) and arn not in self.store.executions and (found := self._child(arn)):
            return self._describe_map_run_machine(found[0])
        record = self._execution(arn)
        machine = record.state_machine
        response = {
            "stateMachineArn": machine.arn,
            "name": machine.name,
            "definition": record.definition_snapshot,
            "roleArn": machine.role_arn,
            "updateDate": machine.update_date or machine.creation_date,
            "loggingConfiguration": machine.logging_configuration,
            "tracingConfiguration": machine.tracing_configuration,
        }
        return response

    def _describe_map_run_machine(self, map_run: MapRun) -> dict[str, Any]:
        """DescribeStateMachineForExecution of a Map Run child: the machine "associated with the Map Run".

        That is the ItemProcessor, run as ``<parent machine>/<label>`` (the children's ``stateMachineArn``);
        its exact ``name`` and ``definition`` on AWS are UNCONFIRMED.
        """
        parent = self.store.executions.get(map_run.parent_arn)
        machine = parent.state_machine if parent is not None else None
        response: dict[str, Any] = {
            "stateMachineArn": map_run.state_machine_arn,
            "name": f"{map_run.state_machine_name}/{map_run.label}",
            "definition": map_run.processor_definition,
            "roleArn": map_run.role_arn,
            "updateDate": map_run.start_date,
            "mapRunArn": map_run.arn,
            "label": map_run.label,
        }
        if machine is not None:
            response["updateDate"] = machine.update_date or machine.creation_date
            response["loggingConfiguration"] = machine.logging_configuration
            response["tracingConfiguration"] = machine.tracing_configuration
        return response

    def _ListStateMachines(self, request: dict[str, Any]) -> dict[str, Any]:
        live = [self._live_state_machine(arn) for arn in list(self.store.state_machines)]
        machines = sorted((m for m in live if m is not None), key=lambda m: m.name)
        entries = [
            {"stateMachineArn": m.arn, "name": m.name, "type": m.type, "creationDate": m.creation_date}
            for m in machines
        ]
        page = _page(entries, request, lambda entry: entry["stateMachineArn"])
        response: dict[str, Any] = {"stateMachines": page["items"]}
        if "nextToken" in page:
            response["nextToken"] = page["nextToken"]
        return response

    def _DeleteStateMachine(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("stateMachineArn")
        _parse_machine_arn(arn)
        record = self.store.state_machines.get(str(arn))
        if record is not None:
            # AWS: "it sets the state machine's status to DELETING ... A state machine is deleted only when
            # all its executions are completed." They run on here (that AWS terminates them "on the next
            # state transition" is not modelled), and the name is taken until then.
            record.deleting = True
            self._live_state_machine(str(arn))
        return {}

    # ------------------------------------------------------------------ tags
    def _tagged(self, arn: Any) -> StateMachineRecord:
        """The state machine a tag call names (activities are not implemented, so their ARNs are invalid)."""
        _parse_arn(arn, "stateMachine")
        record = self._live_state_machine(str(arn))
        if record is None:
            raise ServiceError(
                "ResourceNotFound", f"Resource not found: '{arn}'", members={"resourceName": arn}
            )
        return record

    def _TagResource(self, request: dict[str, Any]) -> dict[str, Any]:
        added = _tags(request.get("tags"))  # the model's checks come before the resource's
        record = self._tagged(request.get("resourceArn"))
        tags = {**record.tags, **added}
        if len(tags) > MAX_TAGS:
            raise _too_many_tags(record.arn, len(tags))
        record.tags = tags
        return {}

    def _UntagResource(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = request["tagKeys"]
        record = self._tagged(request.get("resourceArn"))
        record.tags = {key: value for key, value in record.tags.items() if key not in keys}
        return {}

    def _ListTagsForResource(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._tagged(request.get("resourceArn"))
        return {"tags": [{"key": key, "value": value} for key, value in record.tags.items()]}

    def _ValidateStateMachineDefinition(self, request: dict[str, Any]) -> dict[str, Any]:
        # The API model (check_request) has checked the members' types, enums and ranges.
        definition = str(request["definition"])
        severity = request.get("severity") or "ERROR"
        machine_type = request.get("type") or "STANDARD"
        max_results = request.get("maxResults") or 100  # 0 also means the default, 100
        found = engine.validate_definition(definition, machine_type)
        wanted = ("ERROR",) if severity == "ERROR" else ("ERROR", "WARNING")
        diagnostics = [d.to_dict() for d in found if d.severity in wanted]
        failed = any(d["severity"] == "ERROR" for d in diagnostics)
        return {
            "result": "FAIL" if failed else "OK",
            "diagnostics": diagnostics[:max_results],
            "truncated": len(diagnostics) > max_results,
        }

    # ------------------------------------------------------------------ executions
    def _StartExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        # Model constraints (a pattern, the input's size in bytes) come first, as AWS checks them.
        trace_header = request.get("traceHeader")
        if isinstance(trace_header, str) and not trace_header.isascii():
            raise _invalid(
                "traceHeader", trace_header, r"Member must satisfy regular expression pattern: \p{ASCII}*"
            )
        input_text = request.get("input")
        if input_text is None:
            input_text = "{}"
        if len(input_text.encode("utf-8")) > MAX_INPUT_LENGTH:
            size = f"Member must have size less than or equal to {MAX_INPUT_LENGTH} bytes in UTF-8 encoding"
            raise _invalid("input", None, size)
        machine = self._state_machine(request.get("stateMachineArn"))
        self._refuse_if_deleting(machine)
        name = request.get("name")
        name = str(uuid.uuid4()) if name is None else _check_name(name)
        try:
            input_value = _strict_json(input_text)
        except ValueError as error:
            raise ServiceError(
                "InvalidExecutionInput", f"Invalid State Machine Execution Input: '{error}'"
            ) from None
        express = machine.type == "EXPRESS"
        if express:
            # An EXPRESS execution's ARN is unique per start ("StartExecution isn't idempotent for EXPRESS
            # workflows"); AWS keeps no record the execution APIs can read (they answer InvalidArn).
            arn = arns.express_execution_arn(machine.name, name, self.region, self.account_id)
        else:
            arn = arns.execution_arn(machine.name, name, self.region, self.account_id)
        existing = self.store.executions.get(arn)
        if existing is not None:
            if existing.status == "RUNNING" and existing.input_text == input_text:
                return {"executionArn": arn, "startDate": existing.start_date}
            raise ServiceError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        record = ExecutionRecord(
            arn=arn,
            name=name,
            state_machine=machine,
            definition_snapshot=machine.definition,
            compiled=machine.compiled(),
            input_text=input_text,
            start_date=now(),
            trace_header=trace_header if isinstance(trace_header, str) else None,
        )
        if not express:
            self.store.executions[arn] = record
        record.history.record(
            "ExecutionStarted",
            {"input": input_text, "inputDetails": {"truncated": False}, "roleArn": machine.role_arn},
        )
        self._launch(record, record.compiled, input_value)
        return {"executionArn": arn, "startDate": record.start_date}

    def _launch(
        self, record: ExecutionRecord, compiled: Any, input_value: Any, after: asyncio.Task[Any] | None = None
    ) -> None:
        record.launches += 1
        launch = record.launches

        async def start() -> None:
            record.task = asyncio.current_task()
            if after is not None:  # a redrive waits for the earlier run's Map Runs to settle
                await asyncio.wait({after})
            if record.status != "RUNNING" or record.launches != launch:  # stopped (and maybe redriven again)
                return
            await self._run_execution(record, compiled, input_value)

        asyncio.run_coroutine_threadsafe(start(), self._loop)

    async def _run_execution(self, record: ExecutionRecord, compiled: Any, input_value: Any) -> None:
        context = {
            "Execution": {
                "Id": record.arn,
                "Name": record.name,
                "Input": input_value,
                "StartTime": iso_ms(record.start_date),
                "RoleArn": record.state_machine.role_arn,
                "RedriveCount": record.redrive_count,
            },
            "StateMachine": {"Id": record.state_machine.arn, "Name": record.state_machine.name},
        }
        if record.redrive_date is not None:
            context["Execution"]["RedriveTime"] = iso_ms(record.redrive_date)
        record.map_entries.clear()
        timeout = _execution_timeout(record.definition_snapshot)
        run = record.run = asyncio.ensure_future(
            compiled.run(input_value, context, self.services, record.history)
        )
        run.add_done_callback(_settled)  # a stopped or timed-out run's outcome is read by nobody else
        try:
            await asyncio.wait({run}, timeout=timeout)
            if not run.done():
                # The definition's TimeoutSeconds: AWS closes the execution as TIMED_OUT (ExecutionTimedOut)
                # at once; its Map Runs then cancel STANDARD children and wait for EXPRESS ones, as on a stop,
                # and a redrive waits for ``record.run`` to end.
                self._close(record, "TIMED_OUT", error="States.Timeout", cause="")
                self._stop_run(record, run)
                return
            output = run.result()
            output_text = dumps(output)
            if utf8_size(output_text) > PAYLOAD_LIMIT:
                raise StatesError("States.DataLimitExceeded", OUTPUT_TOO_LARGE_CAUSE)
        except asyncio.CancelledError:
            # StopExecution (or shutdown) cancelled this task: the run stops with it (its Map Runs settle on
            # their own; a redrive waits for ``record.run`` to end).
            run.cancel()
            return
        except StatesError as error:
            self._close(record, "FAILED", error=error.error, cause=error.cause)
            return
        except Exception as error:
            log.exception("Execution %s crashed", record.arn)
            self._close(record, "FAILED", error="States.Runtime", cause=f"{type(error).__name__}: {error}")
            return
        self._close(record, "SUCCEEDED", output_text=output_text)

    @staticmethod
    def _mark_maps_failed_after_their_run(record: ExecutionRecord) -> None:
        """Mark the Map Runs whose Map state failed after they succeeded: a redrive starts them anew.

        "If the Map state failed with States.DataLimitExceeded, or a JSON-interpolation States.Runtime, a new
        Map Run is started instead" (spec, Redrive): its output was over the payload quota, or shaping it
        failed. Such a state was entered for that Map Run and never exited; a sibling branch's Map that
        succeeded was, so it is replayed.
        """
        unexited = record.history.unexited("Map")
        by_entry = sorted(record.map_runs_by_key.items(), key=lambda keyed: keyed[0][1])
        latest = {name: map_run for (name, _), map_run in by_entry}  # each Map state's last entry
        for name, map_run in latest.items():
            if name in unexited and map_run.status == SUCCEEDED:
                map_run.state_failed_after_run = True

    def _close(
        self,
        record: ExecutionRecord,
        status: str,
        output_text: str | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> None:
        # A Fail state without Error or Cause: AWS leaves the field out rather than sending "".
        error, cause = error or None, cause or None
        with self.store.lock:
            if record.status != "RUNNING":
                return
            record.history.muted = False
            record.redriving = False
            record.stop_date = now()
            record.output_text = output_text
            record.error = error
            record.cause = cause
            if status == "SUCCEEDED":
                record.history.record(
                    "ExecutionSucceeded", {"output": output_text, "outputDetails": {"truncated": False}}
                )
            else:
                details: dict[str, Any] = {}
                if error is not None:
                    details["error"] = error
                if cause is not None:
                    details["cause"] = cause
                event_type = {"FAILED": "ExecutionFailed", "TIMED_OUT": "ExecutionTimedOut"}.get(
                    status, "ExecutionAborted"
                )
                record.history.record(event_type, details)
            record.status = status

    def _DescribeExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("executionArn")
        record = self.store.executions.get(arn) if isinstance(arn, str) else None
        if record is not None:
            return record.describe()
        found = self._child(arn)
        if found is None:
            raise ServiceError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        map_run, child = found
        return map_run.child_description(child)

    def _ListExecutions(self, request: dict[str, Any]) -> dict[str, Any]:
        machine_arn = request.get("stateMachineArn")
        map_run_arn = request.get("mapRunArn")
        if (machine_arn is None) == (map_run_arn is None):
            raise ServiceError(
                "ValidationException", "Exactly one of stateMachineArn and mapRunArn must be given"
            )
        status_filter = request.get("statusFilter")
        redrive_filter = request.get("redriveFilter")

        def redrive_ok(count: int) -> bool:
            return redrive_filter is None or (count > 0) == (redrive_filter == "REDRIVEN")

        if machine_arn is not None:
            if status_filter == "PENDING_REDRIVE":
                raise ServiceError("ValidationException", "statusFilter PENDING_REDRIVE requires mapRunArn")
            machine = self._state_machine(machine_arn)
            if machine.type == "EXPRESS":
                # "This API action is not supported by EXPRESS state machines" (except with mapRunArn).
                message = "This operation is not supported by this type of state machine"
                raise ServiceError("StateMachineTypeNotSupported", message)
            records = [r for r in self.store.executions.values() if r.state_machine.arn == machine.arn]
            records = [
                r
                for r in records
                if (status_filter is None or r.status == status_filter) and redrive_ok(r.redrive_count)
            ]
            records.sort(
                key=lambda r: _listing_time(r.status == "RUNNING", r.start_date, r.redrive_date, r.stop_date),
                reverse=True,
            )
            entries = [r.list_entry() for r in records]
            page = _page(entries, request, lambda entry: entry["executionArn"])
        else:
            map_run = self._map_run(map_run_arn)
            children = [
                (c, status)
                for c in map_run.children
                if (status := map_run.execution_status(c)) is not None
                and (status_filter is None or status == status_filter)
                and redrive_ok(c.redrive_count)
            ]
            running = ("RUNNING", "PENDING_REDRIVE")
            children.sort(
                key=lambda found: (
                    _listing_time(found[1] in running, found[0].start, found[0].redrive_date, found[0].stop),
                    found[0].index,
                ),
                reverse=True,
            )
            page = _page(children, request, lambda found: found[0].index)
            page["items"] = [self._child_entry(map_run, *found) for found in page["items"]]
        response: dict[str, Any] = {"executions": page["items"]}
        if "nextToken" in page:
            response["nextToken"] = page["nextToken"]
        return response

    @staticmethod
    def _child_entry(map_run: MapRun, child: Any, status: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "executionArn": map_run.child_arn(child.index),
            "stateMachineArn": map_run.state_machine_arn,
            "name": map_run.child_name(child.index),
            "status": status,
            "startDate": child.start if child.start is not None else map_run.start_date,
            "mapRunArn": map_run.arn,
            "itemCount": child.item_count,
            "redriveCount": child.redrive_count,
        }
        if child.stop is not None and status not in ("RUNNING", "PENDING_REDRIVE"):
            entry["stopDate"] = child.stop
        if child.redrive_date is not None:
            entry["redriveDate"] = child.redrive_date
        return entry

    def _StopExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("executionArn")
        record = self.store.executions.get(arn) if isinstance(arn, str) else None
        if record is None:
            if isinstance(arn, str) and self._child(arn) is not None:
                raise ServiceError(
                    "ValidationException",
                    "Child executions of a Map Run are stopped by stopping their parent.",
                )
            self._execution(arn)
            raise AssertionError("unreachable")
        if record.status == "RUNNING":
            self._close(record, "ABORTED", error=request.get("error"), cause=request.get("cause"))
            task = record.task
            if task is not None:
                self._loop.call_soon_threadsafe(self._stop_run, record, task)
        return {"stopDate": record.stop_date}

    @staticmethod
    def _stop_run(record: ExecutionRecord, task: asyncio.Future[Any]) -> None:
        """Cancel a closed execution's run; its Map Runs wait for their EXPRESS children (they can't stop)."""
        for map_run in record.map_runs_by_key.values():
            map_run.parent_closed = True
        task.cancel()

    def _RedriveExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request.get("clientToken")
        if token is not None and not _CLIENT_TOKEN.match(token):
            raise _invalid("clientToken", token, "Member must satisfy regular expression pattern: [!-~]+")
        arn = request.get("executionArn")
        if str(arn) not in self.store.executions and self._child(arn) is not None:
            # A Map Run's child: AWS redrives children only through their parent's redrive (spec).
            raise ServiceError(
                "ExecutionNotRedrivable",
                "Execution is not redrivable: a Map Run's child execution is redriven with its parent",
            )
        record = self._execution(arn)
        clock = time.monotonic()
        record.redrive_tokens = [t for t in record.redrive_tokens if clock - t[1] < REDRIVE_TOKEN_SECONDS]
        for used, _, answer in record.redrive_tokens:
            if token is not None and used == token:
                return dict(answer)  # "idempotent responses for the last 10 client tokens" (spec)
        status, reason = record.redrive_status()
        if status != "REDRIVABLE":
            raise ServiceError("ExecutionNotRedrivable", f"Execution is not redrivable: {reason}")
        # "A Map Run can continue to run after the parent workflow is stopped or timed out. In these
        # scenarios, the redrive doesn't happen immediately" (AWS, Redrive Map Run): it starts once that run
        # has ended.
        stopping = record.run if record.run is not None and not record.run.done() else None
        failed_entered = sum(
            1 for event in record.history.events if str(event["type"]).endswith("StateEntered")
        )
        if record.error in STARTS_ANEW:
            self._mark_maps_failed_after_their_run(record)
        record.redrive_count += 1
        record.redrive_date = now()
        record.status = "RUNNING"
        record.stop_date = None
        record.error = None
        record.cause = None
        record.output_text = None
        record.redriving = True
        record.history.record("ExecutionRedriven", {"redriveCount": record.redrive_count})
        # The runtime re-runs the definition from the start with history muted until the state that failed is
        # entered again: Map states replay their earlier Map Runs (succeeded ones return their result, the
        # failed one is redriven) and Lambda Tasks that succeeded get their recorded result instead of being
        # invoked, so only unsuccessful work runs again, as AWS resumes at the failed state. Pass, Choice...
        # are pure. When results cannot be paired one to one (a Parallel branch, an inline Map iteration, a
        # retried or caught Task before the failure), those Tasks are invoked again: a documented deviation.
        record.history.mute_until_entered(failed_entered)
        # "Redriven executions use the same state machine definition ... that was used for the original
        # execution attempt" (AWS, Redrive): not one set by UpdateStateMachine since.
        self._launch(record, record.compiled, json.loads(record.input_text), after=stopping)
        answer = {"redriveDate": record.redrive_date}
        if token is not None:
            record.redrive_tokens = [*record.redrive_tokens, (token, clock, answer)][-REDRIVE_TOKENS_KEPT:]
        return answer

    def _GetExecutionHistory(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("executionArn")
        record = self.store.executions.get(arn) if isinstance(arn, str) else None
        if record is None and isinstance(arn, str) and (found := self._child(arn)) is not None:
            events = self._child_history(*found)
        else:
            events = self._execution(arn).history.snapshot()
        if request.get("reverseOrder"):
            events.reverse()
        if request.get("includeExecutionData") is False:  # "the input or output of a history event" only
            events = [_without_execution_data(event) for event in events]
        page = _page(events, request, lambda event: event["id"])
        response: dict[str, Any] = {"events": page["items"]}
        if "nextToken" in page:
            response["nextToken"] = page["nextToken"]
        return response

    @staticmethod
    def _child_history(map_run: MapRun, child: Any) -> list[dict[str, Any]]:
        """A Map Run child's history, synthesised from its record.

        The runtime keeps no per-state events for children (that would cost memory per child), so only the
        execution-level events are returned.
        """
        described = map_run.child_description(child)
        start = described["startDate"]
        events: list[dict[str, Any]] = [
            {
                "timestamp": start,
                "type": "ExecutionStarted",
                "id": 1,
                "previousEventId": 0,
                "executionStartedEventDetails": {
                    "input": described["input"],
                    "inputDetails": {"truncated": False},
                    "roleArn": map_run.role_arn,
                },
            }
        ]
        status = described["status"]
        closing = {
            "SUCCEEDED": (
                "ExecutionSucceeded",
                {"output": described.get("output"), "outputDetails": {"truncated": False}},
            ),
            "FAILED": ("ExecutionFailed", {"error": described.get("error"), "cause": described.get("cause")}),
            "TIMED_OUT": (
                "ExecutionTimedOut",
                {"error": described.get("error"), "cause": described.get("cause")},
            ),
            "ABORTED": ("ExecutionAborted", {}),
        }.get(status)
        if closing is not None:
            event_type, details = closing
            event: dict[str, Any] = {
                "timestamp": described.get("stopDate", start),
                "type": event_type,
                "id": 2,
                "previousEventId": 1,
            }
            key = detail_key(event_type)
            if key is not None:
                event[key] = details
            events.append(event)
        return events

    # ------------------------------------------------------------------ map runs
    def _ListMapRuns(self, request: dict[str, Any]) -> dict[str, Any]:
        arn = request.get("executionArn")
        record = self.store.executions.get(arn) if isinstance(arn, str) else None
        if record is None and isinstance(arn, str) and self._child(arn) is not None:
            # A child execution's own (nested) Distributed Maps.
            runs = [m for m in self.store.map_runs.values() if m.parent_arn == arn]
        else:
            runs = list(self._execution(arn).map_runs)
        entries = [m.list_entry() for m in reversed(runs)]
        page = _page(entries, request, lambda entry: entry["mapRunArn"])
        response: dict[str, Any] = {"mapRuns": page["items"]}
        if "nextToken" in page:
            response["nextToken"] = page["nextToken"]
        return response

    def _DescribeMapRun(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._map_run(request.get("mapRunArn")).describe()

    def _UpdateMapRun(self, request: dict[str, Any]) -> dict[str, Any]:
        map_run = self._map_run(request.get("mapRunArn"))
        concurrency = request.get("maxConcurrency")
        count = request.get("toleratedFailureCount")
        percentage = request.get("toleratedFailurePercentage")
        if concurrency is None and count is None and percentage is None:
            raise ServiceError(
                "ValidationException",
                "At least one of maxConcurrency, toleratedFailureCount or toleratedFailurePercentage "
                "is required",
            )
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 0):
            raise ServiceError("ValidationException", "maxConcurrency must be a non-negative integer")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ServiceError("ValidationException", "toleratedFailureCount must be a non-negative integer")
        if percentage is not None and (not isinstance(percentage, int | float) or not 0 <= percentage <= 100):
            raise ServiceError("ValidationException", "toleratedFailurePercentage must be between 0 and 100")
        map_run.update(concurrency, count, None if percentage is None else float(percentage))
        return {}
