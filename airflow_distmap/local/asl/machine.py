"""The ASL interpreter: compile a state machine definition once, run it many times.

Each state is compiled into an object whose ``execute(raw_input, run)`` returns ``(output, next_state_name)``
(``None`` = the machine ends) or raises :class:`StatesError`. Processing order is AWS's: InputPath ->
Parameters -> (work) -> ResultSelector -> ResultPath -> OutputPath, with Retry then Catch around the work.
History events are built only when an :class:`EventSink` is given (the parent execution); children run with
``events=None`` and pay one integer increment per event instead.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_distmap.local.asl.choice import compile_rule, parse_timestamp
from airflow_distmap.local.asl.intrinsics import compile_intrinsic, is_intrinsic
from airflow_distmap.local.asl.io import (
    PAYLOAD_LIMIT,
    apply_result_path,
    compile_optional_path,
    iso_now,
    select,
)
from airflow_distmap.local.asl.jsonata import JsonataTemplate, make_bindings
from airflow_distmap.local.asl.paths import (
    MISSING,
    ContextDict,
    PathRuntimeError,
    compile_path,
    field_path_getter,
    to_json,
    variables_of,
)
from airflow_distmap.local.asl.protocols import EventSink, Services
from airflow_distmap.local.asl.retry import UNCATCHABLE_ERRORS, Catcher, RetryPolicy, find_catcher
from airflow_distmap.local.asl.tasks import compile_task_resource
from airflow_distmap.local.asl.templates import CompiledTemplate
from airflow_distmap.local.errors import StatesError

_NOT_TRUNCATED = {"truncated": False}


class _History:
    """The event sink of one execution plus the running event id (for "entered at the event id #N")."""

    __slots__ = ("events", "last_id")

    def __init__(self, events: EventSink | None, last_id: int = 1) -> None:
        self.events = events
        self.last_id = last_id  # ExecutionStarted is event 1, recorded by the service before run()

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> int:
        self.last_id += 1
        if self.events is not None:
            self.events.record(event_type, details)
        return self.last_id

    def replayed_result(self) -> tuple[str, str] | None:
        """The first attempt's next Lambda result while a redrive replays (``History.replayed_result``)."""
        replayed = getattr(self.events, "replayed_result", None)
        return replayed() if replayed is not None else None


class _CountingSink:
    """Passed to the Distributed Map runtime so that its events (MapRunStarted...) advance our event ids.

    ``entered_event_id`` is the id of the Map state's ``MapStateEntered`` event, for AWS's
    "An error occurred while executing the state 'X' (entered at the event id #N)" causes.
    """

    __slots__ = ("_history", "entered_event_id")

    def __init__(self, history: _History, entered_event_id: int) -> None:
        self._history = history
        self.entered_event_id = entered_event_id

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> None:
        self._history.record(event_type, details)


class _Run:
    """Per-execution (or per inline iteration / branch) state shared by the states it runs."""

    __slots__ = ("context", "history", "services", "variables")

    def __init__(
        self,
        services: Services,
        history: _History,
        context: Mapping[str, Any],
        variables: dict[str, Any] | None,
    ) -> None:
        self.services = services
        self.history = history
        self.variables = variables
        self.context: Mapping[str, Any] = context if variables is None else ContextDict(context, variables)


def _prefixed(state_name: str, entered_id: int, error: PathRuntimeError) -> StatesError:
    return StatesError(
        "States.Runtime",
        f"An error occurred while executing the state '{state_name}' (entered at the event id "
        f"#{entered_id}). "
        f"{error.cause}",
    )


#: Fields holding state machines of their own, compiled apart from the state that holds them.
_NESTED_MACHINES = frozenset({"ItemProcessor", "Iterator", "Branches"})
#: ``$$.State``, or the whole context object (a bare ``$$``, as an intrinsic's argument too).
_STATE_CONTEXT_RE = re.compile(r"\$\$(?:\.State\b|\['State'\]|\[\"State\"\]|\s*(?:[,)]|$))")


def _reads_state_context(value: Any) -> bool:
    """Whether any string in a state's fields reads ``$$.State``, which is built per state only if so."""
    if isinstance(value, str):
        return _STATE_CONTEXT_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_reads_state_context(item) for item in value.values())
    if isinstance(value, list):
        return any(_reads_state_context(item) for item in value)
    return False


