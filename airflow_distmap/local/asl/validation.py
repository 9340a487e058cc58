"""Definition validation for CreateStateMachine, UpdateStateMachine and ValidateStateMachineDefinition.

Everything AWS would reject is an ERROR diagnostic, and so is every feature the local runtime does not
implement (``UNSUPPORTED_FEATURE``, the message naming the feature): a definition is never run with a part
of it
silently ignored. Codes follow AWS's (``INVALID_JSON_DESCRIPTION``, ``SCHEMA_VALIDATION_FAILED``,
``MISSING_TRANSITION_TARGET``...); locations are JSON pointers like ``/States/MapState/ItemBatcher``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_distmap.definitions.partitions import integration_api
from airflow_distmap.definitions.processors import LAMBDA_INVOKE_PARAMETERS
from airflow_distmap.formats.json_pointer import is_pointer
from airflow_distmap.local.asl.choice import COMPARISON_OPERATORS, compile_rule, parse_timestamp
from airflow_distmap.local.asl.jsonata import JsonataTemplate, is_expression
from airflow_distmap.local.asl.paths import compile_path
from airflow_distmap.local.asl.tasks import LAMBDA_INVOKE_RE, is_supported_resource
from airflow_distmap.local.asl.templates import CompiledTemplate

SCHEMA = "SCHEMA_VALIDATION_FAILED"
UNSUPPORTED = "UNSUPPORTED_FEATURE"

_COMMON = {"Type", "Comment", "QueryLanguage"}
_IO = {"InputPath", "OutputPath"}
_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _IO | {"Next", "End", "Parameters", "Result", "ResultPath", "Assign"},
    "Task": _COMMON
    | _IO
    | {"Next", "End", "Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Assign"}
    | {"TimeoutSeconds", "TimeoutSecondsPath"},
    "Choice": _COMMON | _IO | {"Choices", "Default", "Assign"},
    "Wait": _COMMON | _IO | {"Next", "End", "Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Assign"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON
    | _IO
    | {"Next", "End", "Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Assign"},
    "Map": _COMMON
    | _IO
    | {"Next", "End", "ItemProcessor", "Iterator", "ItemsPath", "ItemSelector", "Parameters", "ItemReader"}
    | {"ItemBatcher", "ResultWriter", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage"}
    | {"ToleratedFailurePercentagePath", "ToleratedFailureCount", "ToleratedFailureCountPath", "Label"}
    | {"ResultSelector", "ResultPath", "Retry", "Catch", "Assign"},
}
#: Fields Step Functions accepts that the local runtime does not implement.
_UNSUPPORTED_FIELDS: dict[str, str] = {
    "HeartbeatSeconds": "Task HeartbeatSeconds",
    "HeartbeatSecondsPath": "Task HeartbeatSecondsPath",
    "Credentials": "Task Credentials (cross-account role)",
}
#: Fields of JSONPath states that JSONata states replace with Arguments/Output/Items/Condition.
_JSONPATH_ONLY = {
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "ItemsPath",
    "ErrorPath",
    "CausePath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
}
_JSONATA_ONLY = {"Arguments", "Output", "Items"}
for _kind, _fields in _FIELDS.items():
    if _kind != "Fail":
        _fields.add("Output")
    if _kind in ("Task", "Parallel"):
        _fields.add("Arguments")
_FIELDS["Map"].add("Items")
_TERMINAL = {"Choice", "Succeed", "Fail"}
#: The request fields the local ItemReader sends to S3, per API.
_READER_PARAMETERS = {
    "s3:getObject": {"Bucket", "Key", "VersionId", "ExpectedBucketOwner"},
    "s3:listObjectsV2": {"Bucket", "Prefix", "ExpectedBucketOwner"},
}
_LABEL_FORBIDDEN = re.compile(r"[\s?*<>{}\[\]:;,\\|^~$#%&`\"\u0000-\u001f\u007f-\u009f]")
_MAX_INT = 99999999


@dataclass(frozen=True)
class Diagnostic:
    """One finding, shaped like ValidateStateMachineDefinition's ``diagnostics`` entries.

    :param severity: ``ERROR`` or ``WARNING``.
    :param code: e.g. ``SCHEMA_VALIDATION_FAILED``.
    :param message: what is wrong and where.
    :param location: a JSON pointer into the definition, e.g. ``/States/MapState/Label``.
    """

    severity: str
    code: str
    message: str
    location: str

    def to_dict(self) -> dict[str, str]:
        """The API shape ``{"severity", "code", "message", "location"}``."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "location": self.location,
        }


def validate_definition(definition_text: str, machine_type: str = "STANDARD") -> list[Diagnostic]:
    """Validate a state machine definition.

    :param definition_text: the definition as JSON text.
    :param machine_type: ``STANDARD`` or ``EXPRESS`` (an EXPRESS state machine holds no Distributed Map).
    :return: the diagnostics; any ERROR means the definition must be rejected (InvalidDefinition).
    """
    try:
        definition = json.loads(definition_text)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        return [
            Diagnostic(
                "ERROR", "INVALID_JSON_DESCRIPTION", f"The definition is not valid JSON: {reason}", "/"
            )
        ]
    validator = _Validator(machine_type)
    if not isinstance(definition, dict):
        validator.error(SCHEMA, "The definition must be a JSON object", "")
        return validator.diagnostics
    try:
        validator.machine(definition, "")
    except Exception as exc:  # a shape no specific check anticipated: still a diagnostic, never a crash
        validator.error(SCHEMA, f"The definition has an invalid structure: {type(exc).__name__}: {exc}", "/")
    return validator.diagnostics


