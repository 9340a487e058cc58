"""Resolve a Distributed Map's numeric settings (literal, ``*Path`` or JSONata), with AWS's messages.

Recorded AWS behaviour (conformance corpus, spec sections 1.2, 2.4, 2.5):

- a ``*Path`` value that is not a number fails *before* the Map Run with ``States.Runtime`` and the cause
  ``An error occurred while executing the state 'S' (entered at the event id #N). The XPath field refers to
  value "V" which is not a valid integer: $.path``;
- a numeric string (``"2"``) is accepted as the number;
- ``ToleratedFailureCount`` below 0 -> ``ToleratedFailureCount cannot be negative.``;
  ``ToleratedFailurePercentage`` outside 0..100 -> ``ToleratedFailurePercentage must be between 0 and 100.``;
- a negative ``MaxItems`` fails *inside* the Map Run (``States.ItemReaderFailed``, "field MaxItems must be
  positive"); ``0`` means no limit and values above 100,000,000 are clipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from airflow_distmap.local.asl.io import PAYLOAD_LIMIT
from airflow_distmap.local.asl.jsonata import is_expression
from airflow_distmap.local.errors import StatesError

MAX_ITEMS_CEILING: Final = 100_000_000
#: "If you don't specify a concurrency value or set it to zero, Step Functions ... runs 10,000 parallel child
#: workflow executions." (hard quota)
MAX_PARALLEL_CHILDREN: Final = 10_000

Evaluator = Callable[[Any], Any]
_N = TypeVar("_N", int, float)
"""Evaluates a path (``$.x``, ``$$.x``, ``$var``) or JSONata ``{% ... %}`` against the Map's input."""