class _State:
    """Fields and I/O processing common to every state type."""

    type_name = ""

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        self.name = name
        self.spec = spec
        self.jsonata = jsonata
        self.next: str | None = spec.get("Next")
        self.entered_event = f"{self.type_name}StateEntered"
        self.exited_event = f"{self.type_name}StateExited"
        self.has_assign = "Assign" in spec
        self.arguments: JsonataTemplate | None = None
        self.output: JsonataTemplate | None = None
        self.assign_jsonata: JsonataTemplate | None = None
        if jsonata:
            self._init_jsonata(spec)
            return
        self.input_path = compile_optional_path(spec, "InputPath")
        self.output_path = compile_optional_path(spec, "OutputPath")
        self.result_path = compile_optional_path(spec, "ResultPath")
        parameters = spec.get("Parameters")
        self.parameters = CompiledTemplate(parameters) if parameters is not None else None
        selector = spec.get("ResultSelector")
        self.result_selector = CompiledTemplate(selector) if selector is not None else None
        assign = spec.get("Assign")
        self.assign = CompiledTemplate(assign) if assign is not None else None
        # Any field that reads the context object (a path, a Choice rule, a template) sees $$.State too.
        self.uses_state_context = _reads_state_context(
            {key: value for key, value in spec.items() if key not in _NESTED_MACHINES}
        )

    def _init_jsonata(self, spec: Mapping[str, Any]) -> None:
        self.input_path = self.output_path = self.result_path = None
        self.parameters = self.result_selector = self.assign = None
        self.arguments = JsonataTemplate(spec["Arguments"], "Arguments") if "Arguments" in spec else None
        self.output = JsonataTemplate(spec["Output"], "Output") if "Output" in spec else None
        self.assign_jsonata = JsonataTemplate(spec["Assign"], "Assign") if "Assign" in spec else None
        self.uses_state_context = True

    # -- helpers ---------------------------------------------------------------------------------------------
    def _bindings(self, run: _Run, raw: Any, context: Mapping[str, Any], **states: Any) -> dict[str, Any]:
        return make_bindings(raw, context, run.variables, **states)

    def _inputs(self, raw: Any, context: Mapping[str, Any], run: _Run) -> Any:
        """The effective input: InputPath then Parameters (JSONPath), or Arguments (JSONata)."""
        if self.jsonata:
            if self.arguments is None:
                return raw
            return self.arguments.evaluate(self._bindings(run, raw, context))
        data = select(self.input_path, raw, context) if self.input_path is not None else raw
        if self.parameters is not None:
            data = self.parameters.evaluate(data, context)
        return data

    def _finish(
        self, raw: Any, result: Any, context: Mapping[str, Any], run: _Run
    ) -> tuple[Any, dict[str, Any] | None]:
        """The output: ResultSelector, Assign, ResultPath, OutputPath (JSONPath), or Assign and Output.

        Assignments are evaluated with the variables as the state found them and take effect only once its
        output is made: an output that fails leaves the variables as they were (a redrive runs it again).

        :return: the output, and the variables the state assigned (``None`` without ``Assign``).
        """
        assigned: dict[str, Any] | None = None
        if self.jsonata:
            bindings = self._bindings(run, raw, context, result=result)
            if self.assign_jsonata is not None and run.variables is not None:
                assigned = self.assign_jsonata.evaluate(bindings)
            output = self.output.evaluate(bindings) if self.output is not None else result
        else:
            if self.result_selector is not None:
                result = self.result_selector.evaluate(result, context)
            if self.assign is not None and run.variables is not None:
                # UNCONFIRMED: which value "$" means inside a JSONPath Assign; we use the state's result where
                # it has one (Task, Map, Parallel, Pass with Result) and its effective input otherwise.
                assigned = self.assign.evaluate(result, context)
            output = (
                apply_result_path(self.result_path, raw, result) if self.result_path is not None else result
            )
            if self.output_path is not None:
                output = select(self.output_path, output, context)
        if assigned and run.variables is not None:
            run.variables.update(assigned)
        return output, assigned

    def _context(self, run: _Run, entered_time: str, retry_count: int = 0) -> Mapping[str, Any]:
        """The context object with ``State`` filled in; only built when a template reads ``$$``."""
        if not self.uses_state_context:
            return run.context
        context = ContextDict(run.context, variables_of(run.context), self.jsonata)
        context["State"] = {"Name": self.name, "EnteredTime": entered_time, "RetryCount": retry_count}
        return context

    def _enter(self, run: _Run, raw: Any) -> int:
        history = run.history
        if history.events is None:
            history.last_id += 1
            return history.last_id
        return history.record(
            self.entered_event, {"name": self.name, "input": to_json(raw), "inputDetails": _NOT_TRUNCATED}
        )

    def _exit(self, run: _Run, output: Any, assigned: Mapping[str, Any] | None = None) -> None:
        history = run.history
        if history.events is None:
            history.last_id += 1
            return
        text = to_json(output)
        # The parent already serialises each output for its history, so it enforces AWS's 256 KiB payload
        # quota per state; children (no history) are checked by the Map runtime on their inputs and outputs.
        if len(text) > PAYLOAD_LIMIT // 4 and len(text.encode()) > PAYLOAD_LIMIT:
            raise StatesError(
                "States.DataLimitExceeded",
                f"The state/task '{self.name}' returned a result with a size exceeding the maximum number of "
                f"bytes service limit ({PAYLOAD_LIMIT} bytes).",
            )
        details: dict[str, Any] = {"name": self.name, "output": text, "outputDetails": _NOT_TRUNCATED}
        if assigned is not None:
            # As AWS records it: each value as JSON text (conformance: assign_reference_in_map_state_*).
            details["assignedVariables"] = {name: to_json(value) for name, value in assigned.items()}
            details["assignedVariablesDetails"] = _NOT_TRUNCATED
        history.record(self.exited_event, details)

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        """Run the state on its raw input; returns ``(output, next state name or None)``."""
        raise NotImplementedError