#: A JSONPath or context-object path (``$``, ``$.a``, ``$[0]``, ``$$.Map.Item.Value``), as a template value.
_PATH_LIKE = re.compile(r"^\$\$?($|[.\[])")


def _template_fields(template: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(field name, value)`` of a payload template, nested objects and arrays included."""
    stack = [template]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield str(key), value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _is_state(target: Any, states: Mapping[str, Any]) -> bool:
    return isinstance(target, str) and target in states


class _Validator:
    def __init__(self, machine_type: str = "STANDARD") -> None:
        self.machine_type = machine_type
        self.diagnostics: list[Diagnostic] = []
        self.labels: set[str] = set()
        self.jsonata = False  # the query language of the state being validated

    def error(self, code: str, message: str, location: str) -> None:
        self.diagnostics.append(Diagnostic("ERROR", code, message, location or "/"))

    def warning(self, code: str, message: str, location: str) -> None:
        self.diagnostics.append(Diagnostic("WARNING", code, message, location or "/"))

    def unsupported(self, feature: str, location: str) -> None:
        self.error(
            UNSUPPORTED,
            f"{feature} is not supported by the local runtime (AWS runs it; leave it out to run locally)",
            location,
        )

    # -- state machines ---------------------------------------------------------------------------------
    def machine(self, definition: Mapping[str, Any], location: str, inherited: str = "JSONPath") -> None:
        enclosing = self.jsonata
        try:
            self._machine(definition, location, inherited)
        finally:
            self.jsonata = enclosing

    def _machine(self, definition: Mapping[str, Any], location: str, inherited: str) -> None:
        allowed = {
            "Comment",
            "StartAt",
            "States",
            "Version",
            "QueryLanguage",
            "TimeoutSeconds",
            "ProcessorConfig",
        }
        for field in definition:
            if field not in allowed:
                self.error(
                    SCHEMA, f"The field '{field}' is not supported by Step Functions", f"{location}/{field}"
                )
        language = definition.get("QueryLanguage", inherited)
        if language not in ("JSONPath", "JSONata"):
            self.error(SCHEMA, f"QueryLanguage must be JSONPath or JSONata, not {language!r}", location)
        if "TimeoutSeconds" in definition:
            timeout = definition["TimeoutSeconds"]
            if location:  # a Map's ItemProcessor or a Parallel branch: only an execution has a timeout here
                self.unsupported(
                    "TimeoutSeconds inside an ItemProcessor or branch", f"{location}/TimeoutSeconds"
                )
            elif isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
                self.error(SCHEMA, "TimeoutSeconds must be a positive integer", f"{location}/TimeoutSeconds")
        states = definition.get("States")
        start = definition.get("StartAt")
        if not isinstance(start, str):
            self.error(SCHEMA, "The field 'StartAt' is required and must be a string", location)
        if not isinstance(states, dict) or not states:
            self.error(SCHEMA, "The field 'States' is required and must be a non-empty object", location)
            return
        if isinstance(start, str) and start not in states:
            self.error(
                "MISSING_TRANSITION_TARGET", f"StartAt '{start}' is not a state", f"{location}/StartAt"
            )
        for name, state in states.items():
            state_location = f"{location}/States/{name}"
            if len(name) > 80:
                self.error(SCHEMA, f"State name '{name}' is longer than 80 characters", state_location)
            if not isinstance(state, dict):
                self.error(SCHEMA, f"State '{name}' must be an object", state_location)
                continue
            self.jsonata = state.get("QueryLanguage", language) == "JSONata"
            if language == "JSONata" and not self.jsonata:
                self.error(
                    SCHEMA, "A JSONPath state cannot be nested in a JSONata state machine", state_location
                )
            self.state(name, state, states, state_location)
        if isinstance(start, str) and start in states:
            self.reachability(start, states, location)

    def reachability(self, start: str, states: Mapping[str, Any], location: str) -> None:
        seen = {start}
        pending = [start]
        while pending:
            state = states.get(pending.pop())
            if not isinstance(state, dict):
                continue
            targets = [state.get("Next"), state.get("Default")]
            for field in ("Choices", "Catch"):
                entries = state.get(field)
                if isinstance(entries, list):
                    targets += [entry.get("Next") for entry in entries if isinstance(entry, dict)]
            for target in targets:
                if isinstance(target, str) and target in states and target not in seen:
                    seen.add(target)
                    pending.append(target)
        for name in states:
            if name not in seen:
                # AWS's code and wording (a recorded answer: localstack/localstack#11978).
                message = f'State "{name}" is not reachable.'
                self.error("MISSING_TRANSITION_TARGET", message, f"{location}/States/{name}")
        kinds = [state for state in states.values() if isinstance(state, dict)]
        ends_itself = ("Choice", "Succeed", "Fail")
        dangling = any(
            "Next" not in state and "End" not in state and state.get("Type") not in ends_itself
            for state in kinds
        )  # reported already ("exactly one of 'Next' or 'End'")
        if not dangling and not any(
            state.get("End") is True or state.get("Type") in ("Succeed", "Fail") for state in kinds
        ):
            # A third party's AWS measurement (floci-io/floci#2735): "MISSING_END_STATE: Workflow has no
            # terminal state". The check is per state machine, so per ItemProcessor and branch too.
            self.error("MISSING_END_STATE", "Workflow has no terminal state", location)

    def state(self, name: str, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        kind = state.get("Type")
        if not isinstance(kind, str) or kind not in _FIELDS:
            self.error(SCHEMA, f"State '{name}' has an invalid Type {kind!r}", f"{location}/Type")
            return
        for field in state:
            if field in _UNSUPPORTED_FIELDS:
                self.unsupported(_UNSUPPORTED_FIELDS[field], f"{location}/{field}")
            elif self.jsonata and field in _JSONPATH_ONLY:
                self.error(
                    SCHEMA, f"The field '{field}' is not supported in JSONata states", f"{location}/{field}"
                )
            elif not self.jsonata and field in _JSONATA_ONLY:
                self.error(
                    SCHEMA, f"The field '{field}' is only supported in JSONata states", f"{location}/{field}"
                )
            elif field not in _FIELDS[kind]:
                self.error(
                    SCHEMA, f"The field '{field}' is not supported for {kind} states", f"{location}/{field}"
                )
        self.transition(kind, state, states, location)
        for field in ("InputPath", "OutputPath"):
            self.path(state, field, location, reference=False)
        if kind in ("Pass", "Task", "Parallel", "Map"):
            self.path(state, "ResultPath", location, reference=True, into_input=True)
        if "Assign" in state and not isinstance(state["Assign"], dict):
            self.error(SCHEMA, "'Assign' must be an object of variable names", f"{location}/Assign")
        for field in ("Parameters", "ResultSelector", "Assign", "Arguments", "Output", "Items"):
            if field in state:
                self.template(state[field], f"{location}/{field}")
        if kind in ("Task", "Parallel", "Map"):
            self.retriers(state.get("Retry", []), f"{location}/Retry")
            self.catchers(state.get("Catch", []), states, f"{location}/Catch")
        getattr(self, f"state_{kind.lower()}")(state, states, location)

    def transition(
        self, kind: str, state: Mapping[str, Any], states: Mapping[str, Any], location: str
    ) -> None:
        if kind in _TERMINAL:
            return
        has_next, is_end = "Next" in state, state.get("End") is True
        if has_next == is_end:
            self.error(SCHEMA, "A state must have exactly one of 'Next' or 'End': true", location)
        elif has_next and not _is_state(state["Next"], states):
            self.error(
                "MISSING_TRANSITION_TARGET", f"Missing 'Next' target: {state['Next']}", f"{location}/Next"
            )

    def target(self, holder: Mapping[str, Any], field: str, states: Mapping[str, Any], where: str) -> None:
        """Check that a catcher's or Choice rule's ``Next`` (or a Choice's ``Default``) names a state."""
        if field not in holder:
            self.error(SCHEMA, f"The field '{field}' is required", where)
        elif not _is_state(holder[field], states):
            self.error("MISSING_TRANSITION_TARGET", f"Missing '{field}' target: {holder[field]}", where)

    def path(
        self, spec: Mapping[str, Any], field: str, location: str, reference: bool, into_input: bool = False
    ) -> None:
        """Check a path field (``into_input``: it writes into the state input, as ResultPath does)."""
        if field not in spec or spec[field] is None:
            return
        value = spec[field]
        try:
            path = compile_path(value) if isinstance(value, str) else None
        except ValueError:
            path = None
        if (
            path is None
            or (reference and not path.is_reference_path)
            or (into_input and path.source != "data")
        ):
            kind = "reference path" if reference else "JSONPath"
            self.error(
                SCHEMA, f"The value for the field '{field}' must be a valid {kind}", f"{location}/{field}"
            )

    def template(self, template: Any, location: str) -> None:
        try:
            if self.jsonata:
                JsonataTemplate(template, location.rsplit("/", 1)[-1])
            else:
                CompiledTemplate(template)
                self.paths_without_dollar(template, location)
        except ValueError as exc:
            self.error(SCHEMA, str(exc), location)

    def paths_without_dollar(self, template: Any, location: str) -> None:
        """Warn about a field whose value looks like a path while its name does not end in ``.$``.

        The value is then passed on as text. ``NO_DOLLAR`` is an example code of AWS's API reference; its
        wording here is UNCONFIRMED.
        """
        for key, value in _template_fields(template):
            if not key.endswith(".$") and isinstance(value, str) and _PATH_LIKE.match(value):
                self.warning(
                    "NO_DOLLAR",
                    f"The value of the field '{key}' looks like a path ({value!r}), but the field name does "
                    f"not end in '.$', so the text itself is passed: name the field '{key}.$' to select "
                    "the value",
                    location,
                )

    def exclusive(self, spec: Mapping[str, Any], first: str, second: str, location: str) -> None:
        if first in spec and second in spec:
            self.error(SCHEMA, f"The fields '{first}' and '{second}' are mutually exclusive", location)

    def integer(self, spec: Mapping[str, Any], field: str, low: int, high: int, location: str) -> None:
        if field not in spec:
            return
        value = spec[field]
        if self.jsonata and is_expression(value):
            self.template(value, f"{location}/{field}")
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(
                SCHEMA, f"'{field}' must be an integer between {low} and {high}", f"{location}/{field}"
            )

    # -- error handling -----------------------------------------------------------------------------------
    def error_equals(self, entries: Any, index: int, count: int, location: str) -> None:
        errors = entries.get("ErrorEquals")
        if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
            self.error(SCHEMA, "'ErrorEquals' must be a non-empty list of strings", f"{location}/ErrorEquals")
            return
        if "States.ALL" in errors and (len(errors) != 1 or index != count - 1):
            self.error(
                SCHEMA, "'States.ALL' must appear alone in ErrorEquals, in the last retrier/catcher", location
            )

    def retriers(self, retriers: Any, location: str) -> None:
        if not isinstance(retriers, list):
            self.error(SCHEMA, "'Retry' must be a list", location)
            return
        allowed = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds"}
        allowed |= {"JitterStrategy", "Comment"}
        for index, retrier in enumerate(retriers):
            where = f"{location}/{index}"
            if not isinstance(retrier, dict):
                self.error(SCHEMA, "A retrier must be an object", where)
                continue
            for field in retrier:
                if field not in allowed:
                    self.error(
                        SCHEMA, f"The field '{field}' is not supported in a retrier", f"{where}/{field}"
                    )
            self.error_equals(retrier, index, len(retriers), where)
            self.integer(retrier, "IntervalSeconds", 1, _MAX_INT, where)
            self.integer(retrier, "MaxAttempts", 0, _MAX_INT, where)
            self.integer(retrier, "MaxDelaySeconds", 1, 31622400, where)
            rate = retrier.get("BackoffRate", 2.0)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1.0:
                self.error(SCHEMA, "'BackoffRate' must be a number >= 1.0", f"{where}/BackoffRate")
            if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
                self.error(SCHEMA, "'JitterStrategy' must be FULL or NONE", f"{where}/JitterStrategy")

    def catchers(self, catchers: Any, states: Mapping[str, Any], location: str) -> None:
        if not isinstance(catchers, list):
            self.error(SCHEMA, "'Catch' must be a list", location)
            return
        for index, catcher in enumerate(catchers):
            where = f"{location}/{index}"
            if not isinstance(catcher, dict):
                self.error(SCHEMA, "A catcher must be an object", where)
                continue
            allowed = ("ErrorEquals", "Next", "Comment", "Output", "Assign") if self.jsonata else None
            for field in catcher:
                if allowed is not None:
                    if field not in allowed:
                        self.error(
                            SCHEMA, f"The field '{field}' is not supported in a JSONata catcher", where
                        )
                    elif field in ("Output", "Assign"):
                        self.template(catcher[field], f"{where}/{field}")
                elif field == "Assign":
                    self.unsupported("Assign in a JSONPath Catch", f"{where}/Assign")
                elif field not in ("ErrorEquals", "Next", "ResultPath", "Comment"):
                    self.error(
                        SCHEMA, f"The field '{field}' is not supported in a catcher", f"{where}/{field}"
                    )
            self.error_equals(catcher, index, len(catchers), where)
            self.target(catcher, "Next", states, where)
            self.path(catcher, "ResultPath", where, reference=True, into_input=True)

    # -- state types ----------------------------------------------------------------------------------------
    def state_pass(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        # PASS_RESULT_IS_STATIC: an example code of AWS's API reference; its wording is UNCONFIRMED.
        if any(key.endswith(".$") for key, _ in _template_fields(state.get("Result"))):
            self.warning(
                "PASS_RESULT_IS_STATIC",
                "The Result of a Pass state is static: a field name ending in '.$' is kept as it is, not "
                "evaluated. To select from the input, use Parameters instead of Result",
                f"{location}/Result",
            )

    def state_succeed(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        return

    def state_fail(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        for field in ("Error", "Cause"):
            self.exclusive(state, field, f"{field}Path", location)
            path = state.get(f"{field}Path")
            if path is not None:
                self.template({f"{field}Path.$": path}, f"{location}/{field}Path")

    def state_task(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        resource = state.get("Resource")
        if not isinstance(resource, str):
            self.error(SCHEMA, "A Task state needs a 'Resource' string", location)
            return
        if not is_supported_resource(resource):
            self.unsupported(
                f"Task resource {resource} (only arn:aws:states:::lambda:invoke and Lambda function ARNs "
                "are)",
                f"{location}/Resource",
            )
        elif LAMBDA_INVOKE_RE.match(resource):
            field = "Arguments" if self.jsonata else "Parameters"
            parameters = state.get(field)
            if self.jsonata and is_expression(parameters):
                pass  # the whole Arguments object is computed at run time
            elif not isinstance(parameters, dict) or not (
                "FunctionName" in parameters or "FunctionName.$" in parameters
            ):
                self.error(
                    SCHEMA,
                    f"The lambda:invoke integration needs 'FunctionName' in {field}",
                    f"{location}/{field}",
                )
            else:
                self.lambda_invoke_parameters(parameters, f"{location}/{field}")
        if is_expression(state.get("TimeoutSeconds")):
            self.unsupported("A JSONata TimeoutSeconds expression", f"{location}/TimeoutSeconds")
        self.exclusive(state, "TimeoutSeconds", "TimeoutSecondsPath", location)
        self.integer(state, "TimeoutSeconds", 1, _MAX_INT, location)
        self.path(state, "TimeoutSecondsPath", location, reference=True)

    def lambda_invoke_parameters(self, parameters: Mapping[str, Any], location: str) -> None:
        """Check a lambda:invoke Task's Parameters (or Arguments): the Invoke API's fields, as run here."""
        for key in parameters:
            name = key.removesuffix(".$")
            if name not in LAMBDA_INVOKE_PARAMETERS:
                # UNCONFIRMED wording: AWS refuses an optimized integration's unknown parameter when the state
                # machine is created, with this message shape; the Invoke API knows only these fields.
                self.error(
                    SCHEMA,
                    f"The field '{name}' is not supported by Step Functions for lambda:invoke (its "
                    f"parameters: {', '.join(sorted(LAMBDA_INVOKE_PARAMETERS))})",
                    f"{location}/{key}",
                )
        if parameters.get("InvocationType", "RequestResponse") != "RequestResponse":
            self.unsupported(f"lambda:invoke InvocationType {parameters['InvocationType']}", location)
        if parameters.get("LogType", "None") != "None":
            # Lambda would answer the last 4 KB of the invocation's log as LogResult, which is not kept here.
            self.unsupported(f"lambda:invoke LogType {parameters['LogType']} (the log tail)", location)

    def state_choice(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            self.error(SCHEMA, "A Choice state needs a non-empty 'Choices' list", location)
            return
        for index, rule in enumerate(choices):
            where = f"{location}/Choices/{index}"
            if not isinstance(rule, dict):
                self.error(SCHEMA, "A Choice rule must be an object", where)
                continue
            if "Assign" in rule:
                self.unsupported("Assign in a Choice rule", f"{where}/Assign")
            self.target(rule, "Next", states, where)
            if self.jsonata:
                if "Condition" not in rule:
                    self.error(SCHEMA, "A JSONata Choice rule needs a 'Condition'", where)
                else:
                    self.template(rule["Condition"], f"{where}/Condition")
                for field in rule:
                    if field not in ("Condition", "Next", "Comment", "Assign"):  # Assign: refused above
                        self.error(
                            SCHEMA, f"The field '{field}' is not supported in a JSONata Choice rule", where
                        )
                continue
            if "Condition" in rule:
                self.error(SCHEMA, "'Condition' is only supported in JSONata states", f"{where}/Condition")
                continue
            self.rule(rule, where)
        if "Default" in state:
            self.target(state, "Default", states, location)

    def rule(self, rule: Mapping[str, Any], location: str) -> None:
        try:
            compile_rule(rule)
        except (ValueError, KeyError, TypeError, re.error) as exc:
            operators = sorted(COMPARISON_OPERATORS)
            self.error(SCHEMA, f"Invalid Choice rule: {exc} (operators: {', '.join(operators)})", location)
            return
        self.rule_operands(rule, location, nested=False)

    def rule_operands(self, rule: Mapping[str, Any], location: str, *, nested: bool) -> None:
        """Check a compiled rule's operand types, and that only a top-level rule has ``Next``."""
        if nested and "Next" in rule:
            # The ASL spec: the rules inside And, Or and Not "MUST NOT contain 'Next' fields".
            self.error(
                SCHEMA,
                "The field 'Next' is not supported in a rule inside And, Or or Not: only a top-level Choice "
                "rule has one",
                f"{location}/Next",
            )
        for combinator in ("And", "Or"):
            for index, sub_rule in enumerate(rule.get(combinator, ())):
                self.rule_operands(sub_rule, f"{location}/{combinator}/{index}", nested=True)
        if "Not" in rule:
            self.rule_operands(rule["Not"], f"{location}/Not", nested=True)
        for operator, operand in rule.items():
            if operator not in COMPARISON_OPERATORS or operator.endswith("Path"):
                continue
            if operator.startswith("Timestamp"):
                if not isinstance(operand, str) or parse_timestamp(operand) is None:
                    self.error(SCHEMA, f"'{operator}' needs an ISO-8601 timestamp", f"{location}/{operator}")
            elif operator.startswith("Numeric"):
                if isinstance(operand, bool) or not isinstance(operand, int | float):
                    self.error(SCHEMA, f"'{operator}' needs a number", f"{location}/{operator}")
            elif operator.startswith("String"):
                if not isinstance(operand, str):
                    self.error(SCHEMA, f"'{operator}' needs a string", f"{location}/{operator}")
            elif not isinstance(operand, bool):  # BooleanEquals, IsPresent, IsNull and the other Is* tests
                self.error(SCHEMA, f"'{operator}' needs true or false", f"{location}/{operator}")

    def state_wait(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        present = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in state]
        if len(present) != 1:
            self.error(
                SCHEMA,
                "A Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
                location,
            )
        self.integer(state, "Seconds", 0, _MAX_INT, location)
        if (
            "Timestamp" in state
            and not (self.jsonata and is_expression(state["Timestamp"]))
            and (not isinstance(state["Timestamp"], str) or parse_timestamp(state["Timestamp"]) is None)
        ):
            self.error(SCHEMA, "'Timestamp' must be an ISO-8601 timestamp", f"{location}/Timestamp")
        self.path(state, "SecondsPath", location, reference=True)
        self.path(state, "TimestampPath", location, reference=True)

    def state_parallel(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            self.error(SCHEMA, "A Parallel state needs a non-empty 'Branches' list", location)
            return
        for index, branch in enumerate(branches):
            if isinstance(branch, dict):
                self.machine(branch, f"{location}/Branches/{index}", self.language())
            else:
                self.error(SCHEMA, "A branch must be an object", f"{location}/Branches/{index}")

    def state_map(self, state: Mapping[str, Any], states: Mapping[str, Any], location: str) -> None:
        self.exclusive(state, "ItemProcessor", "Iterator", location)
        self.exclusive(state, "ItemSelector", "Parameters", location)
        self.exclusive(state, "MaxConcurrency", "MaxConcurrencyPath", location)
        self.integer(state, "MaxConcurrency", 0, _MAX_INT, location)
        self.path(state, "ItemsPath", location, reference=True)
        self.path(state, "MaxConcurrencyPath", location, reference=True)
        if "ItemSelector" in state:
            self.template(state["ItemSelector"], f"{location}/ItemSelector")
        processor_field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
        processor = state.get(processor_field)
        if not isinstance(processor, dict):
            self.error(SCHEMA, "A Map state needs an 'ItemProcessor' object", location)
            return
        config = processor.get("ProcessorConfig", {})
        where = f"{location}/{processor_field}/ProcessorConfig"
        if not isinstance(config, dict):
            self.error(SCHEMA, "'ProcessorConfig' must be an object", where)
            config = {}
        mode = config.get("Mode", "INLINE")
        if mode not in ("INLINE", "DISTRIBUTED"):
            self.error(SCHEMA, f"ProcessorConfig Mode must be INLINE or DISTRIBUTED, not {mode!r}", where)
        distributed = mode == "DISTRIBUTED"
        if distributed and self.machine_type == "EXPRESS":
            # "Distributed mode is supported in Standard workflows but not supported in Express workflows."
            self.error(
                SCHEMA,
                "Distributed Map states are not supported in EXPRESS state machines; use type STANDARD",
                where,
            )
        if distributed and config.get("ExecutionType") not in ("STANDARD", "EXPRESS"):
            self.error(
                SCHEMA, "ProcessorConfig ExecutionType must be STANDARD or EXPRESS in DISTRIBUTED mode", where
            )
        if not distributed and "ExecutionType" in config:
            self.error(SCHEMA, "ProcessorConfig ExecutionType is only allowed in DISTRIBUTED mode", where)
        self.machine(
            {k: v for k, v in processor.items() if k != "ProcessorConfig"},
            f"{location}/{processor_field}",
            self.language(),
        )
        if not distributed and is_expression(state.get("MaxConcurrency")):
            self.unsupported(
                "A JSONata MaxConcurrency expression in an INLINE Map", f"{location}/MaxConcurrency"
            )
        distributed_only = (
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
        )
        if not distributed:
            for field in distributed_only:
                if field in state:
                    self.error(
                        SCHEMA, f"'{field}' is only allowed in a DISTRIBUTED Map state", f"{location}/{field}"
                    )
            return
        self.exclusive(state, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath", location)
        self.exclusive(state, "ToleratedFailureCount", "ToleratedFailureCountPath", location)
        self.integer(state, "ToleratedFailureCount", 0, _MAX_INT, location)
        percentage = state.get("ToleratedFailurePercentage", 0)
        if self.jsonata and is_expression(percentage):
            self.template(percentage, f"{location}/ToleratedFailurePercentage")
        elif (
            isinstance(percentage, bool)
            or not isinstance(percentage, int | float)
            or not 0 <= percentage <= 100
        ):
            self.error(SCHEMA, "'ToleratedFailurePercentage' must be a number between 0 and 100", location)
        for field in ("ToleratedFailurePercentagePath", "ToleratedFailureCountPath"):
            self.path(state, field, location, reference=True)
        if "Label" in state:
            self.label(state["Label"], f"{location}/Label")
        if "ItemReader" in state:
            self.item_reader(state["ItemReader"], f"{location}/ItemReader")
        if "ItemBatcher" in state:
            self.item_batcher(state["ItemBatcher"], f"{location}/ItemBatcher")
        if "ResultWriter" in state:
            self.result_writer(state["ResultWriter"], f"{location}/ResultWriter")

    def language(self) -> str:
        return "JSONata" if self.jsonata else "JSONPath"

    def label(self, label: Any, location: str) -> None:
        if not isinstance(label, str) or not label:
            self.error(SCHEMA, "'Label' must be a non-empty string", location)
        elif len(label) > 40:
            self.error(SCHEMA, "'Label' can't exceed 40 characters", location)
        elif _LABEL_FORBIDDEN.search(label):
            self.error(SCHEMA, f"'Label' contains a forbidden character: {label!r}", location)
        elif label in self.labels:
            self.error(SCHEMA, f"'Label' {label!r} must be unique within the state machine", location)
        else:
            self.labels.add(label)

    def item_reader(self, reader: Any, location: str) -> None:
        if not isinstance(reader, dict):
            self.error(SCHEMA, "'ItemReader' must be an object", location)
            return
        for field in reader:
            if field == ("Parameters" if self.jsonata else "Arguments"):
                self.error(
                    SCHEMA, f"ItemReader {field} is not supported in {self.language()} states", location
                )
            elif field not in ("Resource", "Parameters", "Arguments", "ReaderConfig"):
                self.error(
                    SCHEMA, f"The field '{field}' is not supported in ItemReader", f"{location}/{field}"
                )
        resource = reader.get("Resource")
        api = integration_api(resource)  # in any partition: arn:aws-cn:states:::s3:getObject in China
        if api not in ("s3:getObject", "s3:listObjectsV2"):
            self.error(
                SCHEMA,
                f"ItemReader Resource {resource!r} must be arn:aws:states:::s3:getObject or "
                "arn:aws:states:::s3:listObjectsV2",
                f"{location}/Resource",
            )
        for field in ("Parameters", "Arguments"):
            if field in reader:
                self.template(reader[field], f"{location}/{field}")
                self.reader_parameters(api, reader[field], f"{location}/{field}")
        config = reader.get("ReaderConfig", {})
        where = f"{location}/ReaderConfig"
        if not isinstance(config, dict):
            self.error(SCHEMA, "'ReaderConfig' must be an object", where)
            return
        known = {"InputType", "CSVHeaderLocation", "CSVHeaders", "CSVDelimiter", "MaxItems", "MaxItemsPath"}
        known |= {"ItemsPointer", "Transformation", "ManifestType"}
        for field in config:
            if field not in known:
                self.error(
                    SCHEMA, f"The field '{field}' is not supported in ReaderConfig", f"{where}/{field}"
                )
        input_type = config.get("InputType")
        if input_type == "MANIFEST":
            self.unsupported(f"ItemReader InputType {input_type}", f"{where}/InputType")
        elif input_type is not None and input_type not in ("CSV", "JSON", "JSONL", "PARQUET"):
            self.error(
                SCHEMA,
                "ItemReader InputType must be CSV, JSON, JSONL, PARQUET or MANIFEST",
                f"{where}/InputType",
            )
        if "ManifestType" in config:
            self.unsupported(f"ItemReader ManifestType {config['ManifestType']}", f"{where}/ManifestType")
        if "Transformation" in config and api != "s3:listObjectsV2":
            # Spec §1.2: "Only with s3:listObjectsV2".
            self.error(
                SCHEMA,
                "ReaderConfig Transformation is only allowed with arn:aws:states:::s3:listObjectsV2",
                f"{where}/Transformation",
            )
        elif config.get("Transformation", "NONE") not in ("NONE", "LOAD_AND_FLATTEN"):
            message = "ReaderConfig Transformation must be NONE or LOAD_AND_FLATTEN"
            self.error(SCHEMA, message, f"{where}/Transformation")
        elif config.get("Transformation") == "LOAD_AND_FLATTEN" and input_type is None:
            # Spec §1.2: "LOAD_AND_FLATTEN requires InputType".
            self.error(SCHEMA, "ReaderConfig Transformation LOAD_AND_FLATTEN requires InputType", where)
        if api == "s3:getObject" and input_type is None and "ManifestType" not in config:
            self.error(SCHEMA, "ReaderConfig InputType is required with arn:aws:states:::s3:getObject", where)
        if input_type == "CSV":
            header_location = config.get("CSVHeaderLocation", "FIRST_ROW")
            if header_location not in ("FIRST_ROW", "GIVEN"):
                self.error(
                    SCHEMA, "CSVHeaderLocation must be FIRST_ROW or GIVEN", f"{where}/CSVHeaderLocation"
                )
            headers = config.get("CSVHeaders")
            if header_location == "GIVEN" and (
                not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers)
            ):
                self.error(
                    SCHEMA, "CSVHeaderLocation GIVEN needs CSVHeaders, a non-empty list of strings", where
                )
            if header_location == "FIRST_ROW" and "CSVHeaders" in config:
                self.error(SCHEMA, "CSVHeaders is only allowed with CSVHeaderLocation GIVEN", where)
        elif "CSVHeaderLocation" in config or "CSVHeaders" in config or "CSVDelimiter" in config:
            self.error(
                SCHEMA, "CSVHeaderLocation, CSVHeaders and CSVDelimiter are only allowed for CSV", where
            )
        if config.get("CSVDelimiter", "COMMA") not in ("COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB"):
            self.error(
                SCHEMA, "CSVDelimiter must be COMMA, PIPE, SEMICOLON, SPACE or TAB", f"{where}/CSVDelimiter"
            )
        if "ItemsPointer" in config and input_type != "JSON":
            self.error(SCHEMA, "ItemsPointer is only allowed for InputType JSON", f"{where}/ItemsPointer")
        elif "ItemsPointer" in config and not (
            is_pointer(config["ItemsPointer"]) or is_expression(config["ItemsPointer"])
        ):
            # AWS's wording is UNCONFIRMED; RFC 6901 is the rule ("/a/b", or "" for the whole document).
            self.error(
                SCHEMA, "ItemsPointer must be a JSON Pointer such as /data/rows", f"{where}/ItemsPointer"
            )
        self.exclusive(config, "MaxItems", "MaxItemsPath", where)
        self.integer(config, "MaxItems", 0, 100000000, where)
        self.path(config, "MaxItemsPath", where, reference=True)

    def reader_parameters(self, api: str | None, parameters: Any, location: str) -> None:
        """Refuse a request field the local reader would not send: never run a different read silently.

        The fields AWS documents are Bucket, Key and VersionId (getObject), Bucket and Prefix (listObjectsV2);
        whether it passes on other fields of the S3 request (StartAfter, Range...) is UNCONFIRMED.

        :param api: ``s3:getObject`` or ``s3:listObjectsV2`` (anything else was refused already).
        :param parameters: the ItemReader's ``Parameters`` or ``Arguments``.
        :param location: where they are in the definition.
        """
        allowed = _READER_PARAMETERS.get(api or "")
        if allowed is None or not isinstance(parameters, dict):
            return
        for name in parameters:
            plain = name.removesuffix(".$") if not self.jsonata else name
            if plain not in allowed:
                self.error(
                    UNSUPPORTED,
                    f"The ItemReader field '{plain}' is not one the local reader sends to {api} "
                    f"({', '.join(sorted(allowed))}): check its spelling, or leave it out to run locally",
                    f"{location}/{name}",
                )

    def item_batcher(self, batcher: Any, location: str) -> None:
        if not isinstance(batcher, dict):
            self.error(SCHEMA, "'ItemBatcher' must be an object", location)
            return
        known = {
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
        }
        for field in batcher:
            if field not in known | {"BatchInput"}:
                self.error(
                    SCHEMA, f"The field '{field}' is not supported in ItemBatcher", f"{location}/{field}"
                )
        if not known & set(batcher):
            self.error(
                SCHEMA, "ItemBatcher needs MaxItemsPerBatch(Path) or MaxInputBytesPerBatch(Path)", location
            )
        self.exclusive(batcher, "MaxItemsPerBatch", "MaxItemsPerBatchPath", location)
        self.exclusive(batcher, "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath", location)
        self.integer(batcher, "MaxItemsPerBatch", 1, _MAX_INT, location)
        self.integer(batcher, "MaxInputBytesPerBatch", 1, 262144, location)
        self.path(batcher, "MaxItemsPerBatchPath", location, reference=True)
        self.path(batcher, "MaxInputBytesPerBatchPath", location, reference=True)
        if "BatchInput" in batcher:
            self.template(batcher["BatchInput"], f"{location}/BatchInput")

    def result_writer(self, writer: Any, location: str) -> None:
        if not isinstance(writer, dict) or not writer:
            self.error(SCHEMA, "'ResultWriter' must be a non-empty object", location)
            return
        for field in writer:
            if field == ("Parameters" if self.jsonata else "Arguments"):
                self.error(
                    SCHEMA, f"ResultWriter {field} is not supported in {self.language()} states", location
                )
            elif field not in ("Resource", "Parameters", "Arguments", "WriterConfig"):
                self.error(
                    SCHEMA, f"The field '{field}' is not supported in ResultWriter", f"{location}/{field}"
                )
        arguments_field = "Arguments" if self.jsonata else "Parameters"
        if ("Resource" in writer) != (arguments_field in writer):
            self.error(SCHEMA, "ResultWriter needs both Resource and Parameters, or neither", location)
        if "Resource" in writer and integration_api(writer["Resource"]) != "s3:putObject":
            self.error(
                SCHEMA, "ResultWriter Resource must be arn:aws:states:::s3:putObject", f"{location}/Resource"
            )
        parameters = writer.get(arguments_field)
        if parameters is not None:
            if not isinstance(parameters, dict) or not ({"Bucket", "Bucket.$"} & set(parameters)):
                self.error(SCHEMA, "ResultWriter Parameters need a Bucket", f"{location}/Parameters")
            else:
                self.template(parameters, f"{location}/Parameters")
        config = writer.get("WriterConfig")
        if config is not None:
            if not isinstance(config, dict):
                self.error(SCHEMA, "'WriterConfig' must be an object", f"{location}/WriterConfig")
                return
            if config.get("Transformation", "NONE") not in ("NONE", "COMPACT", "FLATTEN"):
                self.error(SCHEMA, "WriterConfig Transformation must be NONE, COMPACT or FLATTEN", location)
            if config.get("OutputType", "JSON") not in ("JSON", "JSONL"):
                self.error(SCHEMA, "WriterConfig OutputType must be JSON or JSONL", location)
