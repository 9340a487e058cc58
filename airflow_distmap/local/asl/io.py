"""Input and output processing of a state: InputPath, ResultPath, OutputPath.

Parameters and ResultSelector are payload templates, see :mod:`airflow_distmap.local.asl.templates`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from airflow_distmap.local.asl.paths import (
    MISSING,
    Path,
    PathRuntimeError,
    compile_path,
    missing_path_cause,
    to_json,
)
from airflow_distmap.local.errors import StatesError

#: AWS's payload quota for state and task input and output: 256 KiB of UTF-8.
PAYLOAD_LIMIT = 262_144
#: The cause of ``States.DataLimitExceeded`` for a result over :data:`PAYLOAD_LIMIT`.
OUTPUT_TOO_LARGE_CAUSE = (
    "The state/task returned a result with a size exceeding the maximum number of bytes service limit "
    f"({PAYLOAD_LIMIT} bytes)."
)

#: A path field set to JSON ``null``: discard (``{}`` for InputPath/OutputPath, keep the input for
# ResultPath).
NULL_PATH: Any = object()


def compile_optional_path(state: Mapping[str, Any], field: str) -> Path | Any | None:
    """``None`` when the field is absent or ``"$"`` (identity), :data:`NULL_PATH` for JSON null, else a Path.

    :param state: the state definition.
    :param field: ``InputPath``, ``OutputPath``, ``ResultPath``, ``ItemsPath``...
    """
    if field not in state:
        return None
    value = state[field]
    if value is None:
        return NULL_PATH
    if value == "$":
        return None
    return compile_path(value)


def select(path: Path | Any | None, data: Any, context: Mapping[str, Any]) -> Any:
    """Apply an InputPath/OutputPath/ItemsPath-style selection.

    :param path: from :func:`compile_optional_path`.
    :param data: the state's data.
    :param context: the context object.
    :raises PathRuntimeError: when the path matches nothing.
    """
    if path is None:
        return data
    if path is NULL_PATH:
        return {}
    value = path.find(data, context)
    if value is MISSING:
        raise PathRuntimeError(missing_path_cause(path, data, context))
    return value


def apply_result_path(path: Path | Any | None, raw_input: Any, result: Any) -> Any:
    """Place a state's result into its raw input as ResultPath says; never mutates ``raw_input``.

    :param path: from :func:`compile_optional_path` (``None`` = ``$``).
    :param raw_input: the state's raw input.
    :param result: the effective result.
    :raises StatesError: ``States.ResultPathMatchFailure`` when the path cannot be applied to the input.
    """
    if path is None:
        return result
    if path is NULL_PATH:
        return raw_input
    steps = path._steps
    if steps is None or path.source != "data":
        raise StatesError(
            "States.ResultPathMatchFailure", f"ResultPath '{path.text}' is not a reference path"
        )
    return _set_in(raw_input, steps, result, path.text, raw_input)


def _set_in(target: Any, steps: tuple[str | int, ...], value: Any, text: str, whole: Any) -> Any:
    if not steps:
        return value
    head = steps[0]
    if isinstance(head, int) or not isinstance(target, dict):
        raise StatesError(
            "States.ResultPathMatchFailure",
            f'Unable to apply ResultPath "{text}" to input "{to_json(whole)}"',
        )
    copy = dict(target)
    child = target.get(head)
    if len(steps) > 1 and child is None:
        child = {}
    copy[head] = _set_in(child, steps[1:], value, text, whole)
    return copy


_Formatted = tuple[int, str, str]  # (epoch second, ISO-8601 prefix, HTTP date)
_cache: list[_Formatted] = [(-1, "", "")]


def _formatted_second(second: int) -> _Formatted:
    # Formatting a datetime costs microseconds and runs once per state: re-format only on a new second.
    # The tuple is replaced whole, so a reader in another thread never sees a half-updated entry.
    cached = _cache[0]
    if cached[0] != second:
        cached = (
            second,
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            formatdate(second, usegmt=True),
        )
        _cache[0] = cached
    return cached


def iso_now() -> str:
    """The current time as Step Functions prints it in the context object (ISO 8601, milliseconds, ``Z``).

    The fraction is left out when it is zero: ``2025-02-03T04:05:06Z``, not ``...06.000Z`` (see
    :func:`iso_fraction`).
    """
    now = time.time()
    second = int(now)
    return f"{_formatted_second(second)[1]}{iso_fraction(int((now - second) * 1000))}Z"


def iso_fraction(millisecond: int) -> str:
    """The fraction of a millisecond-precision timestamp, as Java's ``Instant.toString`` prints it.

    Step Functions "trims trailing zero fractional seconds" (AWS, Context object; AWS Support showed
    ``EnteredTime`` as ``2025-02-03T04:05:06Z``). Step Functions is a Java service, and ``Instant.toString``
    of a millisecond instant omits a zero fraction and otherwise prints exactly three digits (``.120``, not
    ``.12``). This rule is the most AWS-like reading; it is UNCONFIRMED beyond the zero case.
    """
    return f".{millisecond:03d}" if millisecond else ""


def http_date() -> str:
    """The current time as an HTTP ``Date`` header (RFC 7231)."""
    return _formatted_second(int(time.time()))[2]