class _PassState(_State):
    type_name = "Pass"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        self.has_result = "Result" in spec
        self.result = spec.get("Result")

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        try:
            context = self._context(run, iso_now()) if self.uses_state_context else run.context
            data = self._inputs(raw, context, run)
            output, assigned = self._finish(raw, self.result if self.has_result else data, context, run)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        self._exit(run, output, assigned)
        return output, self.next


class _SucceedState(_State):
    type_name = "Succeed"

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        try:
            context = self._context(run, iso_now()) if self.uses_state_context else run.context
            output, assigned = self._finish(raw, select(self.input_path, raw, context), context, run)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        self._exit(run, output, assigned)
        return output, None


class _FailState(_State):
    type_name = "Fail"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        self.error = _StringField(spec, "Error", jsonata)
        self.cause = _StringField(spec, "Cause", jsonata)

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        try:
            context = self._context(run, iso_now()) if self.uses_state_context else run.context
            bindings = self._bindings(run, raw, context) if self.jsonata else None
            error = self.error.value(raw, context, bindings)
            cause = self.cause.value(raw, context, bindings)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        raise StatesError(error, cause)


class _StringField:
    """``Error``/``ErrorPath`` or ``Cause``/``CausePath`` of a Fail state (a Path may be an intrinsic)."""

    def __init__(self, spec: Mapping[str, Any], field: str, jsonata: bool) -> None:
        self.constant: str = spec.get(field, "")
        path = spec.get(f"{field}Path")
        name = f"{field}Path"  # AWS names the field without ".$" in a missing path's cause
        self.getter = (
            None
            if path is None
            else (compile_intrinsic(path, name) if is_intrinsic(path) else field_path_getter(name, path))
        )
        self.expression = JsonataTemplate(self.constant, field) if jsonata else None
        self.field = field

    def value(self, data: Any, context: Mapping[str, Any], bindings: dict[str, Any] | None) -> str:
        if self.expression is not None and bindings is not None and not self.expression.is_constant:
            value = self.expression.evaluate(bindings)
            return value if isinstance(value, str) else to_json(value)
        if self.getter is None:
            return self.constant
        value = self.getter(data, context)
        if not isinstance(value, str):
            raise PathRuntimeError(
                f"The {self.field}Path field refers to value {to_json(value)} which is not a valid string"
            )
        return value