def render_value(value: Any) -> str:
    """Render a value the way AWS quotes it in ``... refers to value "V" ...`` causes."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def runtime_error(
    state_name: str, entered_event_id: int, message: str, error: str = "States.Runtime"
) -> StatesError:
    """A ``States.Runtime`` error (or ``error``) with AWS's cause prefix naming the state and its entry.

    :param state_name: the Map state's name.
    :param entered_event_id: id of its ``MapStateEntered`` history event.
    :param message: the specific message.
    :param error: the error's name.
    """
    return StatesError(
        error,
        f"An error occurred while executing the state '{state_name}' "
        f"(entered at the event id #{entered_event_id}). {message}",
    )


def as_integer(value: Any) -> int | None:
    """Return ``value`` as an int when it is an integral number or numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    """Return ``value`` as a finite float when it is a number or numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


@dataclass
class FieldResolver:
    """Resolves ``X`` / ``XPath`` pairs of one state, raising AWS's ``States.Runtime`` errors.

    :param state_name: the Map state's name (for causes).
    :param entered_event_id: id of the ``MapStateEntered`` event (for causes).
    :param evaluate: evaluates a reference path or JSONata string against the Map's effective input.
    """

    state_name: str
    entered_event_id: int
    evaluate: Evaluator

    def raw(self, spec: Mapping[str, Any], field: str) -> tuple[Any, str | None]:
        """Return ``(value, path)``: the literal (JSONata evaluated) or the value ``XPath`` refers to."""
        path = spec.get(field + "Path")
        if isinstance(path, str):
            return self.evaluate(path), path
        value = spec.get(field)
        if isinstance(value, str) and value.startswith("{%"):
            return self.evaluate(value), None
        return value, None

    def error(self, message: str) -> StatesError:
        """A ``States.Runtime`` error for this state."""
        return runtime_error(self.state_name, self.entered_event_id, message)

    def refused(self, spec: Mapping[str, Any], field: str, message: str) -> StatesError:
        """The error for a value ``field`` cannot take.

        ``States.Runtime`` (AWS's recorded error for a literal or a ``*Path``), or
        ``States.QueryEvaluationError`` when a JSONata expression computed it (the ASL specification's example
        of that error is a ToleratedFailurePercentage expression out of range).

        :param spec: the object holding the field (the state, its ItemBatcher...).
        :param field: the field's name.
        :param message: what is wrong with its value.
        """
        value = spec.get(field)
        if is_expression(value):
            return runtime_error(
                self.state_name,
                self.entered_event_id,
                f"The JSONata expression '{value}' specified for the field '{field}' returned a value the "
                f"field does not take: {message}",
                "States.QueryEvaluationError",
            )
        return self.error(message)

    def integer(self, spec: Mapping[str, Any], field: str) -> int | None:
        """Resolve an integer field; ``None`` when absent."""
        return self._converted(spec, field, as_integer, "integer")

    def number(self, spec: Mapping[str, Any], field: str) -> float | None:
        """Resolve a float field; ``None`` when absent."""
        return self._converted(spec, field, as_float, "float")

    def _converted(
        self, spec: Mapping[str, Any], field: str, convert: Callable[[Any], _N | None], kind: str
    ) -> _N | None:
        """Resolve ``field`` (or ``<field>Path``) and convert it; AWS's message when it is not a ``kind``."""
        value, path = self.raw(spec, field)
        if value is None and path is None:
            return None
        converted = convert(value)
        if converted is None and path is None:
            raise self.refused(spec, field, f'"{render_value(value)}" is not a valid {kind}.')
        if converted is None:
            raise self.error(
                f'The {field}Path field refers to value "{render_value(value)}" which is not a valid {kind}: '
                f"{path}"
            )
        return converted


@dataclass(frozen=True)
class Tolerance:
    """Tolerated failures of a Map Run; ``None`` fields are unset (both unset = no failure tolerated)."""

    count: int | None
    percentage: float | None

    def breached(self, failed_items: int, total_items: int | None) -> bool:
        """Whether ``failed_items`` exceeds the threshold (strictly greater, as AWS words it).

        :param failed_items: failed, timed-out and aborted-by-failure items so far.
        :param total_items: the run's total item count, or ``None`` while still reading (percentage waits).
        """
        if self.count is None and self.percentage is None:
            return failed_items > 0
        if self.count is not None and failed_items > self.count:
            return True
        if self.percentage is not None and total_items:
            return failed_items * 100.0 / total_items > self.percentage
        # While the total is unknown only 0 % is decided: one failure exceeds it however many items follow.
        return self.percentage == 0 and failed_items > 0


def resolve_tolerance(resolver: FieldResolver, state: Mapping[str, Any]) -> Tolerance:
    """Resolve ``ToleratedFailureCount[Path]`` and ``ToleratedFailurePercentage[Path]``."""
    count = resolver.integer(state, "ToleratedFailureCount")
    if count is not None and count < 0:
        raise resolver.refused(state, "ToleratedFailureCount", "ToleratedFailureCount cannot be negative.")
    percentage = resolver.number(state, "ToleratedFailurePercentage")
    if percentage is not None and not 0 <= percentage <= 100:
        raise resolver.refused(
            state, "ToleratedFailurePercentage", "ToleratedFailurePercentage must be between 0 and 100."
        )
    return Tolerance(count, percentage)


def resolve_max_concurrency(resolver: FieldResolver, state: Mapping[str, Any]) -> int:
    """Resolve ``MaxConcurrency[Path]``: 0 or absent = unlimited, which AWS caps at 10,000 children."""
    value = resolver.integer(state, "MaxConcurrency")
    if value is None or value == 0:
        return 0
    if value < 0:
        # UNCONFIRMED wording for a negative MaxConcurrencyPath; mirrors the ToleratedFailureCount message.
        raise resolver.refused(state, "MaxConcurrency", "MaxConcurrency cannot be negative.")
    return value


def effective_concurrency(max_concurrency: int) -> int:
    """The number of children allowed to run at once for a declared ``maxConcurrency``."""
    if max_concurrency <= 0:
        return MAX_PARALLEL_CHILDREN
    return min(max_concurrency, MAX_PARALLEL_CHILDREN)


def resolve_max_items(resolver: FieldResolver, reader_config: Mapping[str, Any]) -> int | None:
    """Resolve ``ReaderConfig.MaxItems[Path]`` into a limit (``None`` = all items).

    A non-integer raises ``States.Runtime`` (before the Map Run); a negative value is returned as is
    and the Map Run fails with :func:`check_max_items`.
    """
    value = resolver.integer(reader_config, "MaxItems")
    if value is None or value == 0:
        return None
    return min(value, MAX_ITEMS_CEILING) if value > 0 else value


def check_max_items(limit: int | None) -> None:
    """Fail the Map Run like AWS when ``MaxItems`` is negative."""
    if limit is not None and limit < 0:
        raise StatesError("States.ItemReaderFailed", "field MaxItems must be positive")


@dataclass(frozen=True)
class BatchLimits:
    """Resolved ``ItemBatcher`` limits."""

    max_items: int | None
    max_bytes: int


def resolve_batching(resolver: FieldResolver, batcher: Mapping[str, Any]) -> BatchLimits:
    """Resolve ``MaxItemsPerBatch[Path]`` and ``MaxInputBytesPerBatch[Path]`` (default/ceiling 256 KiB)."""
    max_items = resolver.integer(batcher, "MaxItemsPerBatch")
    if max_items is not None and max_items <= 0:
        raise resolver.refused(batcher, "MaxItemsPerBatch", "MaxItemsPerBatch must be positive.")
    max_bytes = resolver.integer(batcher, "MaxInputBytesPerBatch")
    if max_bytes is not None and max_bytes <= 0:
        raise resolver.refused(batcher, "MaxInputBytesPerBatch", "MaxInputBytesPerBatch must be positive.")
    return BatchLimits(max_items, min(max_bytes or PAYLOAD_LIMIT, PAYLOAD_LIMIT))