class _ChoiceState(_State):
    type_name = "Choice"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        rules = spec.get("Choices", [])
        self.choices = [] if jsonata else [(compile_rule(rule), rule["Next"]) for rule in rules]
        self.conditions = (
            [(JsonataTemplate(r["Condition"], "Condition"), r["Next"]) for r in rules] if jsonata else []
        )
        self.default: str | None = spec.get("Default")

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        context = self._context(run, iso_now()) if self.uses_state_context else run.context
        try:
            data = select(self.input_path, raw, context)
            target = self.default
            for predicate, next_name in self.choices:
                if predicate(data, context):
                    target = next_name
                    break
            if self.conditions:
                bindings = self._bindings(run, raw, context)
                for index, (condition, next_name) in enumerate(self.conditions):
                    matched = condition.evaluate(bindings)
                    if not isinstance(matched, bool):
                        # A value of a type the field does not take (ASL specification, JSONata runtime
                        # errors); the cause's wording is UNCONFIRMED.
                        raise StatesError(
                            "States.QueryEvaluationError",
                            f"The Condition of Choice rule {index} of state '{self.name}' evaluated to "
                            f"{to_json(matched)}, not to true or false",
                        )
                    if matched:
                        target = next_name
                        break
            if target is None:
                # UNCONFIRMED: AWS's cause text for an unmatched Choice without Default.
                raise StatesError(
                    "States.NoChoiceMatched",
                    f"No Choice rule of state '{self.name}' matched and it has no Default",
                )
            output, assigned = self._finish(raw, data, context, run)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        self._exit(run, output, assigned)
        return output, target


class _WaitState(_State):
    type_name = "Wait"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        self.seconds = spec.get("Seconds")
        self.seconds_path = compile_path(spec["SecondsPath"]) if "SecondsPath" in spec else None
        self.timestamp = spec.get("Timestamp")
        self.timestamp_path = compile_path(spec["TimestampPath"]) if "TimestampPath" in spec else None

    def _delay(self, data: Any, context: Mapping[str, Any], run: _Run) -> float:
        if self.jsonata:
            bindings = self._bindings(run, data, context)
            if self.seconds is not None:
                seconds = JsonataTemplate(self.seconds, "Seconds").evaluate(bindings)
                if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                    raise StatesError(
                        "States.QueryEvaluationError",
                        f"Seconds must be a non-negative integer, not {seconds}",
                    )
                return float(seconds)
            timestamp = JsonataTemplate(self.timestamp, "Timestamp").evaluate(bindings)
            moment = parse_timestamp(timestamp) if isinstance(timestamp, str) else None
            if moment is None:
                raise StatesError(
                    "States.QueryEvaluationError", f"Timestamp is not a valid timestamp: {timestamp}"
                )
            return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
        if self.seconds is not None:
            return float(self.seconds)
        # The causes below are AWS's recorded ones.
        if self.seconds_path is not None:
            path = self.spec["SecondsPath"]
            value = self.seconds_path.find(data, context)
            if value is MISSING:
                raise PathRuntimeError(f"The SecondsPath parameter does not reference an input value: {path}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise PathRuntimeError(
                    f"The SecondsPath parameter cannot be parsed as a long value: {path} == {to_json(value)}"
                )
            if value < 0:
                raise PathRuntimeError(
                    f"The SecondsPath parameter references a negative value: {path} == {value}"
                )
            return float(value)
        text = self.timestamp if self.timestamp is not None else select(self.timestamp_path, data, context)
        moment = parse_timestamp(text) if isinstance(text, str) else None
        if moment is None:
            shown = text if isinstance(text, str) else to_json(text)
            raise PathRuntimeError(
                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time "
                f"format string: {self.spec.get('TimestampPath', 'Timestamp')} == {shown}"
            )
        return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        try:
            context = self._context(run, iso_now()) if self.uses_state_context else run.context
            data = select(self.input_path, raw, context)
            delay = self._delay(data, context, run)
            output, assigned = self._finish(raw, data, context, run)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        if delay > 0:
            await asyncio.sleep(delay)
        self._exit(run, output, assigned)
        return output, self.next


class _WorkState(_State):
    """A state that does work that can fail and be retried or caught: Task, Map, Parallel."""

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        self.retry = RetryPolicy(spec.get("Retry", []))
        self.catchers = tuple(Catcher(catcher) for catcher in spec.get("Catch", []))
        self.catcher_templates = [
            (
                JsonataTemplate(c["Output"], "Output") if "Output" in c else None,
                JsonataTemplate(c["Assign"], "Assign") if "Assign" in c else None,
            )
            for c in spec.get("Catch", [])
        ]
        self.has_retry = bool(self.retry.retriers)

    async def work(
        self, raw: Any, effective: Any, context: Mapping[str, Any], run: _Run, entered: int
    ) -> Any:
        """Do the state's work on its effective input (``raw``: the state's input); return the raw result."""
        raise NotImplementedError

    async def execute(self, raw: Any, run: _Run) -> tuple[Any, str | None]:
        entered = self._enter(run, raw)
        try:
            entered_time = iso_now() if self.uses_state_context else ""
            context = self._context(run, entered_time)
            # JSONPath: Parameters that fail are States.Runtime, which nothing catches, so they are evaluated
            # once, here. JSONata: an Arguments, Output or Assign expression that fails raises
            # States.QueryEvaluationError, which the state's Retry and Catch handle as any error of the state
            # (the ASL specification, JSONata runtime errors), so each attempt evaluates them again.
            effective = None if self.jsonata else self._inputs(raw, context, run)
            counters = [0] * len(self.retry.retriers) if self.has_retry else []
            retries = 0
            while True:
                try:
                    if self.jsonata:
                        effective = self._inputs(raw, context, run)
                    result = await self.work(raw, effective, context, run, entered)
                    if self.jsonata:
                        output, assigned = self._finish(raw, result, context, run)
                    break
                except PathRuntimeError:
                    raise
                except StatesError as error:
                    if error.error in UNCATCHABLE_ERRORS:
                        raise
                    delay = self.retry.next_delay(error.error, counters) if self.has_retry else None
                    if delay is None:
                        return self._catch(error, raw, context, run)
                    retries += 1
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self.uses_state_context:
                        # $$.State.RetryCount changed: Parameters are evaluated again for the new attempt.
                        context = self._context(run, entered_time, retries)
                        if not self.jsonata:
                            effective = self._inputs(raw, context, run)
            if not self.jsonata:
                output, assigned = self._finish(raw, result, context, run)
        except PathRuntimeError as exc:
            raise _prefixed(self.name, entered, exc) from None
        self._exit(run, output, assigned)
        return output, self.next

    def _catch(
        self, error: StatesError, raw: Any, context: Mapping[str, Any], run: _Run
    ) -> tuple[Any, str | None]:
        catcher = find_catcher(self.catchers, error.error) if self.catchers else None
        if catcher is None:
            raise error
        error_output = {"Error": error.error, "Cause": error.cause}
        if self.jsonata:
            output_template, assign = self.catcher_templates[self.catchers.index(catcher)]
            bindings = self._bindings(run, raw, context, errorOutput=error_output)
            assigned = None
            if assign is not None and run.variables is not None:
                assigned = assign.evaluate(bindings)
                run.variables.update(assigned)
            output = output_template.evaluate(bindings) if output_template is not None else error_output
            self._exit(run, output, assigned)
            return output, catcher.next
        output = apply_result_path(catcher.result_path, raw, error_output)
        self._exit(run, output)
        return output, catcher.next


class _TaskState(_WorkState):
    type_name = "Task"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        self.resource = compile_task_resource(spec["Resource"])
        timeout = spec.get("TimeoutSeconds")
        # A JSONata TimeoutSeconds expression is rejected by validation; never crash compiling it.
        self.timeout = float(timeout) if isinstance(timeout, int | float) else None
        self.timeout_path = compile_path(spec["TimeoutSecondsPath"]) if "TimeoutSecondsPath" in spec else None

    async def work(
        self, raw: Any, effective: Any, context: Mapping[str, Any], run: _Run, entered: int
    ) -> Any:
        timeout = self.timeout
        if self.timeout_path is not None:
            # A reference path into the state's input (after InputPath), not into what Parameters made of it:
            # AWS's recorded run reads it from the input of a Task whose Parameters drop it.
            value = select(self.timeout_path, select(self.input_path, raw, context), context)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PathRuntimeError(
                    "The TimeoutSecondsPath parameter does not reference a valid positive integer: "
                    f"{to_json(value)}"
                )
            timeout = float(value)
        history = run.history if run.history.events is not None else None
        if timeout is None:
            return await self.resource.invoke(effective, run.services, history)
        try:
            async with asyncio.timeout(timeout):
                return await self.resource.invoke(effective, run.services, history)
        except TimeoutError:
            self.resource.timed_out(history)
            raise StatesError("States.Timeout", "") from None


class _MapState(_WorkState):
    type_name = "Map"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        processor = spec.get("ItemProcessor") or spec.get("Iterator") or {}
        mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
        self.distributed = mode == "DISTRIBUTED"
        self.items_path = compile_optional_path(spec, "ItemsPath")
        self.has_reader = "ItemReader" in spec
        # In a Map state "Parameters" is the legacy name of ItemSelector: it applies per item.
        selector = spec.get("ItemSelector", spec.get("Parameters"))
        self.item_selector = CompiledTemplate(selector) if selector is not None and not jsonata else None
        self.item_selector_jsonata = (
            JsonataTemplate(selector, "ItemSelector") if selector is not None and jsonata else None
        )
        self.items_jsonata = JsonataTemplate(spec["Items"], "Items") if jsonata and "Items" in spec else None
        self.parameters = None
        concurrency = spec.get("MaxConcurrency", 0)
        # A JSONata expression is evaluated by the Distributed Map runtime (INLINE: rejected by validation).
        self.max_concurrency = int(concurrency) if isinstance(concurrency, int | float) else 0
        self.max_concurrency_path = (
            compile_path(spec["MaxConcurrencyPath"]) if "MaxConcurrencyPath" in spec else None
        )
        language = "JSONata" if jsonata else "JSONPath"
        self.processor = None if self.distributed else compile_state_machine(processor, language)
        self.definition = dict(spec)
        if jsonata and "QueryLanguage" not in processor:
            # The processor inherits the Map's query language; the Distributed Map runtime compiles it alone.
            self.definition["ItemProcessor"] = {**processor, "QueryLanguage": language}
        if self.distributed:
            # ItemReader, ItemBatcher/BatchInput and ResultWriter may read $$.State (e.g. EnteredTime).
            self.uses_state_context = True

    def _items(self, effective: Any, context: Mapping[str, Any], run: _Run) -> list[tuple[Any, Any]]:
        """``(key or None, value)`` pairs from ItemsPath/Items: array elements or an object's entries."""
        if self.items_jsonata is not None:
            items = self.items_jsonata.evaluate(self._bindings(run, effective, context))
        else:
            items = select(self.items_path, effective, context)
        if isinstance(items, list):
            return [(None, item) for item in items]
        if isinstance(items, dict):
            return list(items.items())
        if self.items_jsonata is not None:  # a value of a type the field does not take
            raise StatesError(
                "States.QueryEvaluationError",
                f"The JSONata expression specified for the field 'Items' of state '{self.name}' returned "
                f"{to_json(items)}, not an array or an object",
            )
        path = self.spec.get("ItemsPath", "$")
        raise PathRuntimeError(
            f"Invalid path '{path}': The ItemsPath field must refer to a JSON array or object, not "
            f"{to_json(items)}"
        )

    async def work(
        self, raw: Any, effective: Any, context: Mapping[str, Any], run: _Run, entered: int
    ) -> Any:
        history = run.history
        if self.distributed:
            length = 0 if self.has_reader else len(self._items(effective, context, run))
            history.record("MapStateStarted", {"length": length})
            sink = _CountingSink(history, entered) if history.events is not None else None
            try:
                result = await run.services.run_distributed_map(
                    self.name, self.definition, effective, context, sink
                )
            except StatesError as error:
                if error.error != "States.Runtime":
                    history.record("MapStateFailed")
                raise
            history.record("MapStateSucceeded")
            return result
        items = self._items(effective, context, run)
        history.record("MapStateStarted", {"length": len(items)})
        try:
            result = await self._run_inline(items, effective, context, run)
        except StatesError as error:
            if error.error != "States.Runtime":
                history.record("MapStateFailed")
            raise
        history.record("MapStateSucceeded")
        return result

    def _concurrency(self, effective: Any, context: Mapping[str, Any]) -> int:
        if self.max_concurrency_path is None:
            return self.max_concurrency
        value = select(self.max_concurrency_path, effective, context)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PathRuntimeError(
                f"The MaxConcurrencyPath field refers to value {to_json(value)} which is not a valid "
                "integer: "
                f"{self.spec['MaxConcurrencyPath']}"
            )
        return value

    async def _run_inline(
        self, items: list[tuple[Any, Any]], effective: Any, context: Mapping[str, Any], run: _Run
    ) -> list[Any]:
        processor = self.processor
        assert processor is not None
        concurrency = self._concurrency(effective, context)
        limit = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        history = run.history
        recording = history.events is not None

        async def iteration(index: int, key: Any, value: Any) -> Any:
            if limit is not None:
                await limit.acquire()
            try:
                if self.item_selector is not None or self.item_selector_jsonata is not None:
                    item = (
                        {"Index": index, "Value": value}
                        if key is None
                        else {"Index": index, "Key": key, "Value": value}
                    )
                    item_context = ContextDict({**context, "Map": {"Item": item}}, variables_of(context))
                    if self.item_selector is not None:
                        value = self.item_selector.evaluate(effective, item_context)
                    else:
                        selector = self.item_selector_jsonata
                        assert selector is not None
                        value = selector.evaluate(self._bindings(run, effective, item_context))
                if recording:
                    history.record("MapIterationStarted", {"name": self.name, "index": index})
                variables = dict(run.variables) if run.variables is not None else None
                try:
                    output = await processor._execute(
                        value, _Run(run.services, history, run.context, variables)
                    )
                except StatesError as error:
                    if recording:
                        history.record("MapIterationFailed", {"name": self.name, "index": index})
                    raise error from None
                if recording:
                    history.record("MapIterationSucceeded", {"name": self.name, "index": index})
                return output
            finally:
                if limit is not None:
                    limit.release()

        tasks = [asyncio.ensure_future(iteration(i, key, value)) for i, (key, value) in enumerate(items)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


class _ParallelState(_WorkState):
    type_name = "Parallel"

    def __init__(self, name: str, spec: Mapping[str, Any], jsonata: bool = False) -> None:
        super().__init__(name, spec, jsonata)
        language = "JSONata" if jsonata else "JSONPath"
        self.branches = [compile_state_machine(branch, language) for branch in spec.get("Branches", [])]

    async def work(
        self, raw: Any, effective: Any, context: Mapping[str, Any], run: _Run, entered: int
    ) -> Any:
        history = run.history
        history.record("ParallelStateStarted")
        tasks = [
            asyncio.ensure_future(
                branch._execute(
                    effective,
                    _Run(
                        run.services,
                        history,
                        run.context,
                        dict(run.variables) if run.variables is not None else None,
                    ),
                )
            )
            for branch in self.branches
        ]
        try:
            results = list(await asyncio.gather(*tasks))
        except StatesError as error:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if error.error != "States.Runtime":
                history.record("ParallelStateFailed")
            raise
        history.record("ParallelStateSucceeded")
        return results


#: State types whose ``execute`` never suspends: a machine of only these runs to its end in one step.
_IMMEDIATE_TYPES: tuple[type[_State], ...] = (_PassState, _SucceedState, _FailState, _ChoiceState)

_STATE_TYPES: dict[str, type[_State]] = {
    "Pass": _PassState,
    "Succeed": _SucceedState,
    "Fail": _FailState,
    "Choice": _ChoiceState,
    "Wait": _WaitState,
    "Task": _TaskState,
    "Map": _MapState,
    "Parallel": _ParallelState,
}


class CompiledStateMachine:
    """A state machine definition parsed once; :meth:`run` executes it.

    :param definition: the definition (``StartAt``, ``States``); validate it first with
        :func:`airflow_distmap.local.asl.validation.validate_definition`.
    :raises ValueError: when the definition cannot be compiled.
    """

    def __init__(self, definition: Mapping[str, Any], query_language: str = "JSONPath") -> None:
        language = definition.get("QueryLanguage", query_language)
        if language not in ("JSONPath", "JSONata"):
            raise ValueError(f"QueryLanguage must be JSONPath or JSONata, not {language!r}")
        states = definition.get("States")
        if not isinstance(states, dict) or definition.get("StartAt") not in states:
            raise ValueError("The definition needs StartAt naming one of its States")
        self.states: dict[str, _State] = {}
        for name, spec in states.items():
            state_type = _STATE_TYPES.get(spec.get("Type"))
            if state_type is None:
                raise ValueError(f"State '{name}' has an unsupported Type {spec.get('Type')!r}")
            jsonata = spec.get("QueryLanguage", language) == "JSONata"
            self.states[name] = state_type(name, spec, jsonata)
        self.start = self.states[definition["StartAt"]]
        #: Whether every state is Pass, Choice, Succeed or Fail: :meth:`run_now` can run it without a loop.
        self.immediate = all(type(state) in _IMMEDIATE_TYPES for state in self.states.values())
        #: Whether an execution may read its context object (``$$``). A JSONPath machine of immediate states
        #: can only through a path starting with ``$$``; without one, the Distributed Map runtime gives its
        #: children an empty context instead of building one per child.
        self.reads_context = (
            not self.immediate
            or any(state.jsonata for state in self.states.values())
            or "$$" in json.dumps(definition)
        )
        self.uses_variables = any(
            state.has_assign
            or (isinstance(state, _WorkState) and any(a is not None for _, a in state.catcher_templates))
            for state in self.states.values()
        )

    async def run(
        self,
        input: Any,
        context: Mapping[str, Any],
        services: Services,
        events: EventSink | None = None,
        resume: ResumePoint | None = None,
    ) -> Any:
        """Execute the state machine.

        :param input: the execution input (a JSON value).
        :param context: the context object (``$$``): Execution, StateMachine, ... (``State`` is filled
            in here).
        :param services: the Lambda invoker and the Distributed Map runtime.
        :param events: the parent execution's history sink; ``None`` for child executions (no overhead).
        :param resume: go on from this state instead of ``StartAt`` (a redriven Map Run child, see
            :func:`resume_point`).
        :return: the execution output.
        :raises StatesError: when the execution fails (``error``/``cause`` as ``ExecutionFailed``
            reports them).
        """
        variables: dict[str, Any] | None = {} if self.uses_variables else None
        if resume is None:
            return await self._execute(input, _Run(services, _History(events), context, variables))
        if variables is not None and resume.variables is not None:
            variables = dict(resume.variables)
        run = _Run(services, _History(events), context, variables)
        return await self._execute(json.loads(resume.input_text), run, self.states[resume.state])

    def run_now(self, input: Any, context: Mapping[str, Any], services: Services) -> Any:
        """Execute an :attr:`immediate` state machine synchronously (no event loop, no task; no history).

        Its states never await anything that suspends, so driving :meth:`run`'s coroutine one step runs it to
        its end; the Distributed Map runtime uses this to run Pass-only children without an asyncio task each.

        :raises StatesError: when the execution fails.
        :raises RuntimeError: when the machine is not :attr:`immediate` and suspended.
        """
        coroutine = self.run(input, context, services, None)
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return finished.value
        coroutine.close()
        raise RuntimeError("run_now() needs a state machine whose states never wait")

    async def _execute(self, data: Any, run: _Run, state: _State | None = None) -> Any:
        if run.variables is None and self.uses_variables:
            run = _Run(run.services, run.history, run.context, {})
        state = state or self.start
        states = self.states
        while True:
            try:
                data, next_name = await state.execute(data, run)
            except (StatesError, asyncio.CancelledError) as error:
                # Where a redrive goes on. A branch's or an iteration's own point is overwritten on the way
                # out, so the point left is the state of the outermost machine; none at StartAt, whose input
                # is the execution's own (a redrive there is a restart).
                point = None if state is self.start else _resume_point(state.name, data, run.variables)
                setattr(error, _RESUME_ATTRIBUTE, point)
                raise
            if next_name is None:
                return data
            state = states[next_name]


_RESUME_ATTRIBUTE = "_distmap_resume_point"


def _resume_point(state: str, data: Any, variables: dict[str, Any] | None) -> ResumePoint | None:
    try:
        return ResumePoint(state, to_json(data), None if variables is None else dict(variables))
    except (TypeError, ValueError):  # never hide the error itself: a redrive then runs from StartAt
        return None


@dataclass(frozen=True)
class ResumePoint:
    """Where a failed or stopped execution stood: the state it was in, that state's input and the variables.

    :param state: the state's name.
    :param input_text: the state's input, JSON encoded (kept as text: it outlives the execution).
    :param variables: the variables in scope (``Assign``), or ``None`` when the machine has none.
    """

    state: str
    input_text: str
    variables: dict[str, Any] | None


def resume_point(error: BaseException) -> ResumePoint | None:
    """The state a failed or stopped run was in when ``error`` ended it (``None``: it never reached one).

    :param error: the ``StatesError`` or ``CancelledError`` that :meth:`CompiledStateMachine.run` raised.
    """
    point = getattr(error, _RESUME_ATTRIBUTE, None)
    return point if isinstance(point, ResumePoint) else None


def compile_state_machine(
    definition: Mapping[str, Any], query_language: str = "JSONPath"
) -> CompiledStateMachine:
    """Compile a state machine definition (or an ItemProcessor / Parallel branch) once.

    :param definition: the parsed definition.
    :param query_language: the language inherited from the enclosing definition when this one (an
        ItemProcessor or a branch) sets no ``QueryLanguage``.
    :raises ValueError: when the definition cannot be compiled.
    """
    return CompiledStateMachine(definition, query_language)
